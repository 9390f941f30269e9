"""Open a TCP connection from inside a network namespace of this machine.

A thread may enter another network namespace with setns(2) without moving the
rest of the process; a socket keeps the namespace it was made in. So a short-lived
thread enters the door, connects, and hands the socket back to the caller, whose
own sockets (the forwarder's listener on the host's loopback) stay where they are.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading

CLONE_NEWNET = 0x40000000


def connect_in(namespace: str, address: tuple[str, int], timeout: float = 10) -> socket.socket:
    """A TCP connection to ``address`` opened inside ``/run/netns/<namespace>``; OSError if it fails."""
    outcome: dict[str, object] = {}

    def enter_and_connect() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    error = ctypes.get_errno()
                    raise OSError(error, f"cannot enter network namespace {namespace}: {os.strerror(error)}")
            finally:
                os.close(fd)
            outcome["socket"] = socket.create_connection(address, timeout=timeout)
        except OSError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=enter_and_connect, name=f"netns-{namespace}", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]          # type: ignore[misc]
    connection = outcome["socket"]
    assert isinstance(connection, socket.socket)
    connection.settimeout(None)
    return connection
