"""``labmgr forward``: a port on the host's loopback that leads to a port of a lab server.

The listening socket is on this machine's 127.0.0.1; each accepted connection gets
an outbound connection opened inside the lab's door (``connect_in``), and bytes are
copied both ways until either side closes. Nothing else in the lab is exposed.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

BUFFER = 65536


class Forwarder:
    def __init__(self, listen: tuple[str, int], opener: Callable[[], socket.socket],
                 on_error: Callable[[str], None] = lambda message: None) -> None:
        self.server = socket.create_server(listen, reuse_port=False)
        self.opener = opener
        self.on_error = on_error
        self.stopped = threading.Event()

    @property
    def address(self) -> tuple[str, int]:
        return self.server.getsockname()[:2]

    def serve_forever(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                if self.stopped.is_set():
                    return
                raise
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def stop(self) -> None:
        self.stopped.set()
        self.server.close()

    def _handle(self, client: socket.socket) -> None:
        try:
            upstream = self.opener()
        except OSError as exc:
            self.on_error(f"could not reach the lab server: {exc}")
            client.close()
            return
        done = threading.Barrier(2, action=lambda: (client.close(), upstream.close()))
        for source, target in ((client, upstream), (upstream, client)):
            threading.Thread(target=_copy, args=(source, target, done), daemon=True).start()


def _copy(source: socket.socket, target: socket.socket, done: threading.Barrier) -> None:
    try:
        while data := source.recv(BUFFER):
            target.sendall(data)
    except OSError:
        pass
    finally:
        try:
            target.shutdown(socket.SHUT_WR)      # pass the end of the stream on (HTTP/1.0 needs it)
        except OSError:
            pass
        try:
            done.wait()
        except threading.BrokenBarrierError:
            pass
