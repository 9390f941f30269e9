"""A share's state, journal and process without a lab: token hashes compared in constant time,
stale and hanging servers, refused requests kept in bounds, signals, the command's bad input."""

from __future__ import annotations

import hmac
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from labmgr.access.share import state
from labmgr.access.share.serve import parse_duration, people_names
from labmgr.errors import LabError

from helpers import labmgr, one_line_error
from share_helpers import LAB, PAGE, application, evidence, lab_state, start  # noqa: F401


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
