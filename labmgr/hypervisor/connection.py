"""A libvirt connection and the lookups labmgr needs from it."""

from __future__ import annotations

import libvirt

from ..errors import HypervisorError, NotFoundError
from .domain import Domain
from .errors import translated


class Hypervisor:
    def __init__(self, uri: str, conn: libvirt.virConnect) -> None:
        self.uri = uri
        self.conn = conn

    # domains -------------------------------------------------------------
    def domain(self, name: str) -> Domain:
        with translated(f"domain '{name}' on {self.uri}"):
            return Domain(self, self.conn.lookupByName(name))

    def has_domain(self, name: str) -> bool:
        return name in self.domain_names()

    def domain_names(self) -> list[str]:
        with translated(f"listing domains on {self.uri}"):
            return [d.name() for d in self.conn.listAllDomains()]

    def domains(self) -> list[Domain]:
        with translated(f"listing domains on {self.uri}"):
            return [Domain(self, d) for d in self.conn.listAllDomains()]

    def define_domain(self, xml: str) -> Domain:
        with translated(f"defining a domain on {self.uri}"):
            return Domain(self, self.conn.defineXML(xml))

    def volume_path(self, pool: str, volume: str) -> str:
        """The host path of a storage pool's volume (a file or a block device)."""
        with translated(f"volume '{volume}' of storage pool '{pool}' on {self.uri}"):
            return self.conn.storagePoolLookupByName(pool).storageVolLookupByName(volume).path()

    def define_and_start_pool(self, xml: str) -> None:
        with translated(f"creating a storage pool on {self.uri}"):
            pool = self.conn.storagePoolDefineXML(xml, 0)
            pool.create(0)

    def refresh_pool(self, name: str) -> None:
        with translated(f"storage pool '{name}' on {self.uri}"):
            self.conn.storagePoolLookupByName(name).refresh(0)

    def remove_pool(self, name: str) -> None:
        """Stop and undefine pool ``name`` (its directory and files stay); a pool already gone is fine."""
        try:
            pool = self.conn.storagePoolLookupByName(name)
        except libvirt.libvirtError:
            return
        with translated(f"removing storage pool '{name}'"):
            if pool.isActive():
                pool.destroy()
            pool.undefine()

    def restore_state(self, path: str, name: str) -> Domain:
        """Resume a saved running state (a file or a FIFO on the hypervisor's host) as domain ``name``,
        the name in the state's own header. libvirt checks the header's definition, not ours."""
        with translated(f"resuming domain '{name}' from its saved state on {self.uri}"):
            self.conn.restoreFlags(str(path), None, libvirt.VIR_DOMAIN_SAVE_RUNNING)
        return self.domain(name)

    # networks ------------------------------------------------------------
    def network_names(self) -> list[str]:
        with translated(f"listing networks on {self.uri}"):
            return [n.name() for n in self.conn.listAllNetworks()]

    def network_xml(self, name: str) -> str:
        with translated(f"network '{name}' on {self.uri}"):
            return self.conn.networkLookupByName(name).XMLDesc(0)

    def define_and_start_network(self, xml: str) -> None:
        with translated(f"creating a network on {self.uri}"):
            network = self.conn.networkDefineXML(xml)
            network.create()

    def remove_network(self, name: str) -> None:
        """Stop and undefine ``name``; a network that is already gone is fine."""
        try:
            network = self.conn.networkLookupByName(name)
        except libvirt.libvirtError:
            return
        with translated(f"removing network '{name}'"):
            if network.isActive():
                network.destroy()
            network.undefine()

    def bridges_in_use(self) -> set[str]:
        with translated(f"listing networks on {self.uri}"):
            networks = self.conn.listAllNetworks()
        bridges = set()
        for network in networks:
            try:
                with translated(f"listing networks on {self.uri}"):
                    if network.isActive():
                        bridges.add(network.bridgeName())
            except NotFoundError:
                continue        # removed while we looked (someone else's lab going down): its bridge is free
        return bridges

    # host ----------------------------------------------------------------
    def libvirt_version(self) -> str:
        with translated(f"asking {self.uri} for its version"):
            version = self.conn.getLibVersion()
        return f"{version // 1_000_000}.{version // 1000 % 1000}"

    def qemu_version(self) -> int:
        """The hypervisor's own version (QEMU's, as libvirt reports it): a saved state needs the same."""
        with translated(f"asking {self.uri} for its hypervisor version"):
            return self.conn.getVersion()

    def available_memory(self) -> int:
        """Bytes the host can give new guests: free memory plus what page cache and buffers would yield."""
        with translated(f"reading the free memory of {self.uri}"):
            stats = self.conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0)
        return sum(stats.get(key, 0) for key in ("free", "buffers", "cached")) * 1024

    def supports_virt_type(self, virt_type: str) -> bool:
        try:
            self.conn.getDomainCapabilities(None, "x86_64", None, virt_type, 0)
            return True
        except libvirt.libvirtError:
            return False

    def close(self) -> None:
        try:
            self.conn.close()
        except libvirt.libvirtError:
            pass

    def __enter__(self) -> "Hypervisor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(uri: str) -> Hypervisor:
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        message = (exc.get_error_message() or str(exc)).strip()
        _explain_ssh(uri)
        raise HypervisorError(
            f"libvirt at {uri} is not reachable: {message}",
            hint="start it with 'libvirtd -d' (after 'virtlogd -d'), or check the URI; "
            "'labmgr doctor' checks the whole setup",
        ) from None
    return Hypervisor(uri, conn)


def _explain_ssh(uri: str) -> None:
    """For a remote URI, log in as libvirt's transport would: a refused key or a changed host key
    becomes one line saying so, instead of ssh's banner relayed by libvirt."""
    from ..remote.uri import SSH_TRANSPORTS, is_remote

    if is_remote(uri) and uri.split(":", 1)[0].partition("+")[2] in SSH_TRANSPORTS:
        from ..remote.host import diagnose

        diagnose(uri)
