"""What a capture learns of each server through the hypervisor, for its labs: whether its guest
agent can run commands, and its SSH host keys.

The host keys are learned through a trusted channel only, never from a first
connection: production's guest agent (``cat /etc/ssh/ssh_host_*_key.pub``) when it
runs commands, else the captured disk itself. The disk is read without mounting
it and without writing it: ``qemu-storage-daemon`` exports the qcow2 read-only as a
raw file over FUSE on the hypervisor's host, and ``debugfs`` (e2fsprogs) reads the
files out of the ext2/3/4 filesystem on the whole disk or on one of its partitions.
"""

from __future__ import annotations

import re
import shlex
from pathlib import PurePosixPath

from ..errors import LabmgrError
from ..hostbase import Host
from ..hypervisor import Domain
from ..xml.builder import DomainXML

AGENT_CHANNEL = "org.qemu.guest_agent.0"
EXEC_COMMANDS = ("guest-exec", "guest-exec-status")
KEY_LINE = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+|sk-\S+) [A-Za-z0-9+/=]+")
KEY_FILES = ("ssh_host_ed25519_key.pub", "ssh_host_ecdsa_key.pub", "ssh_host_rsa_key.pub")

# agent states recorded per server (ServerCopy.agent)
EXEC, NO_EXEC, NONE, UNKNOWN = "exec", "no-exec", "none", ""


def agent_state(domain: Domain, xml: DomainXML) -> str:
    """``exec``: the agent answers and runs commands; ``no-exec``: it answers with guest-exec
    disabled; ``none``: no agent channel in the definition; ``""``: not known (shut off, silent)."""
    names = [t.get("name") for t in xml.root.findall("devices/channel/target")]
    if AGENT_CHANNEL not in names:
        return NONE
    if not domain.is_active():
        return UNKNOWN
    agent = domain.agent(timeout=5)
    if not agent.ping(timeout=5):
        return UNKNOWN
    try:
        supported = agent.command("guest-info")["supported_commands"]
    except (LabmgrError, KeyError, TypeError):
        return UNKNOWN
    enabled = {c.get("name") for c in supported if c.get("enabled")}
    return EXEC if all(c in enabled for c in EXEC_COMMANDS) else NO_EXEC


def keys_through_agent(domain: Domain) -> list[str]:
    """The guest's host keys read by its agent; [] if it cannot (no sshd, agent silent)."""
    try:
        result = domain.agent(timeout=10).exec(["sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub"], timeout=30)
    except LabmgrError:
        return []
    return _key_lines(result.stdout) if result.ok else []


def keys_from_disk(host: Host, image: PurePosixPath, work: PurePosixPath) -> list[str]:
    """The host keys in the captured qcow2 ``image`` (read-only); [] if none can be read."""
    raw, pid = work / "guestfacts.raw", work / "guestfacts.pid"
    quoted = {k: shlex.quote(str(v)) for k, v in (("image", image), ("raw", raw), ("pid", pid))}
    script = (
        f"touch {quoted['raw']} && qemu-storage-daemon --blockdev driver=qcow2,node-name=d,file.driver=file,"
        f"file.filename={quoted['image']},file.read-only=on,read-only=on --export type=fuse,id=e,node-name=d,"
        f"mountpoint={quoted['raw']},writable=off --daemonize --pidfile {quoted['pid']} || exit 3\n"
        f"trap 'kill $(cat {quoted['pid']}); sleep 0.2; rm -f {quoted['raw']} {quoted['pid']}' EXIT\n"
        # the whole disk, then each partition (sfdisk gives start sectors)
        f"for offset in 0 $(sfdisk -q -d {quoted['raw']} 2>/dev/null | sed -n 's/.*start= *\\([0-9]*\\).*/\\1/p'); do\n"
        f"  device={quoted['raw']}?offset=$((offset * 512))\n"
        "  for key in " + " ".join(KEY_FILES) + "; do\n"
        "    debugfs -R \"cat /etc/ssh/$key\" \"$device\" 2>/dev/null\n"
        "  done\n"
        "done\n")
    result = host.run(["sh", "-c", script], check=False)
    return _key_lines(result.stdout)


def _key_lines(text: str) -> list[str]:
    """``TYPE BASE64`` of each key (comments dropped), each once."""
    keys: list[str] = []
    for line in text.splitlines():
        match = KEY_LINE.match(line.strip())
        if match and match.group(0) not in keys:
            keys.append(match.group(0))
    return keys
