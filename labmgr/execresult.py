"""One command's exit code and output, wherever it ran: this machine, a remote host, or a guest.

Its own module so that the host layer (``hosts``) and the guest agent
(``hypervisor.agent``) share it without either importing the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class GuestCommands(Protocol):
    """A lab guest's command channel: its guest agent or its lab login (``lab/guestchannel.py``)."""

    name: str

    def exec(self, argv: list[str], timeout: float | None = None, stdin: bytes | None = None,
             env: dict[str, str] | None = None) -> ExecResult: ...

    def run(self, argv: list[str], timeout: float | None = None, stdin: bytes | None = None,
            env: dict[str, str] | None = None) -> str: ...
