"""Small helpers shared by the integration tests."""

from __future__ import annotations

import hashlib
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import os
import subprocess
import sys
from pathlib import Path

from labmgr.hypervisor import Hypervisor

REPO = Path(__file__).parent.parent


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def backing_chain(path: Path) -> list[tuple[str, str | None]]:
    """The image chain of a (possibly in-use) qcow2: file names and backing files."""
    out = subprocess.run(["qemu-img", "info", "-U", "--backing-chain", "--output=json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return [(i["filename"], i.get("backing-filename")) for i in json.loads(out)]


def labmgr(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real command line, as a user would."""
    return subprocess.run([sys.executable, "-m", "labmgr", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, cwd=REPO)


def psql(agent, sql: str, database: str = "shop") -> str:
    """Run SQL as postgres in a guest through its agent; the unaligned output."""
    return agent.run(["runuser", "-u", "postgres", "--", "psql", "-At", "-d", database, "-c", sql]).strip()


def wait_until_ready(agent, check: str) -> None:
    """Until the shell ``check`` succeeds in the guest (2 minutes at most): its agent answers
    before the boot has started every service."""
    agent.run(["sh", "-c", f"for i in $(seq 120); do {check} >/dev/null 2>&1 && exit 0; sleep 1; done; exit 1"],
              timeout=150)


def create_shop_database(agent) -> None:
    """The 'shop' database in a production guest, once its PostgreSQL accepts connections."""
    wait_until_ready(agent, "pg_isready -q")
    agent.run(["runuser", "-u", "postgres", "--", "createdb", "shop"])


APP_DATA = "/var/lib/app"      # where the tests' productions keep files (sessions) to dump


def fresh_db_production(hypervisor, environment, name: str):
    """The shared db production (conftest's ``db_production``) as a module needs it: no 'shop' nor
    'crm' database, no APP_DATA, no authorised SSH key, whatever a module before left there; and its spec under the
    module's own environment ``name`` (its snapshots and dumps its own). (agent, spec dict)."""
    agent = hypervisor.domain(environment.domain_name(environment.servers[0])).agent(timeout=300)
    wait_until_ready(agent, "pg_isready -q")
    agent.run(["runuser", "-u", "postgres", "--", "dropdb", "--if-exists", "shop"])
    wait_until_ready(agent, "mariadb-admin ping")
    agent.run(["mariadb", "-e", "DROP DATABASE IF EXISTS crm"])
    agent.run(["rm", "-rf", APP_DATA, "/root/.ssh/authorized_keys"])
    spec = environment.spec()
    spec["name"] = name
    return agent, spec


@contextmanager
def lab_of_spec(spec: dict, directory: Path, lab: str):
    """``spec`` written to ``directory`` as ``<name>.yaml``, a snapshot of its production and a lab ``lab``
    of it, all removed afterwards. Yields (spec path, lab record)."""
    import yaml

    from labmgr.lab.teardown import lab_down
    from labmgr.lab.up import lab_up
    from labmgr.snapshot import capture, delete_snapshot
    from labmgr.spec import load_environment

    path = directory / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    env = load_environment(path)
    taken = capture(env)
    try:
        record = lab_up(env, path, name=lab)
        try:
            yield path, record
        finally:
            lab_down(lab, hypervisor_uri="qemu:///system")
    finally:
        delete_snapshot(env.name, taken.id)


def invoicing_spec(hypervisor, environment, directory: Path, name: str | None = None):
    """Production's db (its first server) gets a 'shop' database with an invoices table; the spec,
    written to ``directory``, collects it through the agent into a store there. (agent, spec path).
    With ``name``: production is the shared db production, emptied first, and the environment is ``name``."""
    import yaml

    if name:
        agent, spec = fresh_db_production(hypervisor, environment, name)
    else:
        agent = hypervisor.domain(environment.domain_name(environment.servers[0])).agent(timeout=60)
        spec = environment.spec()
    create_shop_database(agent)
    psql(agent, "CREATE TABLE invoices (no integer PRIMARY KEY, created_at timestamptz NOT NULL)")
    spec["servers"][0]["dumps"] = [{"name": "invoices", "kind": "postgres", "database": "shop", "via": "agent"}]
    spec["dumps"] = {"store": str(directory / "store")}
    spec_path = directory / f"{spec['name']}.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return agent, spec_path


def leftovers(hypervisor: Hypervisor, prefix: str) -> list[str]:
    """Every libvirt object and lab directory whose name starts with ``prefix``."""
    from labmgr import paths

    found = [f"domain {d}" for d in hypervisor.domain_names() if d.startswith(prefix)]
    found += [f"network {n}" for n in hypervisor.network_names() if n.startswith(prefix)]
    found += [f"dir {p}" for p in paths.labs_dir().glob(f"{prefix}*")]
    from labmgr.access.door import namespace_name

    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    found += [f"netns {n}" for n in namespaces if n.startswith(namespace_name(prefix))]
    return found


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """Assert the command failed with one error line, last on stderr, and no traceback; return it.

    Finished progress steps ("✓ stage  1.2 s") may come before it: they are the run's log."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    progress = [line for line in lines[:-1] if not line.lstrip().startswith(("✓", "!"))]
    assert progress == [], result.stderr
    assert lines[-1].startswith("labmgr: error: "), lines[-1]
    return lines[-1]


# a recording HTTP server on 127.0.0.1 ----------------------------------------------
class Recorder(BaseHTTPRequestHandler):
    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        server = self.server
        server.requests.append({"method": self.command, "path": self.path, "body": body,
                                "content_type": self.headers.get("Content-Type")})
        status = server.statuses.pop(0) if server.statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    do_GET = do_POST = do_HEAD = _record

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


@contextmanager
def recording_http_server():
    """A server on 127.0.0.1 that answers 200 (or the queued ``statuses``) and records every request."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.requests = []
    server.statuses = []
    # shutdown() waits for serve_forever's next poll: 0.05 s, not the default 0.5 s after every test
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


PROBE = "lmt-events-probe"


@contextmanager
def libvirt_events(uri: str = "qemu:///system"):
    """Every domain and network lifecycle event libvirt reports while the block runs, as
    ``virsh event`` prints them: seen from outside labmgr, so an object made and removed
    again is caught too. Yields the list, filled when the block ends."""
    import time

    watchers = [subprocess.Popen(["virsh", "-c", uri, *argv, "--loop"], stdout=subprocess.PIPE, text=True, bufsize=1)
                for argv in (["event", "--all"], ["net-event", "--event", "lifecycle"])]
    lines: list[str] = []
    readers = [threading.Thread(target=lambda w=w: lines.extend(iter(w.stdout.readline, "")), daemon=True)
               for w in watchers]
    for reader in readers:
        reader.start()

    def seen(name: str) -> bool:
        return any(f"{name}" in line and "Undefined" in line for line in list(lines))

    # a probe network and domain, defined and undefined until both watchers have reported them
    deadline = time.monotonic() + 30
    while not (seen(f"network {PROBE}") and seen(f"domain '{PROBE}'")):
        assert time.monotonic() < deadline, f"virsh event never reported the probes: {lines}"
        for kind, xml in (("net", f"<network><name>{PROBE}</name><bridge name='lmtevprobe0'/></network>"),
                          ("", f"<domain type='qemu'><name>{PROBE}</name><memory unit='MiB'>16</memory>"
                               f"<os><type>hvm</type></os></domain>")):
            subprocess.run(["virsh", "-c", uri, f"{kind}-define".lstrip("-"), "/dev/stdin"], input=xml, text=True,
                           capture_output=True)
            subprocess.run(["virsh", "-c", uri, f"{kind}-undefine".lstrip("-"), PROBE], capture_output=True)
        time.sleep(0.5)
    events: list[str] = []
    try:
        yield events
    finally:
        time.sleep(1)                          # events of the block's last calls arrive
        for watcher in watchers:
            watcher.terminate()
            watcher.wait()
        for reader in readers:
            reader.join(5)
        events.extend(line.strip() for line in lines if PROBE not in line)
