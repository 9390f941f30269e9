"""Collecting dumps from production, for real: sshd, PostgreSQL and MariaDB started on this
machine (tests/dbservers.py, all on 127.0.0.1 / unix sockets) and the production VM's guest agent.

The streamed bytes must restore with the databases' own tools; every failure must be one
line naming server and source, and a broken stream must never end as a success.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import tarfile
import time
import tracemalloc
from pathlib import Path

import pytest

from labmgr.dumps.collect import CHUNK, DumpError, dump_command, open_dump_stream
from labmgr.dumps.sources import agent as agent_source
from labmgr.errors import AgentError, LabmgrError
from labmgr.hypervisor import GuestAgent
from labmgr.spec.model import DumpSource, Environment

import dbservers
from dbservers import free_port, keygen

URI = "qemu:///system"
CUSTOMERS, ORDERS = 300, 2000


# helpers ------------------------------------------------------------------------
def environment(dumps: list[dict], *, domain: str = "lmt-nowhere", spec: dict | None = None) -> Environment:
    """An environment whose server 'db' has ``dumps``; with ``spec``, production's own spec."""
    spec = dict(spec) if spec else {
        "name": "lmt-collect", "hypervisor": URI,
        "networks": [{"name": "lan", "cidr": "10.77.0.0/24"}],
        "servers": [{"name": "db", "hostname": "db01.shop.test", "domain": domain,
                     "nics": [{"network": "lan", "ip": "10.77.0.11", "mac": "52:54:00:77:00:11"}]}],
    }
    spec["servers"] = [{**s, "dumps": dumps if s["name"] == "db" else []} for s in spec["servers"]]
    return Environment.model_validate(spec)


def ssh_source(sshd, name: str, kind: str, **fields) -> dict:
    ssh = {**sshd.access(), **fields.pop("ssh", {})}
    return {"name": name, "kind": kind, "via": "ssh", "ssh": ssh, **fields}


def collect(env: Environment, source: str, dest: Path, **kwargs) -> Path:
    """Write a dump the way a store must: into a temp file, renamed only when the stream ended well."""
    server = env.server("db")
    dump = next(s for s in server.dumps if s.name == source)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with open_dump_stream(env, server, dump, **kwargs) as chunks, open(tmp, "wb") as out:
            for chunk in chunks:
                assert isinstance(chunk, bytes) and 0 < len(chunk) <= CHUNK
                out.write(chunk)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def one_line_error(excinfo, *needles: str) -> str:
    """The error is a DumpError, one line, naming the server and the source and every needle."""
    assert isinstance(excinfo.value, DumpError) and isinstance(excinfo.value, LabmgrError)
    text = str(excinfo.value)
    assert "\n" not in text, text
    for needle in ("server 'db'", *needles):
        assert needle in text, f"{needle!r} not in: {text}"
    return text


# database contents ------------------------------------------------------------------
@pytest.fixture(scope="module")
def shop_pg(postgres_server):
    postgres_server.psql("CREATE DATABASE shop")
    postgres_server.psql(f"""
        CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
        CREATE TABLE orders (id int PRIMARY KEY, customer int REFERENCES customers, total numeric(10,2));
        INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, {CUSTOMERS}) g;
        INSERT INTO orders SELECT g, 1 + g % {CUSTOMERS}, g * 1.25 FROM generate_series(1, {ORDERS}) g;
        CREATE FUNCTION order_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM orders';
    """, database="shop")
    return postgres_server


@pytest.fixture(scope="module")
def shop_maria(mariadb_server):
    rows = ",".join(f"({i}, 'customer {i}')" for i in range(1, CUSTOMERS + 1))
    orders = ",".join(f"({i}, {1 + i % CUSTOMERS}, {i * 1.25:.2f})" for i in range(1, ORDERS + 1))
    mariadb_server.sql("", input=f"""
        CREATE DATABASE shop;
        USE shop;
        CREATE TABLE customers (id int PRIMARY KEY, name varchar(100) NOT NULL) ENGINE=InnoDB;
        CREATE TABLE orders (id int PRIMARY KEY, customer int, total decimal(10,2), touched int DEFAULT 0) ENGINE=InnoDB;
        CREATE TABLE audit (n int);
        INSERT INTO customers VALUES {rows};
        INSERT INTO orders (id, customer, total) VALUES {orders};
        CREATE TRIGGER orders_audit AFTER UPDATE ON orders FOR EACH ROW INSERT INTO audit VALUES (NEW.id);
        CREATE FUNCTION order_count() RETURNS int READS SQL DATA RETURN (SELECT count(*) FROM orders);
    """.encode())
    return mariadb_server


