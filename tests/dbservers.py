"""Real servers on this machine for the dump-collection tests: sshd, PostgreSQL, MariaDB.

Each is started as root from the distribution's own binaries, with its own
configuration and data in a fresh directory, listening on 127.0.0.1 or only on
a unix socket; each fixture stops what it started and removes its directory.
Nothing here touches the system's own instances (their configs, ports, sockets).

Debian packages: ``openssh-server`` (sshd; ``openssh-client`` for ssh-keygen),
``postgresql`` and ``mariadb-server`` (which brings ``mariadb-client``).
``require_packages`` installs missing ones and says so: they belong in the
Makefile's DEB_PACKAGES.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

PACKAGES = ("openssh-server", "openssh-client", "postgresql", "mariadb-server", "mariadb-client")


# helpers ----------------------------------------------------------------------
def require_packages(*packages: str) -> None:
    """Install the Debian packages that are missing, and tell the developer to list them in the Makefile."""
    missing = [p for p in packages if subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True).stdout != "install ok installed"]
    if not missing:
        return
    message = (f"tests/dbservers.py installs missing Debian packages {' '.join(missing)}: "
               "add them to DEB_PACKAGES in the Makefile")
    warnings.warn(message, stacklevel=2)
    print(message, flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
    result = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                            env=env, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"{message}; apt-get install failed: {result.stderr.strip()[-500:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*command: str, check: bool = True, input: bytes | None = None, env: dict | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(command, input=input, capture_output=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {result.returncode}: "
                             f"{result.stderr.decode(errors='replace').strip()[-2000:]}")
    return result


def as_user(user: str, *command: str) -> list[str]:
    return ["runuser", "-u", user, "--", *command]


def wait_for(condition, timeout: float, what: str, poll: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(poll)


def owned_tmpdir(prefix: str, owner: str | None = None) -> Path:
    """A fresh directory under /var/tmp (pytest's tmp dirs are root-only, and servers drop privileges)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    if owner:
        shutil.chown(path, owner, owner)
    path.chmod(0o755 if owner else 0o700)
    return path


def processes_under(folder: str) -> list[int]:
    """Live processes whose command line names a path starting with ``folder`` (a postmaster's ``-D``) or whose
    working directory does (its children's: they live in the data directory), read in /proc."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            named = folder in (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        try:
            named = named or os.readlink(proc / "cwd").startswith(folder)
        except OSError:
            pass            # a zombie, or gone meanwhile
        if named:
            found.append(int(proc.name))
    return found


def stop_process(process: subprocess.Popen, timeout: float = 20) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# sshd -------------------------------------------------------------------------
@dataclass
class SshServer:
    directory: Path
    port: int
    host: str = "127.0.0.1"
    user: str = "root"
    process: subprocess.Popen | None = None

    @property
    def client_key(self) -> Path:
        return self.directory / "client_key"

    @property
    def known_hosts(self) -> Path:
        return self.directory / "known_hosts"

    @property
    def host_key_pub(self) -> tuple[str, str]:
        """The server's host key: type and base64 blob."""
        kind, blob = (self.directory / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        return kind, blob

    def known_hosts_line(self) -> str:
        kind, blob = self.host_key_pub
        return f"[{self.host}]:{self.port} {kind} {blob}\n"

    def access(self, **overrides) -> dict:
        """The spec's ``ssh`` section for this server."""
        return {"host": self.host, "port": self.port, "user": self.user, "key": str(self.client_key),
                "known_hosts": str(self.known_hosts), **overrides}

    def session_pids(self) -> list[int]:
        """The sshd processes serving connections (children of the listening daemon)."""
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def log(self) -> str:
        return (self.directory / "sshd.log").read_text(errors="replace")


def keygen(path: Path, comment: str = "labmgr-test") -> Path:
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path))
    return path


@contextmanager
def running_sshd(set_env: dict[str, str] | None = None, config: str = "") -> Iterator[SshServer]:
    """sshd on 127.0.0.1:<free port>, root login with a generated key only, its own host key.

    ``set_env`` becomes sshd's ``SetEnv``: variables every session gets (here: where
    the test database servers listen, so the default dump commands find them).
    ``config`` is added to sshd_config (e.g. an SFTP subsystem).
    """
    require_packages("openssh-server", "openssh-client")
    directory = owned_tmpdir("lmt-sshd-")
    server = SshServer(directory, free_port())
    try:
        keygen(directory / "ssh_host_ed25519_key", "lmt-sshd-host")
        keygen(server.client_key)
        (directory / "authorized_keys").write_text((directory / "client_key.pub").read_text())
        server.known_hosts.write_text(server.known_hosts_line())
        settings = "".join(f" {k}={v}" for k, v in (set_env or {}).items())
        (directory / "sshd_config").write_text(f"""\
ListenAddress 127.0.0.1:{server.port}
HostKey {directory}/ssh_host_ed25519_key
PidFile {directory}/sshd.pid
AuthorizedKeysFile {directory}/authorized_keys
AllowUsers root
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
MaxStartups 50
LogLevel VERBOSE
{"SetEnv" + settings if settings else ""}
{config}
""")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)     # sshd's privilege separation directory
        run("/usr/sbin/sshd", "-t", "-f", str(directory / "sshd_config"))
        log = open(directory / "sshd.log", "wb")
        server.process = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(directory / "sshd_config")],
                                          stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()

        def listening() -> bool:
            assert server.process.poll() is None, f"sshd exited: {server.log()}"
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", server.port)) == 0
        wait_for(listening, 20, "sshd listening")
        yield server
    finally:
        if server.process is not None:
            stop_process(server.process)
        shutil.rmtree(directory, ignore_errors=True)


