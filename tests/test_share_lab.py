"""``labmgr share`` on a real lab, in a real browser (Debian's chromium through selenium).

The shared one-server production (conftest's db_production: PostgreSQL with invoices, and
here a small web application listing them, removed again at the end) has one hour of dumps; a
lab of it is restored to that hour and shared. The link opens the application under the banner
naming the lab and its point in time; a sign-off sent from the browser is in ``labmgr report``;
expired and wrong links, and requests for anything but the shared server and port, are refused;
the isolation probe passes with the share open; and ``lab down`` ends the share. With
LABMGR_SCREENSHOTS=DIR the pages are saved there
(docs/screenshots/share.png, share-signoff.png).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from labmgr import paths
from labmgr.dumps.hourly import collect
from labmgr.dumps.store import store_root
from labmgr.lab import records
from labmgr.lab.probing import probe_lab
from labmgr.lab.restore import lab_restore
from labmgr.lab.teardown import lab_down
from labmgr.lab.up import lab_up
from labmgr.snapshot import capture, delete_snapshot
from labmgr.spec import load_environment
from labmgr.timeparse import format_point

from helpers import REPO, invoicing_spec, labmgr, leftovers, psql

# setting up a snapshot, a lab and a restore of the shared production takes ~2 min on an idle 2-core
# machine, several times that when other guests share its cores
pytestmark = [pytest.mark.libvirt, pytest.mark.timeout(1800)]
LAB = "lmh-share"
IP = "10.71.0.11"          # conftest's db_production
HOUR = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

# The shop's web application: each request gets the invoice list from PostgreSQL at that moment
# (nc answers one connection at a time; the page is made after the request arrives).
APP = {
    "/usr/local/bin/shop-page": r"""#!/bin/sh
while read -r line; do [ -z "$(printf '%s' "$line" | tr -d '\r')" ] && break; done
printf 'HTTP/1.0 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n'
printf '<html><head><title>Shop invoices</title><style>body{font-family:sans-serif;margin:1.5em}'
printf 'table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:.2em .8em}</style></head><body>'
printf '<h1 id="app-title">Shop invoices</h1><p id="app-count">%s invoices in the books</p>' \
  "$(runuser -u postgres -- psql -At -d shop -c 'SELECT count(*) FROM invoices')"
runuser -u postgres -- psql -d shop -H -c "SELECT no AS invoice, to_char(created_at, 'YYYY-MM-DD HH24:MI') AS created FROM invoices ORDER BY no"
printf '<footer>shop v1.4.2</footer></body></html>\n'
""",
    "/usr/local/bin/shop-web": """#!/bin/sh
