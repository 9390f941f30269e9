"""One command's exit code and output, wherever it ran: this machine, a remote host, or a guest.

Its own module so that the host layer (``hosts``) and the guest agent
(``hypervisor.agent``) share it without either importing the other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0