@pytest.fixture(scope="module")
def files_dir():
    root = Path("/var/tmp") / f"lmt-files-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    (root / "uploads" / "2026").mkdir(parents=True)
    (root / "config.ini").write_text("[shop]\nname = test\n")
    (root / "uploads" / "2026" / "invoice.pdf").write_bytes(bytes(range(256)) * 1000)
    (root / "uploads" / "empty").write_bytes(b"")
    yield root
    shutil.rmtree(root, ignore_errors=True)


# commands -------------------------------------------------------------------------
def test_default_dump_commands():
    def source(**fields) -> DumpSource:
        return DumpSource.model_validate(fields)

    ssh_root = {"host": "db01", "key": "/k"}
    assert dump_command(source(name="a", kind="postgres", database="shop", via="ssh", ssh=ssh_root)) == [
        "runuser", "-u", "postgres", "--", "pg_dump", "--format=custom", "--no-password", "shop"]
    assert dump_command(source(name="a", kind="postgres", database="shop", via="agent"))[:4] == [
        "runuser", "-u", "postgres", "--"]
    assert dump_command(source(name="a", kind="postgres", database="shop", via="ssh",
                               ssh={**ssh_root, "user": "postgres"})) == [
        "pg_dump", "--format=custom", "--no-password", "shop"]
    maria = dump_command(source(name="a", kind="mariadb", database="shop"))
    assert maria[:2] == ["sh", "-c"] and "mariadb-dump" in maria[2] and "mysqldump" in maria[2]
    assert maria[3:] == ["mariadb-dump", "--single-transaction", "--routines", "--triggers", "--databases", "shop"]
    assert dump_command(source(name="a", kind="files", path="/srv/my files")) == [
        "tar", "-C", "/srv/my files", "-cf", "-", "."]
    assert dump_command(source(name="a", kind="files", path="/x", dump_command="sh -c 'tar -cf - /x | gzip'")) == [
        "sh", "-c", "tar -cf - /x | gzip"]
    with pytest.raises(DumpError, match="cannot be split"):
        dump_command(source(name="a", kind="files", path="/x", dump_command="sh -c 'unclosed"))


# over SSH -------------------------------------------------------------------------
@pytest.mark.parametrize("override", [False, True], ids=["default-command", "override-with-socket"])
def test_postgres_over_ssh_restores(shop_pg, sshd_server, tmp_path, override):
    fields = {"database": "shop"}
    if override:
        fields["dump_command"] = (f"runuser -u postgres -- pg_dump --format=custom --no-password "
                                  f"-h {shop_pg.socket_dir} -p {shop_pg.port} shop")
    env = environment([ssh_source(sshd_server, "orders", "postgres", **fields)])
    dump = collect(env, "orders", tmp_path / "orders.pgdump")
    data = dump.read_bytes()
    assert data.startswith(b"PGDMP")                 # pg_dump's custom format
    target = f"restored_{'override' if override else 'default'}"
    shop_pg.restore(data, target)
    assert shop_pg.psql("SELECT count(*) FROM customers", target) == str(CUSTOMERS)
    assert shop_pg.psql("SELECT order_count()", target) == str(ORDERS)
    assert (shop_pg.psql("SELECT sum(total) FROM orders", target)
            == shop_pg.psql("SELECT sum(total) FROM orders", "shop"))


