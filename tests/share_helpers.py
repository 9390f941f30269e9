"""Fixtures of the share tests: a real HTTP and WebSocket application on 127.0.0.1 (the lab's,
standing in), a state directory with a lab's directory, and shares started in front of it."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import httpx
import pytest
from websockets.sync.server import serve as ws_serve

from labmgr.access.login import Target
from labmgr.access.share.serve import open_share, serve
from labmgr.history import History
from labmgr.lab import records

LAB = "lmh-unit"
POINT = "2026-11-21T08:00Z"
PAGE = b"<html><body><h1>Invoices</h1><footer>shop v1.4.2</footer></body></html>"


class App(BaseHTTPRequestHandler):
    """The lab's application: records what it is sent."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.seen.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
        if self.path == "/moved":
            self.reply(302, b"", {"Location": "http://app01.shop.test/landing?x=1"})
        else:
            self.reply(200, PAGE, {"Content-Type": "text/html", "Cache-Control": "max-age=3600",
                                   "X-Frame-Options": "DENY", "Set-Cookie": "app=1; Path=/"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.seen.append({"path": self.path, "headers": headers, "body": body})
        self.reply(200, b"got " + body, {"Content-Type": "text/plain"})

    def reply(self, status: int, body: bytes, headers: dict) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def application():
    web = ThreadingHTTPServer(("127.0.0.1", 0), App)
    web.seen = []
    threading.Thread(target=web.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def echo(connection) -> None:
        for message in connection:
            connection.send(f"lab says {message}")
    sockets = ws_serve(echo, "127.0.0.1", 0)
    threading.Thread(target=sockets.serve_forever, daemon=True).start()
    yield SimpleNamespace(web=web, http_port=web.server_address[1], ws_port=sockets.socket.getsockname()[1])
    web.shutdown()
    sockets.shutdown()


@pytest.fixture
def lab_state(tmp_path, monkeypatch):
    monkeypatch.setenv("LABMGR_STATE_DIR", str(tmp_path / "state"))
    records.lab_dir(LAB).mkdir(parents=True)
    return SimpleNamespace(env=SimpleNamespace(name="shop", dumps=SimpleNamespace(store=str(tmp_path / "store"))),
                           store=tmp_path / "store")


@pytest.fixture
def start(lab_state, application):
    """Start a share of the application (port 'http' or 'ws'); every server is stopped after the test."""
    running = []

    def start_one(port="http", lifetime=timedelta(hours=1), who=("alice", "bob"), tls=None):
        upstream_port = {"http": application.http_port, "ws": application.ws_port}.get(port, port)
        target = Target(SimpleNamespace(name="app", hostname="app01.shop.test"), "127.0.0.1", None)
        started = open_share(LAB, lab_state.env, target, upstream_port,
                             lambda: socket.create_connection(("127.0.0.1", upstream_port)), lifetime, list(who),
                             ("127.0.0.1", 0), None, tls, point_of=lambda: POINT)
        servers = []
        thread = threading.Thread(target=serve, args=(started, servers.append), daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not (servers and servers[0].started):
            assert time.monotonic() < deadline, "the share server did not start"
            time.sleep(0.02)
        running.append((servers[0], thread))
        return started
    yield start_one
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=10)


def client(started) -> httpx.Client:
    return httpx.Client(base_url=started.share.url, follow_redirects=False, timeout=10)


def raw(started, request: bytes) -> bytes:
    host, port = started.share.listen.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        return sock.recv(65536)


def evidence(lab_state):
    with History(lab_state.store) as history:
        return history.evidence(LAB, "shop")


def evidence_of(started):
    time.sleep(0.3)                 # the journal's thread writes behind the server
    with History(_store(started)) as history:
        return history.evidence(LAB, "shop").share_events


def _store(started):
    from labmgr.dumps.store import store_root

    return store_root(started.journal.env)
