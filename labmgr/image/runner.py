"""Running a build's commands sandboxed, logging their output and keeping its last lines.

Every command that runs in the tree runs in its own PID and mount namespace
(``unshare``) with a parent-death signal (``setpriv``): mounts made inside
(``/proc`` of the chroot) vanish with it, and killing labmgr kills the build.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
from collections import deque
from typing import BinaryIO, Callable

from .host import Tools

_CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PROXY_VARS = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


def _env() -> dict[str, str]:
    env = {"PATH": _CHROOT_PATH, "LC_ALL": "C", "LANG": "C", "HOME": "/root",
           "DEBIAN_FRONTEND": "noninteractive", "DEBCONF_NONINTERACTIVE_SEEN": "true"}
    env.update({name: os.environ[name] for name in _PROXY_VARS if name in os.environ})
    return env


class Runner:
    """Runs commands, appends their output to the build log, keeps the last lines."""

    def __init__(self, log: BinaryIO, tools: Tools) -> None:
        self.log = log
        self.tools = tools

    def sandboxed(self, argv: list[str]) -> list[str]:
        return [self.tools.setpriv, "--pdeathsig", "KILL",
                self.tools.unshare, "--pid", "--fork", "--kill-child", "--mount-proc",
                "--propagation", "private", "--", *argv]

    def run(self, argv: list[str], *, sandbox: bool = True, stdin: bytes | None = None,
            on_line: Callable[[str], None] | None = None, shown: list[str] | None = None) -> tuple[int, list[str]]:
        full = self.sandboxed(argv) if sandbox else list(argv)
        self.log.write(f"$ {shlex.join(shown if shown is not None else argv)}\n".encode())
        self.log.flush()
        tail: deque[str] = deque(maxlen=40)
        proc = subprocess.Popen(full, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_env(),
                                cwd="/", start_new_session=True)
        assert proc.stdout is not None
        try:
            if stdin is not None:
                assert proc.stdin is not None
                proc.stdin.write(stdin)
                proc.stdin.close()
            pending = b""
            while chunk := proc.stdout.read1(65536):
                self.log.write(chunk)
                *lines, pending = re.split(rb"[\r\n]", pending + chunk)
                for raw in lines:
                    self._line(raw, tail, on_line)
            self._line(pending, tail, on_line)
            code = proc.wait()
        except BaseException:
            _kill(proc)
            raise
        finally:
            proc.stdout.close()
        self.log.write(f"[exit status {code}]\n".encode())
        self.log.flush()
        return code, list(tail)

    @staticmethod
    def _line(raw: bytes, tail: deque[str], on_line: Callable[[str], None] | None) -> None:
        line = raw.decode(errors="replace").rstrip()
        if line:
            tail.append(line)
            if on_line:
                on_line(line)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def summary(lines: list[str], count: int = 6) -> str:
    """The last lines of a command's output, on one line (the CLI prints errors as one line)."""
    errors = [line for line in lines if line.startswith(("E:", "W:"))]
    picked = (errors or lines)[-count:]
    return " | ".join(line.strip() for line in picked) or "no output"
