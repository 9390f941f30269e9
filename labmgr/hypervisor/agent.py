"""The QEMU guest agent of a running domain: ping, run commands, read state.

Every call has a timeout; an agent that stops answering becomes an AgentError
naming the domain, never a hang.
"""

from __future__ import annotations

import base64
import json
import time
from typing import TYPE_CHECKING, Any, BinaryIO

import libvirt
import libvirt_qemu
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_exponential, wait_fixed

from ..errors import AgentError
from ..execresult import ExecResult

if TYPE_CHECKING:
    from .domain import Domain


GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class GuestAgent:
    def __init__(self, domain: "Domain", timeout: float = 10) -> None:
        self.domain = domain
        self.timeout = timeout

    @property
    def name(self) -> str:
        return self.domain.name

    def command(self, execute: str, timeout: float | None = None, **arguments: Any) -> Any:
        request: dict[str, Any] = {"execute": execute}
        if arguments:
            request["arguments"] = arguments
        seconds = max(1, int(timeout or self.timeout))
        try:
            reply = libvirt_qemu.qemuAgentCommand(self.domain.dom, json.dumps(request), seconds, 0)
        except libvirt.libvirtError as exc:
            message = (exc.get_error_message() or str(exc)).strip()
            raise AgentError(f"guest agent of '{self.domain.name}' did not answer {execute}: {message}",
                             hint="is qemu-guest-agent installed and running in the guest?") from None
        return json.loads(reply).get("return")

    def ping(self, timeout: float = 2) -> bool:
        try:
            self.command("guest-ping", timeout=timeout)
            return True
        except AgentError:
            return False

    def wait_ready(self, timeout: float, poll: float = 0.25) -> float:
        """Wait until the agent answers; returns the seconds waited. A ping is one libvirt call:
        polling often sees a booted guest sooner (every cold boot waits here)."""
        start = time.monotonic()

        def answered() -> bool:
            if self.ping():
                return True
            if not self.domain.is_active():
                raise AgentError(f"domain '{self.domain.name}' stopped while booting",
                                 hint=f"see its log in /var/log/libvirt/qemu/{self.domain.name}.log")
            return False

        def too_late(_state: object) -> bool:
            raise AgentError(f"guest agent of '{self.domain.name}' did not answer within {timeout:.0f} s",
                             hint="check that the guest boots ('virsh console') and runs qemu-guest-agent")

        Retrying(retry=retry_if_result(lambda ok: not ok), stop=stop_after_delay(timeout), wait=wait_fixed(poll),
                 retry_error_callback=too_late)(answered)
        return time.monotonic() - start

    def exec(self, argv: list[str], timeout: float | None = None, stdin: bytes | None = None,
             env: dict[str, str] | None = None) -> ExecResult:
        """Run ``argv`` in the guest and wait for it to exit."""
        timeout = timeout or self.timeout
        arguments: dict[str, Any] = {"path": argv[0], "arg": argv[1:], "capture-output": True}
        if stdin is not None:
            arguments["input-data"] = base64.b64encode(stdin).decode()
        if env:
            # guest-exec replaces the environment: keep a usable PATH
            arguments["env"] = [f"PATH={GUEST_PATH}"] + [f"{k}={v}" for k, v in env.items()]
        pid = self.command("guest-exec", **arguments)["pid"]
        status = self.wait_exit(pid, time.monotonic() + timeout)
        if status is None:
            raise AgentError(f"'{' '.join(argv)}' in '{self.domain.name}' did not finish within {timeout:.0f} s")
        return ExecResult(
            exit_code=status.get("exitcode", -1 if status.get("signal") else 0),
            stdout=_decode(status.get("out-data")),
            stderr=_decode(status.get("err-data")),
        )

    def wait_exit(self, pid: int, deadline: float) -> dict[str, Any] | None:
        """Poll guest-exec-status of ``pid`` until it exits (its status) or ``deadline`` passes (None)."""
        polls = Retrying(retry=retry_if_result(lambda status: not status.get("exited")),
                         stop=lambda _state: time.monotonic() > deadline,
                         wait=wait_exponential(multiplier=0.05, exp_base=1.5, max=0.5),
                         retry_error_callback=lambda _state: None)
        return polls(self.command, "guest-exec-status", pid=pid)

    def run(self, argv: list[str], timeout: float | None = None, stdin: bytes | None = None,
            env: dict[str, str] | None = None) -> str:
        """Run ``argv``; return its stdout, or raise naming the command and its stderr."""
        result = self.exec(argv, timeout, stdin, env)
        if not result.ok:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise AgentError(f"'{' '.join(argv)}' in '{self.domain.name}' exited {result.exit_code}: "
                             + " | ".join(tail))
        return result.stdout

    def set_time(self) -> None:
        """Set the guest clock from the host's (after a revert the guest's clock is in the past)."""
        self.command("guest-set-time", time=time.time_ns())

    def write_file(self, path: str, source: BinaryIO, chunk: int = 64 * 1024) -> int:
        """Copy ``source`` into the guest file ``path`` in bounded chunks (64 KiB: larger ones
        were seen to hang the agent). Slow (a few MB/s): for small files only."""
        handle = self.command("guest-file-open", path=path, mode="wb")
        written = 0
        try:
            while block := source.read(chunk):
                self.command("guest-file-write", handle=handle, **{"buf-b64": base64.b64encode(block).decode()})
                written += len(block)
        finally:
            self.command("guest-file-close", handle=handle)
        return written

    def hostname(self) -> str:
        return self.command("guest-get-host-name")["host-name"]

    def interfaces(self) -> list[dict[str, Any]]:
        """The guest's view of its NICs: name, MAC and IPv4 addresses."""
        out = []
        for nic in self.command("guest-network-get-interfaces"):
            out.append({
                "name": nic.get("name"),
                "mac": (nic.get("hardware-address") or "").lower(),
                "ipv4": [a["ip-address"] for a in nic.get("ip-addresses", []) if a.get("ip-address-type") == "ipv4"],
            })
        return out


def _decode(data: str | None) -> str:
    return base64.b64decode(data).decode(errors="replace") if data else ""
