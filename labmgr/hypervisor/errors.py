"""Turn libvirt's exceptions into labmgr's, with a hint for the common ones."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import libvirt

from ..errors import HypervisorError, NotFoundError

# libvirt prints every error to stderr by default; we report them ourselves.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

_NOT_FOUND = {
    libvirt.VIR_ERR_NO_DOMAIN,
    libvirt.VIR_ERR_NO_NETWORK,
    libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT,
    libvirt.VIR_ERR_NO_STORAGE_VOL,
}


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Run a libvirt call; re-raise its failure as one line that starts with ``what``."""
    try:
        yield
    except libvirt.libvirtError as exc:
        message = (exc.get_error_message() or str(exc)).strip()
        if exc.get_error_code() in _NOT_FOUND:
            raise NotFoundError(f"{what}: {message}") from None
        raise HypervisorError(f"{what}: {message}") from None
    except SystemError as exc:
        # libvirt-python reports a failed call this way when an error was left pending (seen
        # with several restores at once): the pending error, chained, says what went wrong
        cause = exc.__cause__ or exc.__context__
        raise HypervisorError(f"{what}: {str(cause or exc).strip().splitlines()[0]}") from None
