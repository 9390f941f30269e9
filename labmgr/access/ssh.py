"""``labmgr ssh``: OpenSSH from inside the lab's door to a server's production address.

Names come from the spec, not from DNS: the client connects to the server's
production IP, and when the user named it by hostname the host key is checked
under that hostname (``HostKeyAlias``), so the known_hosts entry the user has for
production is the one that applies — a lab server has production's host key.
"""

from __future__ import annotations

import shlex
import subprocess
import sys

from ..errors import LabError

# what OpenSSH says (exit status 255) -> what the user is told
KNOWN_FAILURES = (
    ("REMOTE HOST IDENTIFICATION HAS CHANGED", "host key changed: {dest} does not offer the key your known_hosts has "
                                                "for it"),
    ("Host key verification failed", "host key of {dest} could not be verified"),
    ("Permission denied", "SSH key refused by {dest}"),
    ("Connection refused", "{dest} refuses SSH connections (is sshd running in the lab server?)"),
    ("Connection timed out", "{dest} does not answer on port {port}"),
    ("No route to host", "{dest} does not answer (is the lab server running?)"),
)


def ssh_argv(namespace: str, ip: str, alias: str | None, user: str | None, port: int, options: list[str],
             command: list[str], proxy: str | None = None) -> list[str]:
    """OpenSSH run inside the door; or, with ``proxy`` (a remote hypervisor's door), run here
    with that ProxyCommand reaching the server from the door."""
    if proxy:
        argv = ["ssh", "-p", str(port), "-o", f"ProxyCommand={proxy}"]
    else:
        argv = ["ip", "netns", "exec", namespace, "ssh", "-p", str(port)]
    if alias:
        argv += ["-o", f"HostKeyAlias={alias}"]
    for option in options:
        argv += ["-o", option]
    if user:
        argv += ["-l", user]
    argv.append(ip)
    if command:
        argv += ["--", shlex.join(command) if len(command) > 1 else command[0]]
    return argv


def run_ssh(argv: list[str], where: str, port: int) -> int:
    """Run the client with the terminal; its own diagnostics are kept and, if the connection
    itself failed (status 255), turned into one LabError."""
    process = subprocess.Popen(argv, stderr=subprocess.PIPE)
    _, err = process.communicate()
    text = err.decode(errors="replace")
    if process.returncode == 255:
        for marker, message in KNOWN_FAILURES:
            if marker in text:
                raise LabError(message.format(dest=where, port=port), hint=_last_line(text))
        raise LabError(f"ssh to {where} failed: {_last_line(text) or 'exit status 255'}")
    sys.stderr.write(text)
    return process.returncode


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("@")]
    return lines[-1] if lines else ""
