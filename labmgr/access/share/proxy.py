"""Carry people's requests to the one lab server and port of a share, and its answers back.

Every upstream connection is opened by the share's ``opener`` (``login.opener``: inside the
lab's door, or through the relay on a remote hypervisor), whatever a request says: the
network backend below ignores the host and port it is asked for. Requests go to the
application under its production hostname; the share's own cookie, and any Referer/Origin
naming the share, never reach the lab.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import anyio
import httpcore
from httpcore._backends.anyio import AnyIOStream

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "host", "content-length"}
IDEMPOTENT = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}
MAX_BODY = 64 * 2**20          # a request body is read whole before it is sent on (forms, small uploads)


class DoorBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network: every connection is ``opener()``, never a connection of our choosing."""

    def __init__(self, opener: Callable[[], socket.socket]) -> None:
        self.opener = opener

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            with anyio.fail_after(timeout or 15):
                sock = await anyio.to_thread.run_sync(self.opener)
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        sock.setblocking(False)
        return AnyIOStream(await anyio.abc.SocketStream.from_socket(sock))

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise httpcore.ConnectError("a share reaches its lab server only")

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class Upstream:
    """The lab application of one share: ``http://hostname:port`` reached through the door."""

    def __init__(self, hostname: str, port: int, opener: Callable[[], socket.socket]) -> None:
        self.hostname, self.port, self.opener = hostname, port, opener
        self.authority = hostname if port == 80 else f"{hostname}:{port}"
        self._pool: httpcore.AsyncConnectionPool | None = None

    @property
    def pool(self) -> httpcore.AsyncConnectionPool:
        if self._pool is None:          # made in the server's event loop
            self._pool = httpcore.AsyncConnectionPool(network_backend=DoorBackend(self.opener),
                                                      max_connections=32, keepalive_expiry=5)
        return self._pool

    def request_headers(self, headers: list[tuple[bytes, bytes]], own_origin: str,
                        cookie_name: str) -> list[tuple[bytes, bytes]]:
        """The client's headers as the application should see them."""
        out = [(b"host", self.authority.encode())]
        for raw_name, raw_value in headers:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            if name in HOP_BY_HOP or name.startswith(("sec-websocket", "x-forwarded", "forwarded")):
                continue
            if name == "cookie":
                value = strip_cookie(value, cookie_name)
                if not value:
                    continue
            elif name in ("referer", "origin"):
                path = value[len(own_origin):] if value.startswith(own_origin) else "?"
                if path[:1] not in ("", "/") or path.startswith("/s/"):
                    continue                # another site, or a link's own address (its token)
                value = f"http://{self.authority}" + (path if name == "referer" else "")
            out.append((name.encode(), value.encode("latin-1")))
        return out

    def response_headers(self, headers: list[tuple[bytes, bytes]], own_origin: str) -> list[tuple[bytes, bytes]]:
        """The application's headers for the browser: hop-by-hop ones dropped, its own absolute
        redirects pointed back at the share."""
        out = []
        for raw_name, raw_value in headers:
            name = raw_name.decode("latin-1").lower()
            if name in HOP_BY_HOP - {"content-length"}:
                continue
            if name in ("x-frame-options", "cache-control", "pragma", "expires"):
                continue                    # the share sets these (app.py)
            value = raw_value
            if name == "location":
                value = self.local_location(raw_value.decode("latin-1"), own_origin).encode("latin-1")
            out.append((name.encode(), value))
        return out

    def local_location(self, location: str, own_origin: str) -> str:
        parts = urlsplit(location)
        if parts.scheme in ("http", "https") and parts.hostname and \
                parts.hostname.lower() in (self.hostname.lower(), self.hostname.split(".")[0].lower()):
            return own_origin + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return location

    async def forward(self, method: str, target: str, headers, body: bytes) -> httpcore.Response:
        """Send one request; the response is open for streaming (close it when done). A kept-alive
        connection the lab dropped (a restore reverts its servers) is retried once, on a new one,
        for requests that may be sent twice."""
        if body or method not in ("GET", "HEAD", "OPTIONS", "DELETE"):
            headers = [*headers, (b"content-length", str(len(body)).encode())]
        for attempt in (1, 2):
            request = httpcore.Request(method, f"http://{self.authority}{target}", headers=headers, content=body)
            try:
                return await self.pool.handle_async_request(request)
            except (httpcore.RemoteProtocolError, httpcore.ReadError, httpcore.WriteError):
                if attempt == 2 or method not in IDEMPOTENT:
                    raise
        raise AssertionError("unreachable")

    async def websocket(self, target: str, headers, subprotocols: list[str]):
        """A WebSocket connection to the application (``websockets``' client on a door socket)."""
        from websockets.asyncio.client import connect

        sock = await anyio.to_thread.run_sync(self.opener)
        sock.setblocking(False)
        extra = [(k.decode(), v.decode("latin-1")) for k, v in headers if k != b"host"]
        return await connect(f"ws://{self.authority}{target}", sock=sock, additional_headers=extra,
                             subprotocols=subprotocols or None, proxy=None, open_timeout=15,
                             ping_interval=None, max_size=None, compression=None,
                             user_agent_header=None)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()


def strip_cookie(header: str, name: str) -> str:
    """A Cookie header without the share's own cookie (the token never reaches the lab)."""
    kept = []
    for part in header.split(";"):
        key = part.split("=", 1)[0].strip()
        if key and key != name:
            kept.append(part.strip())
    return "; ".join(kept)


async def pump_websockets(client, upstream) -> None:
    """Copy messages both ways until either side closes."""
    from websockets.exceptions import ConnectionClosed

    async def client_to_lab() -> None:
        while True:
            message = await client.receive()
            if message["type"] == "websocket.disconnect":
                await upstream.close()
                return
            await upstream.send(message["text"] if message.get("text") is not None else message["bytes"])

    async def lab_to_client() -> None:
        try:
            async for message in upstream:
                if isinstance(message, str):
                    await client.send_text(message)
                else:
                    await client.send_bytes(message)
        except ConnectionClosed:
            pass
        await client.close(upstream.close_code or 1000)

    tasks = [asyncio.ensure_future(client_to_lab()), asyncio.ensure_future(lab_to_client())]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    for task in done:
        if task.exception() and not isinstance(task.exception(), (ConnectionClosed, RuntimeError, OSError)):
            raise task.exception()

