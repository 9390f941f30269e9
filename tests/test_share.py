"""``labmgr share`` without a lab: the real share server (uvicorn, Starlette) in front of a real
HTTP and WebSocket application on 127.0.0.1, with real SQLite evidence. Tokens, expiry,
revocation, what is refused, headers, what reaches the application, sign-offs into the report.
(tests/test_share_lab.py shows the same through a real lab's door in a real browser.)"""

from __future__ import annotations

import hmac
import json
import os
import socket
import ssl
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from websockets.sync.client import connect as ws_connect
from websockets.sync.server import serve as ws_serve

from labmgr.access.login import Target
from labmgr.access.share import state
from labmgr.access.share.serve import check_tls, open_share, parse_duration, people_names, serve
from labmgr.errors import LabError
from labmgr.history import History
from labmgr.lab import records
from labmgr.report import render_report

from helpers import labmgr, one_line_error

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
        self.server.seen.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
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
    threading.Thread(target=web.serve_forever, daemon=True).start()

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


def test_a_link_opens_the_application_under_the_banner(start, application) -> None:
    started = start()
    with client(started) as browser:
        opened = browser.get(started.links["alice"].removeprefix(started.share.url))
        assert opened.status_code == 303 and opened.headers["location"] == "/_labmgr/"
        cookie = opened.headers["set-cookie"].lower()
        assert f"lmshare_{started.share.id}=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
        frame = browser.get("/_labmgr/")
        assert frame.status_code == 200
        assert f'id="labmgr-lab">{LAB}<' in frame.text and f'id="labmgr-point">{POINT}<' in frame.text
        assert "alice" in frame.text and '<iframe id="labmgr-app" src="/"' in frame.text
        assert frame.headers["cache-control"] == "no-store" and frame.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in frame.headers["content-security-policy"]
        assert frame.headers["x-content-type-options"] == "nosniff"
        assert frame.headers["referrer-policy"] == "same-origin"

        page = browser.get("/", headers={"Cookie": f"lmshare_{started.share.id}={browser.cookies.get('lmshare_' + started.share.id)}; app=1",
                                         "Referer": f"{started.share.url}/_labmgr/"})
        assert page.status_code == 200 and page.content == PAGE
        # the application's caching and framing rules are replaced by the share's
        assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "SAMEORIGIN"
        assert page.headers["content-security-policy"] == "frame-ancestors 'self'"
        assert page.headers["set-cookie"] == "app=1; Path=/"
        moved = browser.get("/moved")
        assert moved.status_code == 302 and moved.headers["location"] == f"{started.share.url}/landing?x=1"
        posted = browser.post("/form", data={"q": "Q3"})
        assert posted.text == "got q=Q3"
    seen = application.web.seen
    assert [s["path"] for s in seen] == ["/", "/moved", "/form"]
    for request in seen:
        # the application sees its production hostname, and never the share's token or address
        assert request["headers"]["host"] == f"app01.shop.test:{application.http_port}"
        assert "lmshare" not in request["headers"].get("cookie", "")
    assert seen[0]["headers"]["cookie"] == "app=1"
    assert seen[0]["headers"]["referer"] == f"http://app01.shop.test:{application.http_port}/_labmgr/"
    events = [(e.person, e.event, e.detail.split(" (")[0]) for e in evidence_of(started)]
    assert events == [("", "shared", f"app01.shop.test:{application.http_port} for alice, bob until "
                                         f"{started.share.expires_at}"),
                          ("alice", "opened", "link"), ("alice", "page", "GET / 200")]


def test_wrong_token_missing_cookie_and_another_shares_port_are_refused(start, application) -> None:
    first, second = start(), start()
    assert first.share.listen != second.share.listen
    token = first.links["bob"].rsplit("/", 1)[1]
    with client(first) as browser:
        assert browser.get("/s/" + "A" * 43).status_code == 404
        assert browser.get("/").status_code == 403                 # no cookie: the application is not reached
        assert browser.get("/_labmgr/signoff").status_code == 403
        wrong = browser.get("/", headers={"Cookie": f"lmshare_{first.share.id}={token[:-1]}x"})
        assert wrong.status_code == 404 and "Not a valid link" in wrong.text
    with client(second) as other:                                     # the right token, another share's port
        assert other.get(f"/s/{token}").status_code == 404
        assert other.get("/", headers={"Cookie": f"lmshare_{second.share.id}={token}"}).status_code == 404
    assert application.web.seen == []


