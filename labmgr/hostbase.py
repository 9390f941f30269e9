"""What every host of the host layer shares (``LocalHost`` in ``hosts``, ``RemoteHost`` in ``remote.host``).

Its own module so that ``remote.host`` needs nothing from ``hosts``, and
``hosts.host_for`` can import ``remote.host`` without a circle.
"""

from __future__ import annotations

import os

from .errors import LabmgrError
from .execresult import ExecResult

Result = ExecResult     # one command's exit code and output, wherever it ran


def check_tree(path: str | os.PathLike) -> str:
    """Refuse to remove a path that is not clearly one of labmgr's (never ``/`` or ``/var``)."""
    text = os.path.normpath(str(path))
    if not text.startswith("/") or text.count("/") < 3:
        raise LabmgrError(f"refusing to remove {text}: not a labmgr directory")
    return text