@pytest.mark.parametrize("override", [False, True], ids=["default-command", "override-with-socket"])
def test_mariadb_over_ssh_restores(shop_maria, sshd_server, tmp_path, override):
    fields = {"database": "shop"}
    if override:
        fields["dump_command"] = (f"mariadb-dump --socket={shop_maria.socket} --single-transaction "
                                  "--routines --triggers --databases shop")
    env = environment([ssh_source(sshd_server, "shop", "mariadb", **fields)])
    dump = collect(env, "shop", tmp_path / "shop.sql").read_bytes()
    assert b"-- Dump completed" in dump[-200:]
    # --databases writes CREATE DATABASE/USE for 'shop': point those two at a new database
    target = f"restored_{'override' if override else 'default'}"
    rewritten, count = re.subn(rb"^(CREATE DATABASE .*?|USE )`shop`", rb"\1`" + target.encode() + b"`",
                               dump, flags=re.MULTILINE)
    assert count == 2, count
    shop_maria.sql("", input=rewritten)
    assert shop_maria.sql("SELECT count(*) FROM customers", target) == str(CUSTOMERS)
    assert shop_maria.sql(f"SELECT {target}.order_count()", target) == str(ORDERS)
    shop_maria.sql("UPDATE orders SET touched = 1 WHERE id <= 5", target)          # the trigger came along
    assert shop_maria.sql("SELECT count(*) FROM audit", target) == "5"
    assert (shop_maria.sql("SELECT sum(total) FROM orders", target)
            == shop_maria.sql("SELECT sum(total) FROM orders", "shop"))


def test_files_over_ssh_is_a_tar_of_the_directory(files_dir, sshd_server, tmp_path):
    env = environment([ssh_source(sshd_server, "uploads", "files", path=str(files_dir))])
    dump = collect(env, "uploads", tmp_path / "uploads.tar")
    with tarfile.open(dump) as tar:
        names = sorted(m.name for m in tar.getmembers() if m.isfile())
        assert names == ["./config.ini", "./uploads/2026/invoice.pdf", "./uploads/empty"]
        assert tar.extractfile("./uploads/2026/invoice.pdf").read() == bytes(range(256)) * 1000


def test_ssh_stream_is_bounded_in_memory(sshd_server):
    """A slow consumer of a 100 MB dump: SSH flow control keeps what is buffered to one window."""
    env = environment([ssh_source(sshd_server, "big", "files", path="/",
                                  dump_command="head -c 100000000 /dev/zero")])
    server = env.server("db")
    tracemalloc.start()
    try:
        size, start = 0, time.monotonic()
        with open_dump_stream(env, server, server.dumps[0]) as chunks:
            for i, chunk in enumerate(chunks):
                if i == 0:
                    time.sleep(1)         # the remote side fills the window and waits
                size += len(chunk)
        seconds = time.monotonic() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert size == 100_000_000
    assert peak < 40 << 20, f"peak {peak >> 20} MiB"
    print(f"ssh: 100 MB in {seconds:.2f} s ({size / seconds / 1e6:.0f} MB/s), peak traced memory {peak >> 20} MiB")


# SSH errors -----------------------------------------------------------------------------
def test_unknown_host_key_is_refused(shop_pg, sshd_server, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    env = environment([ssh_source(sshd_server, "orders", "postgres", database="shop",
                                  ssh={"known_hosts": str(known)})])
    with pytest.raises(DumpError) as excinfo:
        collect(env, "orders", tmp_path / "x")
    one_line_error(excinfo, "dump 'orders'", f"127.0.0.1:{sshd_server.port}", "is not in", "SHA256:",
                   f"ssh-keyscan -p {sshd_server.port} 127.0.0.1 >> {known}")
    assert not (tmp_path / "x").exists()
    # the fix the message gives works, with hashed entries too (Debian's ssh hashes known_hosts)
    scanned = dbservers.run("ssh-keyscan", "-H", "-p", str(sshd_server.port), "127.0.0.1").stdout
    assert scanned.startswith(b"|1|")
    known.write_bytes(scanned)
    assert collect(env, "orders", tmp_path / "x").read_bytes().startswith(b"PGDMP")


def test_missing_known_hosts_file_is_refused(sshd_server, tmp_path):
    env = environment([ssh_source(sshd_server, "orders", "postgres", database="shop",
                                  ssh={"known_hosts": str(tmp_path / "nope")})])
    with pytest.raises(DumpError) as excinfo:
        collect(env, "orders", tmp_path / "x")
    one_line_error(excinfo, "does not exist", "ssh-keyscan")


def test_changed_host_key_is_refused(sshd_server, tmp_path):
    other = keygen(tmp_path / "other_host_key").with_suffix(".pub").read_text().split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd_server.port} {other[0]} {other[1]}\n")
    env = environment([ssh_source(sshd_server, "orders", "postgres", database="shop",
                                  ssh={"known_hosts": str(known)})])
    with pytest.raises(DumpError) as excinfo:
        collect(env, "orders", tmp_path / "x")
    one_line_error(excinfo, "CHANGED", f"127.0.0.1:{sshd_server.port}",
                   f"ssh-keygen -f {known} -R '[127.0.0.1]:{sshd_server.port}'")