def test_nothing_but_the_application_goes_through(start, application) -> None:
    started = start()
    with client(started) as browser:
        browser.get(started.links["alice"].removeprefix(started.share.url))
        cookie = f"lmshare_{started.share.id}={browser.cookies.get('lmshare_' + started.share.id)}"
    port = started.share.listen.rsplit(":", 1)[1]
    for request, status in [
        (f"GET http://10.0.0.1:22/ HTTP/1.1\r\nHost: 10.0.0.1:22\r\nCookie: {cookie}\r\n\r\n", b"400"),
        (f"GET http://app01.shop.test:5432/ HTTP/1.1\r\nHost: app01.shop.test:5432\r\nCookie: {cookie}\r\n\r\n", b"400"),
        (f"CONNECT 10.0.0.1:22 HTTP/1.1\r\nHost: 10.0.0.1:22\r\nCookie: {cookie}\r\n\r\n", b"405"),
        (f"GET / HTTP/1.1\r\nHost: app01.shop.test:{application.http_port}\r\nCookie: {cookie}\r\n\r\n", b"400"),
        (f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n\r\n", b"200"),
    ]:
        answer = raw(started, request.encode())
        assert answer.split(b" ")[1] == status, (request, answer[:300])
    assert len(application.web.seen) == 1              # only the last, proper request reached it
    refused = [e for e in evidence_of(started) if e.event == "refused"]
    assert len(refused) == 4 and "10.0.0.1:22" in refused[0].detail


def evidence_of(started):
    time.sleep(0.3)                 # the journal's thread writes behind the server
    with History(_store(started)) as history:
        return history.evidence(LAB, "shop").share_events


def _store(started):
    from labmgr.dumps.store import store_root

    return store_root(started.journal.env)


def test_links_expire_and_can_be_withdrawn(start) -> None:
    started = start(lifetime=timedelta(seconds=2))
    with client(started) as browser:
        assert browser.get(started.links["alice"].removeprefix(started.share.url)).status_code == 303
        assert browser.get("/").status_code == 200
        state.revoke_person(LAB, started.share.id, "bob")
        withdrawn = browser.get(started.links["bob"].removeprefix(started.share.url))
        assert withdrawn.status_code == 403 and "withdrawn" in withdrawn.text
        time.sleep(2.2)
        for path in ("/", "/_labmgr/", started.links["alice"].removeprefix(started.share.url)):
            expired = browser.get(path)
            assert expired.status_code == 410 and "This link has expired" in expired.text, path
    listed = state.active_shares(LAB)
    assert [s.id for s in listed] == [started.share.id] and listed[0].expired()
    assert [p.revoked for p in listed[0].people] == [False, True]
    stored = json.loads(started.share.path.read_text())
    assert all(len(p["token_sha256"]) == 64 for p in stored["people"])       # hashes only, never tokens
    assert started.links["alice"].rsplit("/", 1)[1] not in started.share.path.read_text()


def test_websockets_reach_the_application(start) -> None:
    started = start(port="ws")
    with client(started) as browser:
        browser.get(started.links["alice"].removeprefix(started.share.url))
        cookie = f"lmshare_{started.share.id}={browser.cookies.get('lmshare_' + started.share.id)}"
    url = started.share.url.replace("http://", "ws://") + "/live"
    with ws_connect(url, additional_headers={"Cookie": cookie}, open_timeout=10) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "lab says hello"
    with pytest.raises(Exception):
        with ws_connect(url, open_timeout=10) as ws:        # no token: closed before it opens
            ws.recv(timeout=5)


def test_a_signoff_goes_into_the_history_and_the_report(start, lab_state) -> None:
    started = start()
    with client(started) as browser:
        browser.get(started.links["bob"].removeprefix(started.share.url))
        form = browser.get("/_labmgr/signoff")
        assert "My data is right" in form.text and "Something is wrong" in form.text
        assert browser.post("/_labmgr/signoff", data={"verdict": "wrong", "note": ""}).status_code == 400
        assert browser.post("/_labmgr/signoff", data={"verdict": "right"},
                            headers={"Origin": "http://evil.example"}).status_code == 403
        done = browser.post("/_labmgr/signoff", data={"verdict": "wrong", "note": "invoice 7 is missing"},
                            headers={"Origin": started.share.url})
        assert done.status_code == 200 and "Thank you, bob" in done.text
        assert browser.post("/_labmgr/signoff", data={"verdict": "right", "note": ""}).status_code == 200
    found = evidence(lab_state)
    assert [(s.user, s.verdict, s.note, s.point) for s in found.signoffs] == [
        ("bob", "wrong", "invoice 7 is missing", POINT), ("bob", "right", "my data is right", POINT)]
    report = render_report(found, "md", "now")
    assert "| bob | 2026-11-21T08:00Z | something is wrong | invoice 7 is missing |" in report
    events = [(e.person, e.event) for e in found.share_events]
    assert ("bob", "opened") in events and ("bob", "signoff") in events
    assert f"| {started.share.id} | bob | {found.share_events[1].at} | 0 |" in report     # the share section
    assert "| data right |" in report.split("## Share links")[1]


def test_https_with_a_certificate_and_a_secure_cookie(start, tmp_path) -> None:
    cert, key = tmp_path / "share.pem", tmp_path / "share.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    started = start(tls=check_tls(cert, key))
    assert started.share.url.startswith("https://127.0.0.1:")
    with httpx.Client(base_url=started.share.url, verify=ssl.create_default_context(cafile=str(cert)), timeout=10) as browser:
        opened = browser.get(started.links["alice"].removeprefix(started.share.url), follow_redirects=False)
        assert "secure" in opened.headers["set-cookie"].lower()
        assert browser.get("/").content == PAGE
    with pytest.raises(LabError, match="needs both --cert and --key"):
        check_tls(cert, None)
    with pytest.raises(LabError, match="cannot use certificate"):
        check_tls(key, key)


def test_an_application_that_does_not_answer_is_a_clear_page(start) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    started = start(port=port)
    with client(started) as browser:
        browser.get(started.links["alice"].removeprefix(started.share.url))
        answer = browser.get("/")
        assert answer.status_code == 502 and "The application does not answer" in answer.text


def test_shares_lists_the_open_shares_of_a_lab(start, lab_state) -> None:
    started = start(who=("alice",))
    state.revoke_person(LAB, started.share.id, "alice")
    listed = labmgr("shares", LAB, env={"LABMGR_STATE_DIR": os.environ["LABMGR_STATE_DIR"]})
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        f"share {started.share.id}: app01.shop.test:{started.share.port} at {started.share.url} "
        f"(until {started.share.expires_at}, pid {os.getpid()})", "  alice (revoked)"]
    assert labmgr("shares", "lmh-other", env={"LABMGR_STATE_DIR": os.environ["LABMGR_STATE_DIR"]}).stdout == \
        "lab lmh-other has no open shares\n"


