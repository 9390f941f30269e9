"""``labmgr ssh``: OpenSSH from inside the lab's door to a server's production address.

Names come from the spec, not from DNS: the client connects to the server's
production IP, and when the user named it by hostname the host key is checked
under that hostname (``HostKeyAlias``). Host keys are checked against the lab's own
known_hosts (``labs/<lab>/known_hosts``: each server's keys as the hypervisor reported
them at capture, ``snapshot/guestfacts.py``), never the user's and never switched off,
so a lab of a production the user never logged in to works, and a guest presenting
another key is refused.
"""

from __future__ import annotations

import shlex
import subprocess
import sys

from ..errors import LabError

# what OpenSSH says (exit status 255) -> what the user is told
KNOWN_FAILURES = (
    ("REMOTE HOST IDENTIFICATION HAS CHANGED", "host key of {dest} does not match what the hypervisor reported: "
                                                "refused"),
    ("Host key verification failed", "host key of {dest} does not match what the hypervisor reported "
                                      "(or none is known): refused"),
    ("Permission denied", "SSH key refused by {dest}"),
    ("Connection refused", "{dest} refuses SSH connections (is sshd running in the lab server?)"),
    ("Connection timed out", "{dest} does not answer on port {port}"),
    ("No route to host", "{dest} does not answer (is the lab server running?)"),
)


# options that would weaken or bypass the lab's known_hosts: refused
CHECKING_OPTIONS = ("stricthostkeychecking", "userknownhostsfile", "globalknownhostsfile", "hostkeyalias",
                    "knownhostscommand", "checkhostip")


def checking_options(known_hosts: str) -> list[str]:
    return [f"UserKnownHostsFile={known_hosts}", "GlobalKnownHostsFile=/dev/null", "StrictHostKeyChecking=yes",
            "CheckHostIP=no"]


def ssh_argv(namespace: str, ip: str, alias: str | None, user: str | None, port: int, options: list[str],
             command: list[str], proxy: str | None = None, known_hosts: str | None = None) -> list[str]:
    """OpenSSH run inside the door; or, with ``proxy`` (a remote hypervisor's door), run here
    with that ProxyCommand reaching the server from the door. Host keys are checked against
    ``known_hosts`` (the lab's) only."""
    for option in options:
        if option.split("=", 1)[0].strip().lower() in CHECKING_OPTIONS:
            raise LabError(f"-o {option}: labmgr ssh checks host keys against the lab's known_hosts and "
                           "does not let that be changed")
    if proxy:
        argv = ["ssh", "-p", str(port), "-o", f"ProxyCommand={proxy}"]
    else:
        argv = ["ip", "netns", "exec", namespace, "ssh", "-p", str(port)]
    if alias:
        argv += ["-o", f"HostKeyAlias={alias}"]
    if known_hosts:
        for option in checking_options(known_hosts):
            argv += ["-o", option]
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