def test_refused_key(sshd_server, tmp_path):
    stranger = keygen(tmp_path / "stranger")
    env = environment([ssh_source(sshd_server, "orders", "postgres", database="shop",
                                  ssh={"key": str(stranger)})])
    with pytest.raises(DumpError) as excinfo:
        collect(env, "orders", tmp_path / "x")
    one_line_error(excinfo, "refused SSH key", str(stranger), "user 'root'")


def test_nothing_listening(tmp_path, sshd_server):
    env = environment([ssh_source(sshd_server, "orders", "postgres", database="shop",
                                  ssh={"port": free_port()})])
    with pytest.raises(DumpError) as excinfo:
        collect(env, "orders", tmp_path / "x")
    one_line_error(excinfo, "cannot connect", "refused")


@pytest.mark.parametrize("kind", ["postgres", "mariadb"])
def test_nonexistent_database_fails_at_the_end(shop_pg, shop_maria, sshd_server, tmp_path, kind):
    env = environment([ssh_source(sshd_server, "gone", kind, database="no_such_db")])
    with pytest.raises(DumpError) as excinfo:
        collect(env, "gone", tmp_path / "gone")
    text = one_line_error(excinfo, "dump 'gone'", "exited", "no_such_db")
    assert ('database "no_such_db" does not exist' in text) if kind == "postgres" else ("Unknown database" in text)
    assert not (tmp_path / "gone").exists()


def test_command_dying_halfway_never_ends_well(sshd_server, tmp_path):
    env = environment([
        ssh_source(sshd_server, "killed", "files", path="/",
                   dump_command="sh -c 'head -c 3000000 /dev/zero; echo about to die >&2; kill -9 $$'"),
        ssh_source(sshd_server, "failed", "files", path="/",
                   dump_command="sh -c 'head -c 3000000 /dev/zero; echo No space left on device >&2; exit 2'"),
    ])
    server = env.server("db")
    for source, needles in [("killed", ("without an exit status", "about to die")),
                            ("failed", ("exited 2", "No space left on device"))]:
        received = 0
        with pytest.raises(DumpError) as excinfo:
            with open_dump_stream(env, server, next(s for s in server.dumps if s.name == source)) as chunks:
                for chunk in chunks:
                    received += len(chunk)
        assert received == 3_000_000           # all the data came, and still no success
        one_line_error(excinfo, f"dump '{source}'", "after 3000000 bytes", *needles)


def test_broken_connection_halfway(sshd_server, tmp_path):
    env = environment([ssh_source(sshd_server, "cut", "files", path="/",
                                  dump_command="sh -c 'head -c 2000000 /dev/zero; sleep 5; head -c 10 /dev/zero'")])
    server = env.server("db")
    received = 0
    with pytest.raises(DumpError) as excinfo:
        with open_dump_stream(env, server, server.dumps[0]) as chunks:
            for chunk in chunks:
                received += len(chunk)
                if received >= 2_000_000:
                    for pid in sshd_server.session_pids():   # the connection's sshd dies
                        os.kill(pid, signal.SIGKILL)
    assert received == 2_000_000
    one_line_error(excinfo, "dump 'cut'", "without an exit status")


def test_overall_timeout(sshd_server, tmp_path):
    env = environment([ssh_source(sshd_server, "slow", "files", path="/",
                                  dump_command="sh -c 'head -c 1000 /dev/zero; sleep 6'")])
    start = time.monotonic()
    with pytest.raises(DumpError) as excinfo:
        collect(env, "slow", tmp_path / "slow", timeout=2)
    assert time.monotonic() - start < 5
    one_line_error(excinfo, "did not finish within 2 s")
    assert not (tmp_path / "slow").exists()


