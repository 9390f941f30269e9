"""Hypervisor storage: where the files QEMU opens live on a hypervisor's machine.

Two kinds of state, two places. *Local state* stays on the machine running
labmgr, under ``$LABMGR_STATE_DIR``: lab records, snapshot manifests and
definitions, the dump store, the history. *Hypervisor storage* is on the host of
the hypervisor, because QEMU opens it there: snapshot disk images, lab overlays
and restore media, under the site's ``storage`` directory::

    <storage>/snapshots/<environment>/<id>/<server>/{vda.qcow2,kernel,...}
    <storage>/labs/<lab>/<server>/vda.qcow2
    <storage>/labs/<lab>/media/<server>.iso          (only during a restore)

A local hypervisor's storage defaults to ``$LABMGR_STATE_DIR`` itself, so for it
both kinds share one tree, as they always have; a remote one's defaults to
``/var/lib/labmgr`` on that host.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from . import paths
from .remote.uri import is_remote
from .spec.model import Environment, HypervisorSite

REMOTE_DEFAULT = PurePosixPath("/var/lib/labmgr")


def site_for(env: Environment | None, uri: str) -> HypervisorSite:
    """The spec's entry for ``uri``, or the defaults for a hypervisor the spec no longer lists."""
    for site in env.hypervisors if env else []:
        if site.uri == uri:
            return site
    return HypervisorSite(uri=uri)


def storage_root(site: HypervisorSite) -> PurePosixPath:
    if site.storage is not None:
        return site.storage
    return REMOTE_DEFAULT if is_remote(site.uri) else PurePosixPath(paths.state_dir())


def snapshot_dir(root: PurePosixPath, environment: str, snapshot_id: str) -> PurePosixPath:
    return root / "snapshots" / environment / snapshot_id


def lab_dir(root: PurePosixPath, lab: str) -> PurePosixPath:
    return root / "labs" / lab