# PostgreSQL -------------------------------------------------------------------
@dataclass
class Postgres:
    directory: Path
    port: int
    bindir: Path
    process: subprocess.Popen | None = None

    @property
    def socket_dir(self) -> Path:
        return self.directory

    @property
    def env(self) -> dict[str, str]:
        """What libpq needs to find this server (a client's PGHOST/PGPORT)."""
        return {"PGHOST": str(self.socket_dir), "PGPORT": str(self.port)}

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` as the postgres superuser (peer authentication over the socket)."""
        return run(*as_user("postgres", str(self.bindir / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                            "-d", database, "-c", sql), env=self.env).stdout.decode().strip()

    def restore(self, dump: bytes, database: str) -> None:
        """A custom-format dump into a new database, with the server's own pg_restore."""
        self.psql(f'CREATE DATABASE "{database}"')
        run(*as_user("postgres", str(self.bindir / "pg_restore"), "--no-owner", "--exit-on-error",
                     "-d", database), input=dump, env=self.env)


@contextmanager
def running_postgres(settings: dict[str, str] | None = None) -> Iterator[Postgres]:
    """A PostgreSQL cluster in a fresh directory: unix socket only (no TCP), peer authentication;
    ``settings`` are more server settings (e.g. WAL archiving)."""
    require_packages("postgresql")
    initdbs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    assert initdbs, "PostgreSQL's server binaries are not in /usr/lib/postgresql/*/bin"
    bindir = Path(initdbs[-1]).parent
    directory = owned_tmpdir("lmt-pg-", owner="postgres")
    server = Postgres(directory, free_port(), bindir)
    try:
        run(*as_user("postgres", str(bindir / "initdb"), "-D", str(directory / "data"), "-U", "postgres",
                     "--auth-local=peer", "--auth-host=reject", "-E", "UTF8", "--locale=C.UTF-8"))
        log = open(directory / "postgres.log", "wb")
        server.process = subprocess.Popen(
            [str(bindir / "postgres"), "-D", str(directory / "data"), "-p", str(server.port),
             "-k", str(directory), "-c", "listen_addresses=", "-c", "fsync=off",
             *[f"-c{key}={value}" for key, value in (settings or {}).items()]],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, user="postgres", group="postgres",
            extra_groups=[], cwd=directory)
        log.close()

        def ready() -> bool:
            assert server.process.poll() is None, (directory / "postgres.log").read_text()
            return run(str(bindir / "pg_isready"), "-q", env=server.env, check=False).returncode == 0
        wait_for(ready, 60, "PostgreSQL accepting connections")
        yield server
    finally:
        if server.process is not None:
            # SIGINT is PostgreSQL's fast shutdown
            server.process.send_signal(signal.SIGINT)
            try:
                server.process.wait(30)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()
        shutil.rmtree(directory, ignore_errors=True)


# MariaDB ----------------------------------------------------------------------
@dataclass
class MariaDB:
    directory: Path
    process: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def socket(self) -> Path:
        return self.directory / "mysqld.sock"

    def sql(self, sql: str, database: str | None = None, input: bytes | None = None) -> str:
        """Run ``sql`` (or ``input``) as root, authenticated by unix_socket."""
        command = ["mariadb", "--no-defaults", f"--socket={self.socket}", "-u", "root", "-N", "-B"]
        if sql:
            command += ["-e", sql]
        if database:
            command.append(database)
        return run(*command, input=input).stdout.decode().strip()


@contextmanager
def running_mariadb() -> Iterator[MariaDB]:
    """A MariaDB server in a fresh datadir as user mysql: unix socket only (--skip-networking)."""
    require_packages("mariadb-server", "mariadb-client")
    directory = owned_tmpdir("lmt-maria-", owner="mysql")
    server = MariaDB(directory)
    # Debian's /etc/mysql/mariadb.cnf names the system socket, and option files beat
    # MYSQL_UNIX_PORT; $MYSQL_HOME/my.cnf is read after /etc/mysql, so it wins.
    (directory / "my.cnf").write_text(f"[client]\nsocket={server.socket}\n")
    server.env = {"MYSQL_HOME": str(directory)}
    datadir = directory / "data"
    try:
        run("mariadb-install-db", "--no-defaults", "--user=mysql", f"--datadir={datadir}",
            "--auth-root-authentication-method=socket", "--skip-test-db", timeout=180)
        log = open(directory / "mariadbd.out", "wb")
        server.process = subprocess.Popen(
            ["/usr/sbin/mariadbd", "--no-defaults", "--user=mysql", f"--datadir={datadir}",
             f"--socket={server.socket}", "--skip-networking", f"--pid-file={directory}/mariadbd.pid",
             f"--log-error={directory}/error.log", "--innodb-buffer-pool-size=64M",
             "--innodb-log-file-size=16M", "--skip-log-bin"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()

        def ready() -> bool:
            assert server.process.poll() is None, (directory / "error.log").read_text(errors="replace")
            return run("mariadb-admin", "--no-defaults", f"--socket={server.socket}", "-u", "root", "ping",
                       check=False).returncode == 0
        wait_for(ready, 60, "MariaDB accepting connections")
        yield server
    finally:
        if server.process is not None:
            stop_process(server.process, timeout=60)
        shutil.rmtree(directory, ignore_errors=True)


# pytest fixtures (session-wide: start each server once) -----------------------------
@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDB]:
    with running_mariadb() as server:
        yield server


@pytest.fixture(scope="session")
def sshd_server(postgres_server, mariadb_server) -> Iterator[SshServer]:
    """sshd whose sessions find the test PostgreSQL and MariaDB by environment, as the
    default dump commands would find production's servers by their defaults."""
    with running_sshd({**postgres_server.env, **mariadb_server.env}) as server:
        yield server