# through the guest agent --------------------------------------------------------------
@pytest.fixture(scope="module")
def prod_agent(production, hypervisor):
    return hypervisor.domain(production.domain_name(production.servers[0])).agent(timeout=60)


def leftover_temp_dirs(agent) -> str:
    return agent.run(["sh", "-c", "ls -d /var/tmp/labmgr-dump-* 2>/dev/null; true"]).strip()


@pytest.mark.libvirt
def test_agent_files_from_production(production, prod_agent, tmp_path):
    prod_agent.run(["sh", "-c", "rm -rf /srv/lmt-site && mkdir -p /srv/lmt-site/img && "
                                "echo '<h1>shop</h1>' > /srv/lmt-site/index.html && "
                                "head -c 300000 /dev/urandom > /srv/lmt-site/img/logo.png && "
                                "sha256sum /srv/lmt-site/img/logo.png > /var/tmp/lmt-logo.sha256"])
    try:
        env = environment([{"name": "site", "kind": "files", "path": "/srv/lmt-site", "via": "agent"}],
                          spec=production.spec())
        dump = collect(env, "site", tmp_path / "site.tar")
        expected = prod_agent.run(["cat", "/var/tmp/lmt-logo.sha256"]).split()[0]
    finally:
        prod_agent.run(["rm", "-rf", "/srv/lmt-site", "/var/tmp/lmt-logo.sha256"])
    with tarfile.open(dump) as tar:
        assert sorted(m.name for m in tar.getmembers() if m.isfile()) == ["./img/logo.png", "./index.html"]
        assert tar.extractfile("./index.html").read() == b"<h1>shop</h1>\n"
        assert hashlib.sha256(tar.extractfile("./img/logo.png").read()).hexdigest() == expected
    assert leftover_temp_dirs(prod_agent) == ""


@pytest.mark.libvirt
def test_agent_streams_50_mb_exactly(production, prod_agent, tmp_path):
    size = 50_000_000
    env = environment([{"name": "blob", "kind": "files", "path": "/", "via": "agent",
                        "dump_command": f"sh -c 'head -c {size} /dev/urandom | tee /var/tmp/lmt-blob'"}],
                      spec=production.spec())
    server = env.server("db")
    digest, received, biggest = hashlib.sha256(), 0, 0
    try:
        start = time.monotonic()
        with open_dump_stream(env, server, server.dumps[0]) as chunks:
            ready = time.monotonic()
            assert leftover_temp_dirs(prod_agent) != ""           # the dump waits in the guest
            for chunk in chunks:
                digest.update(chunk)
                received += len(chunk)
                biggest = max(biggest, len(chunk))
        done = time.monotonic()
        in_guest = prod_agent.run(["sha256sum", "/var/tmp/lmt-blob"], timeout=120).split()[0]
    finally:
        prod_agent.run(["rm", "-f", "/var/tmp/lmt-blob"])
    assert received == size and biggest <= CHUNK
    assert digest.hexdigest() == in_guest
    assert leftover_temp_dirs(prod_agent) == ""
    print(f"agent: 50 MB dumped in the guest in {ready - start:.1f} s, read in {done - ready:.1f} s "
          f"({size / (done - ready) / 1e6:.1f} MB/s), {size / (done - start) / 1e6:.1f} MB/s overall")


@pytest.mark.libvirt
def test_agent_lost_read_is_retried_from_its_offset(production, prod_agent, monkeypatch):
    """A guest-file-read whose reply is lost (the agent did read): the collector seeks back."""
    size = 5_000_000
    env = environment([{"name": "blob", "kind": "files", "path": "/", "via": "agent",
                        "dump_command": f"sh -c 'head -c {size} /dev/urandom | tee /var/tmp/lmt-retry'"}],
                      spec=production.spec())
    server = env.server("db")
    real, reads = GuestAgent.command, []

    def lossy(self, execute, timeout=None, **arguments):
        reply = real(self, execute, timeout, **arguments)
        if execute == "guest-file-read":
            reads.append(arguments["count"])
            if len(reads) == 3:
                raise AgentError("guest agent of 'lmt-prod-db' did not answer guest-file-read: timed out")
        return reply
    monkeypatch.setattr(GuestAgent, "command", lossy)
    digest = hashlib.sha256()
    try:
        with open_dump_stream(env, server, server.dumps[0]) as chunks:
            for chunk in chunks:
                digest.update(chunk)
        in_guest = prod_agent.run(["sha256sum", "/var/tmp/lmt-retry"]).split()[0]
    finally:
        monkeypatch.undo()
        prod_agent.run(["rm", "-f", "/var/tmp/lmt-retry"])
    assert len(reads) == 6                     # 5 MB in 1 MiB reads, one of them twice
    assert digest.hexdigest() == in_guest
    assert leftover_temp_dirs(prod_agent) == ""