def test_tokens_are_compared_in_constant_time(monkeypatch) -> None:
    share = state.Share("s1", LAB, "shop", "app", "app01", "10.0.0.2", 80, "127.0.0.1:1", "http://x", "", "",
                        people=[state.Person(n, state.token_hash(n * 8)) for n in ("a", "b", "c")])
    compared = []
    real = hmac.compare_digest
    monkeypatch.setattr(state.hmac, "compare_digest", lambda x, y: compared.append(1) or real(x, y))
    assert share.person_for("a" * 8).name == "a" and len(compared) == 3     # every hash, even after a match
    assert share.person_for("nope") is None and len(compared) == 6


def test_bad_arguments_are_one_clear_line() -> None:
    assert parse_duration("4h") == timedelta(hours=4) and parse_duration("90s") == timedelta(seconds=90)
    for bad in ("4", "0h", "soon"):
        with pytest.raises(LabError, match="is not a duration"):
            parse_duration(bad)
    assert people_names(3, None) == ["person 1", "person 2", "person 3"]
    assert people_names(None, "alice, bob") == ["alice", "bob"]
    with pytest.raises(LabError, match="not both"):
        people_names(2, "alice")
    with pytest.raises(LabError, match="each person once"):
        people_names(None, "alice,alice")
    with pytest.raises(LabError, match="not a usable name"):
        people_names(None, "<script>")


@pytest.mark.parametrize("args, message", [
    (["app:80", "--for", "soon"], "--for 'soon' is not a duration"),
    (["app"], "'app' is not SERVER:PORT"),
    (["app:80", "--people", "2", "--names", "a"], "give --people N or --names a,b,c, not both"),
    (["app:80", "--listen", "example.com:80"], "'example.com' is not an IP address of this machine"),
    (["app:80"], "no lab named 'lmh-none'"),
])
def test_share_refuses_bad_input_in_one_line(args, message) -> None:
    assert message in one_line_error(labmgr("share", "lmh-none", *args))


def test_a_killed_servers_share_is_forgotten(lab_state) -> None:
    share = state.Share("dead01", LAB, "shop", "app", "app01", "10.0.0.2", 80, "127.0.0.1:1", "http://x",
                        "2026-11-21T08:00:00Z", "2026-11-21T12:00:00Z", pid=999999)
    share.save()
    share.path.with_suffix(".lock").touch()          # no process holds it
    assert state.active_shares(LAB) == [] and not share.path.exists()