rm -f /run/shop-web.fifo && mkfifo /run/shop-web.fifo
while :; do cat /run/shop-web.fifo | nc -l -N 80 | /usr/local/bin/shop-page > /run/shop-web.fifo; done
""",
    "/etc/systemd/system/shop-web.service": "[Unit]\nDescription=shop web\nAfter=postgresql.service\n"
                                            "[Service]\nExecStart=/usr/local/bin/shop-web\n"
                                            "[Install]\nWantedBy=multi-user.target\n",
}


@pytest.fixture(scope="module")
def shared_lab(hypervisor, db_production, tmp_path_factory):
    """A lab of the shared one-server db production (environment lmh), restored to HOUR (ten invoices)."""
    agent, spec_path = invoicing_spec(hypervisor, db_production, tmp_path_factory.mktemp("lmh"), name="lmh")
    try:
        for path, content in APP.items():
            agent.run(["sh", "-c", f"cat > {path} && chmod 755 {path}"], stdin=content.encode())
        agent.run(["systemctl", "enable", "--now", "shop-web.service"], timeout=60)
        psql(agent, f"INSERT INTO invoices SELECT n, '{HOUR.isoformat()}' FROM generate_series(1, 10) n")
        env = load_environment(spec_path)
        assert not collect(env, taken_at=HOUR).failed
        psql(agent, "DELETE FROM invoices")          # the snapshot has none: the restore brings them back
        taken = capture(env)
        try:
            lab_up(env, spec_path, name=LAB)
            try:
                lab_restore(LAB, format_point(HOUR + timedelta(minutes=30)))
                yield env, spec_path
            finally:
                if records.lab_dir(LAB).exists() or leftovers(hypervisor, LAB):
                    lab_down(LAB, hypervisor_uri="qemu:///system")
        finally:
            delete_snapshot(env.name, taken.id)
            with contextlib.suppress(OSError):
                (paths.snapshots_dir() / env.name).rmdir()
            shutil.rmtree(store_root(env), ignore_errors=True)
    finally:        # the shared production without the application, as the next module expects it
        agent.run(["systemctl", "disable", "--now", "shop-web.service"], timeout=60)
        agent.run(["rm", "-f", *APP, "/run/shop-web.fifo"])
        agent.run(["systemctl", "daemon-reload"], timeout=60)


class Share:
    """``labmgr share`` running as people start it; its printed links."""

    def __init__(self, people: int, *args: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "labmgr", "share", LAB, *args], cwd=REPO,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.header = self.process.stdout.readline()
        assert self.header.startswith(f"sharing db01.shop.test:80 ({IP})"), \
            self.header + self.process.stderr.read()
        self.id = self.header.split(" as share ")[1].split()[0]
        self.links = {}
        for _ in range(people):
            name, link = self.process.stdout.readline().rsplit(None, 1)
            self.links[name.strip()] = link
        self.base = next(iter(self.links.values())).split("/s/")[0]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=15)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1100,720", "--no-first-run", "--disable-background-networking"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def raw(base: str, request: str) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request.encode())
        return sock.recv(65536)


def wait_for(condition, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)
    return value


def test_a_share_in_a_real_browser(shared_lab, browser, tmp_path) -> None:
    from selenium.webdriver.common.by import By

    env, spec_path = shared_lab
    point = records.load(LAB).point["at"]
    share = Share(2, "db01.shop.test:80", "--names", "alice,bob", "--for", "1h")
    short = Share(1, "db:80", "--for", "3s")
    try:
        # the link opens the application under the banner naming the lab and its point in time
        browser.get(share.links["alice"])
        assert browser.find_element(By.ID, "labmgr-lab").text == LAB
        assert browser.find_element(By.ID, "labmgr-point").text == point
        browser.switch_to.frame(browser.find_element(By.ID, "labmgr-app"))
        assert wait_for(lambda: browser.find_elements(By.ID, "app-count")).pop().text == "10 invoices in the books"
        browser.switch_to.default_content()
        shots = Path(os.environ.get("LABMGR_SCREENSHOTS") or tmp_path)
        browser.save_screenshot(str(shots / "share.png"))

        # the sign-off page: "something is wrong" with a note, sent from the browser
        browser.find_element(By.ID, "labmgr-signoff").click()
        wait_for(lambda: browser.find_elements(By.ID, "verdict-wrong"))
        browser.find_element(By.ID, "verdict-wrong").click()
        browser.find_element(By.ID, "note").send_keys("invoice 11 from Tuesday is missing")
        browser.save_screenshot(str(shots / "share-signoff.png"))
        browser.find_element(By.ID, "labmgr-submit").click()
        assert "Thank you, alice" in wait_for(lambda: browser.find_elements(By.ID, "labmgr-signed")).pop().text

        report = labmgr("report", LAB)
        assert report.returncode == 0, report.stderr
        assert f"| alice | {point} | something is wrong | invoice 11 from Tuesday is missing |" in report.stdout
        assert f"| {share.id} | alice |" in report.stdout             # the share section: alice opened it

        # refused: a wrong token, an expired link, requests for another host or port through the share
        browser.get(share.base + "/s/" + "x" * 43)
        assert "Not a valid link" in browser.page_source
        time.sleep(3)
        browser.get(short.links["person 1"])
        assert "This link has expired" in browser.page_source
        cookie = next(c for c in browser.get_cookies() if c["name"] == f"lmshare_{share.id}")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        header = f"Cookie: lmshare_{share.id}={cookie['value']}\r\n"
        port = share.base.rsplit(":", 1)[1]
        for request in (f"GET http://{IP}:22/ HTTP/1.1\r\nHost: {IP}:22\r\n{header}\r\n",
                        f"GET http://db01.shop.test:5432/ HTTP/1.1\r\nHost: db01.shop.test:5432\r\n{header}\r\n",
                        f"CONNECT {IP}:5432 HTTP/1.1\r\nHost: {IP}:5432\r\n{header}\r\n",
                        f"GET / HTTP/1.1\r\nHost: db01.shop.test:5432\r\n{header}\r\n"):
            assert raw(share.base, request).split(b" ")[1] in (b"400", b"405"), request
        assert raw(share.base, f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{header}\r\n").split(b" ")[1] == b"200"

        # the lab is as isolated as before
        probes = tmp_path / "probes.yaml"
        probes.write_text(yaml.safe_dump({"probes": [{"name": "isolated", "kind": "isolation", "timeout": 30}]}))
        summary = probe_lab(LAB, probes)
        assert [r.passed for r in summary.results] == [True], summary.results

        shown = labmgr("lab", "show", LAB)
        assert f"share {share.id}: db01.shop.test:80 at {share.base}" in shown.stdout and "    bob" in shown.stdout

        # withdrawn for bob alone, then lab down ends the share: its process exits and its port closes
        assert labmgr("unshare", LAB, share.id, "--person", "bob").returncode == 0
        browser.get(share.links["bob"])
        assert "This link was withdrawn" in browser.page_source
        down = labmgr("lab", "down", LAB)
        assert down.returncode == 0 and "2 shares ended" in down.stdout, down.stdout + down.stderr
        assert share.process.wait(timeout=15) == 0 and short.process.wait(timeout=15) == 0
        with pytest.raises(OSError):
            raw(share.base, "GET / HTTP/1.0\r\n\r\n")
    finally:
        share.stop()
        short.stop()