@pytest.mark.libvirt
def test_agent_stream_that_breaks_never_ends_well(production, prod_agent, monkeypatch):
    """Reads that keep failing (here: replies larger than libvirt carries) end in a DumpError."""
    monkeypatch.setattr(agent_source, "READ", 4 << 20)
    env = environment([{"name": "blob", "kind": "files", "path": "/", "via": "agent",
                        "dump_command": "head -c 6000000 /dev/zero"}], spec=production.spec())
    server = env.server("db")
    received = 0
    with pytest.raises(DumpError) as excinfo:
        with open_dump_stream(env, server, server.dumps[0]) as chunks:
            for chunk in chunks:
                received += len(chunk)
    assert received == 0
    one_line_error(excinfo, "dump 'blob'", "reading the dump at byte 0 failed 3 times")
    assert leftover_temp_dirs(prod_agent) == ""


@pytest.mark.libvirt
def test_agent_consumer_stopping_early_cleans_up(production, prod_agent):
    env = environment([{"name": "blob", "kind": "files", "path": "/", "via": "agent",
                        "dump_command": "head -c 3000000 /dev/zero"}], spec=production.spec())
    server = env.server("db")
    with open_dump_stream(env, server, server.dumps[0]) as chunks:
        assert len(next(iter(chunks))) == CHUNK
    assert leftover_temp_dirs(prod_agent) == ""
    # the agent is fine afterwards
    assert prod_agent.run(["echo", "ok"]).strip() == "ok"


@pytest.mark.libvirt
def test_agent_failing_command(production, prod_agent):
    env = environment([{"name": "orders", "kind": "postgres", "database": "shop", "via": "agent"},
                       {"name": "broken", "kind": "files", "path": "/", "via": "agent",
                        "dump_command": "sh -c 'head -c 5000 /dev/zero; echo FATAL: database is on fire >&2; exit 3'"}],
                      spec=production.spec())
    server = env.server("db")
    # the test image has no PostgreSQL: the default command fails in the guest
    with pytest.raises(DumpError) as excinfo:
        with open_dump_stream(env, server, server.dumps[0]):
            pytest.fail("a failed dump must not be handed out")
    one_line_error(excinfo, "dump 'orders'", "domain 'lmt-prod-db'", "runuser -u postgres -- pg_dump", "exited")
    with pytest.raises(DumpError) as excinfo:
        with open_dump_stream(env, server, server.dumps[1]):
            pytest.fail("a failed dump must not be handed out")
    one_line_error(excinfo, "dump 'broken'", "exited 3", "FATAL: database is on fire")
    assert leftover_temp_dirs(prod_agent) == ""


@pytest.mark.libvirt
def test_agent_timeout_stops_the_command_in_the_guest(production, prod_agent):
    env = environment([{"name": "slow", "kind": "files", "path": "/", "via": "agent",
                        "dump_command": "sleep 60"}], spec=production.spec())
    server = env.server("db")
    start = time.monotonic()
    with pytest.raises(DumpError) as excinfo:
        with open_dump_stream(env, server, server.dumps[0], timeout=2):
            pass
    assert time.monotonic() - start < 20
    one_line_error(excinfo, "dump 'slow'", "did not finish within 2 s")
    assert "sleep 60" not in prod_agent.run(["ps", "-eo", "args"])
    assert leftover_temp_dirs(prod_agent) == ""


@pytest.mark.libvirt
def test_agent_unknown_domain(tmp_path):
    env = environment([{"name": "site", "kind": "files", "path": "/srv", "via": "agent"}], domain="lmt-no-such-domain")
    with pytest.raises(DumpError) as excinfo:
        collect(env, "site", tmp_path / "site.tar")
    one_line_error(excinfo, "dump 'site'", "lmt-no-such-domain")