def test_what_the_application_is_told() -> None:
    from labmgr.access.share.proxy import Upstream

    upstream = Upstream("app01.shop.test", 80, opener=None)
    own = "http://share.example:8443"
    sent = upstream.request_headers([
        (b"Host", b"share.example:8443"), (b"Cookie", b"lmshare_ab12=TOKEN; app=1"),
        (b"Referer", own.encode() + b"/orders?q=1"), (b"Origin", own.encode()),
        (b"X-Forwarded-For", b"192.0.2.7"), (b"Connection", b"keep-alive"), (b"Accept", b"text/html")],
        own, "lmshare_ab12")
    assert sent == [(b"host", b"app01.shop.test"), (b"cookie", b"app=1"),
                    (b"referer", b"http://app01.shop.test/orders?q=1"), (b"origin", b"http://app01.shop.test"),
                    (b"accept", b"text/html")]
    for referer in (own + "/s/TOKEN", own + "0/x", "https://elsewhere.example/"):
        assert upstream.request_headers([(b"Referer", referer.encode())], own, "lmshare_ab12") == \
            [(b"host", b"app01.shop.test")], referer
    assert upstream.local_location("http://app01/login", own) == own + "/login"
    assert upstream.local_location("https://sso.example.com/login", own) == "https://sso.example.com/login"


def test_refused_requests_are_kept_sixty_a_minute(lab_state) -> None:
    from labmgr.access.share.journal import Journal

    journal = Journal(lab_state.env, LAB, "s1")
    for n in range(75):
        journal.refused(f"try {n}")
    journal.close()
    refused = [e.detail for e in evidence(lab_state).share_events if e.event == "refused"]
    assert refused[:60] == [f"try {n}" for n in range(60)]
    assert refused[60:] == ["15 more requests refused in the last minute"]


def test_a_sign_off_that_cannot_be_written_says_so(start, lab_state, monkeypatch) -> None:
    import sqlite3

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")
    started = start()
    monkeypatch.setattr(History, "add_signoff", full)
    with client(started) as browser:
        browser.get(started.links["alice"].removeprefix(started.share.url))
        answer = browser.post("/_labmgr/signoff", data={"verdict": "wrong", "note": "invoice 7"})
        assert answer.status_code == 503 and "could not be recorded" in answer.text
        assert "database or disk is full" in answer.text and ">invoice 7</textarea>" in answer.text
        assert browser.get("/").status_code == 200          # the share goes on


def test_a_remote_doors_channels_become_sockets(application) -> None:
    from labmgr.access.share.serve import _socket_opener

    opened = _socket_opener(lambda: socket.create_connection(("127.0.0.1", application.http_port)))()
    assert isinstance(opened, socket.socket)
    opened.sendall(b"GET /x HTTP/1.0\r\nHost: app01\r\n\r\n")
    answer = b""
    while chunk := opened.recv(65536):
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(PAGE)


HANGING_SERVER = """
import fcntl, os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)           # a share server that hangs on SIGTERM
fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
print("holding", flush=True)
time.sleep(600)
"""


def test_ending_a_hanging_share_kills_it(lab_state) -> None:
    share = state.Share("hang01", LAB, "shop", "app", "app01", "10.0.0.2", 80, "127.0.0.1:1", "http://x",
                        "2026-11-21T08:00:00Z", "2099-11-21T12:00:00Z")
    share.save()
    server = subprocess.Popen([sys.executable, "-c", HANGING_SERVER, str(share.path.with_suffix(".lock"))],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline() == "holding\n"
        share.pid = server.pid
        share.save()
        listed = state.active_shares(LAB)
        assert [s.id for s in listed] == ["hang01"]
        state.end_share(listed[0], wait=1)
        assert server.wait(timeout=10) == -signal.SIGKILL
        assert state.active_shares(LAB) == [] and not share.path.exists()
    finally:
        server.kill()
        server.wait()


SERVER_PROCESS = """
import socket, sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from labmgr.access.login import Target
from labmgr.access.share.serve import open_share, serve
env = SimpleNamespace(name="shop", dumps=SimpleNamespace(store=sys.argv[1]))
target = Target(SimpleNamespace(name="app", hostname="app01.shop.test"), "127.0.0.1", None)
started = open_share(sys.argv[2], env, target, 9, lambda: socket.create_connection(("127.0.0.1", 9)),
                     timedelta(hours=1), ["alice"], ("127.0.0.1", 0), None, None, point_of=lambda: "")
print(started.share.path, flush=True)
serve(started)
print("ended", flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_the_server_cleanly(lab_state, sig) -> None:
    server = subprocess.Popen([sys.executable, "-c", SERVER_PROCESS, str(lab_state.store), LAB],
                              stdout=subprocess.PIPE, text=True, env=os.environ)
    try:
        path = Path(server.stdout.readline().strip())
        assert path.exists() and [s.id for s in state.active_shares(LAB)] == [path.stem]
        time.sleep(0.5)                              # serving
        server.send_signal(sig)
        assert server.wait(timeout=15) == 0 and server.stdout.read() == "ended\n"
        assert not path.exists() and not path.with_suffix(".lock").exists()
        assert [e.event for e in evidence(lab_state).share_events] == ["shared", "ended"]
    finally:
        server.kill()
        server.wait()
