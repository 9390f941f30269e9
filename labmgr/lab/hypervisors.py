"""The hypervisors labmgr knows, so ``lab list`` and ``lab gc`` look at all of them.

Every hypervisor a lab was placed on is remembered in ``<state>/hypervisors``
(one URI a line); with the labs' records and the hypervisors their specs list,
that finds labs on every host, even ones whose records are gone.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from filelock import FileLock

from .. import paths
from ..atomic import atomic_write
from ..errors import LabmgrError
from . import records

REGISTRY = "hypervisors"


def remember_hypervisor(uri: str) -> None:
    path = paths.state_dir() / REGISTRY
    with FileLock(str(path) + ".lock"):
        known = path.read_text().splitlines() if path.exists() else []
        if uri not in known:
            atomic_write(path, "".join(f"{line}\n" for line in [*known, uri]))


def forget_hypervisor(uri: str) -> None:
    """Drop ``uri`` from the registry (``lab gc`` does, once nothing of labmgr's is left there)."""
    path = paths.state_dir() / REGISTRY
    with FileLock(str(path) + ".lock"):
        known = path.read_text().splitlines() if path.exists() else []
        if uri in known:
            atomic_write(path, "".join(f"{line}\n" for line in known if line != uri))


def known_hypervisors(extra: list[str] = ()) -> list[str]:
    """``extra``, then the remembered ones, the records', and the ones the records' specs list; each once."""
    from ..spec import load_environment

    path = paths.state_dir() / REGISTRY
    uris = list(extra) + (path.read_text().splitlines() if path.exists() else [])
    for record in records.all_records():
        uris.append(record.hypervisor)
        try:
            uris += [site.uri for site in load_environment(record.spec).hypervisors]
        except LabmgrError:
            pass                        # a spec moved or broken: its record's URI is still known
    return list(dict.fromkeys(uri for uri in uris if uri.strip()))


def short(uri: str) -> str:
    """A URI without its query (key file paths and the like), for listings."""
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(query=""))
