"""``labmgr share`` without a lab: the real share server (uvicorn, Starlette) in front of a real
HTTP and WebSocket application on 127.0.0.1, with real SQLite evidence. Tokens, expiry,
revocation, what is refused, headers, what reaches the application, sign-offs into the report.
(tests/test_share_lab.py shows the same through a real lab's door in a real browser.)"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
from datetime import timedelta

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from labmgr.access.share import state
from labmgr.access.share.serve import check_tls
from labmgr.errors import LabError
from labmgr.history import History
from labmgr.report import render_report

from helpers import labmgr
from share_helpers import (LAB, PAGE, POINT, application, client, evidence, evidence_of,  # noqa: F401
                           lab_state, raw, start)


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

        token = browser.cookies.get(f"lmshare_{started.share.id}")
        page = browser.get("/", headers={"Cookie": f"lmshare_{started.share.id}={token}; app=1",
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
        (f"GET http://app01.shop.test:5432/ HTTP/1.1\r\nHost: app01.shop.test:5432\r\nCookie: {cookie}\r\n\r\n",
         b"400"),
        (f"CONNECT 10.0.0.1:22 HTTP/1.1\r\nHost: 10.0.0.1:22\r\nCookie: {cookie}\r\n\r\n", b"405"),
        (f"GET / HTTP/1.1\r\nHost: app01.shop.test:{application.http_port}\r\nCookie: {cookie}\r\n\r\n", b"400"),
        (f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n\r\n", b"200"),
    ]:
        answer = raw(started, request.encode())
        assert answer.split(b" ")[1] == status, (request, answer[:300])
    assert len(application.web.seen) == 1              # only the last, proper request reached it
    refused = [e for e in evidence_of(started) if e.event == "refused"]
    assert len(refused) == 4 and "10.0.0.1:22" in refused[0].detail


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
    trusted = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(base_url=started.share.url, verify=trusted, timeout=10) as browser:
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
