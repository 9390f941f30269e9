"""`labmgr doctor` for a remote hypervisor: the SSH login, the tools the host-side steps run,
and the free space of its storage."""

from __future__ import annotations

from ..check import MIN_FREE_GIB, Check
from ..errors import LabmgrError
from ..spec import Environment

TOOLS = (("qemu-img", "qemu-utils", "fail"), ("ip", "iproute2", "fail"),
         ("python3", "python3", "warn"),       # python3: the relay of ssh/forward (bash is the fallback)
         ("dnsmasq", "dnsmasq-base", "warn"))  # DHCP and DNS of labs whose spec has dhcp/dns


def remote_checks(uri: str, env: Environment | None) -> list[Check]:
    from ..hosts import host_for
    from ..storage import site_for, storage_root

    try:
        host = host_for(uri)
    except LabmgrError as exc:
        return [Check(f"ssh to {uri}", "fail", exc.message, exc.hint or "")]
    with host:
        checks = [Check(f"ssh to {host.name}", "ok", "logged in, host key known")]
        for tool, package, severity in TOOLS:
            found = host.run(["sh", "-c", f"command -v {tool}"], check=False)
            checks.append(Check(f"{tool} on {host.name}", "ok", found.stdout.strip()) if found.ok else
                          Check(f"{tool} on {host.name}", severity, "not found", f"apt-get install {package} there"))
        root = storage_root(site_for(env, uri))
        free = host.free_bytes(root) / 2**30
        checks.append(Check(f"storage on {host.name}", "ok" if free >= MIN_FREE_GIB else "warn",
                            f"{free:.1f} GiB free under {root}",
                            f"free space there, or set storage: for this hypervisor in the spec"))
    return checks
