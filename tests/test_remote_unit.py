"""Remote hypervisors without a hypervisor: URIs, spec forms, placement, the relay."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from labmgr.access.relay import BASH_RELAY, PYTHON_RELAY, proxy_command
from labmgr.errors import HypervisorError, LabError
from labmgr.lab.placement import MARGIN, Need, Room, choose
from labmgr.remote.uri import parse_target
from labmgr.spec import load_environment
from labmgr.spec.model import HypervisorSite
from labmgr.storage import REMOTE_DEFAULT, storage_root

from helpers import one_line_error, labmgr

GiB = 2**30


# URIs -------------------------------------------------------------------------------------
def test_an_ssh_uri_names_the_login_libvirt_uses() -> None:
    target = parse_target("qemu+ssh://admin@kvm1.example:2222/system?keyfile=/etc/labmgr/id_ed25519")
    assert (target.user, target.host, target.port, target.keyfile) == ("admin", "kvm1.example", 2222,
                                                                        "/etc/labmgr/id_ed25519")
    assert target.display == "admin@kvm1.example:2222"
    plain = parse_target("qemu+ssh://kvm2/system")
    assert (plain.user, plain.port, plain.keyfile, plain.display) == (None, None, None, "kvm2")
    libssh = parse_target("qemu+libssh://root@kvm3/system?known_hosts=/etc/labmgr/known_hosts")
    assert libssh.known_hosts_files() == [Path("/etc/labmgr/known_hosts")]


@pytest.mark.parametrize("uri, words", [
    ("qemu+ssh://root@kvm1/system?no_verify=1", "no_verify turns off the host key check"),
    ("qemu+tls://kvm1/system", "over SSH, not 'tls'"),
    ("qemu://kvm1/system", "over SSH, not 'tls'"),
    ("qemu+ssh://root@kvm1/system?known_hosts=/tmp/kh", "libvirt's ssh transport ignores known_hosts="),
])
def test_uris_labmgr_cannot_keep_its_promises_with_are_refused(uri, words) -> None:
    with pytest.raises(HypervisorError, match=words):
        parse_target(uri)


# the spec's hypervisor: one URI, or a list -----------------------------------------------
SPEC = {"name": "shop", "networks": [{"name": "lan", "cidr": "10.86.0.0/24"}],
        "servers": [{"name": "db", "hostname": "db01", "domain": "shop-db",
                     "nics": [{"network": "lan", "ip": "10.86.0.11", "mac": "52:54:00:86:00:11"}]}]}


def write(tmp_path: Path, hypervisor) -> Path:
    path = tmp_path / "shop.yaml"
    path.write_text(yaml.safe_dump({**SPEC, "hypervisor": hypervisor}, sort_keys=False))
    return path


def test_one_uri_or_a_list_of_sites(tmp_path) -> None:
    assert load_environment(write(tmp_path, "qemu+ssh://root@kvm1/system")).hypervisor == "qemu+ssh://root@kvm1/system"
    env = load_environment(write(tmp_path, ["qemu+ssh://root@kvm1/system",
                                            {"uri": "qemu+ssh://root@kvm2/system", "storage": "/srv/labmgr"},
                                            {"uri": "qemu:///system", "labs": False}]))
    assert env.hypervisor == "qemu+ssh://root@kvm1/system"        # production's: the first
    assert [(s.uri, str(s.storage) if s.storage else None, s.labs) for s in env.hypervisors] == [
        ("qemu+ssh://root@kvm1/system", None, True), ("qemu+ssh://root@kvm2/system", "/srv/labmgr", True),
        ("qemu:///system", None, False)]
    assert storage_root(env.hypervisors[0]) == REMOTE_DEFAULT
    assert str(storage_root(env.hypervisors[1])) == "/srv/labmgr"


@pytest.mark.parametrize("hypervisor, words", [
    (["qemu:///system", {"uri": "qemu+ssh://kvm2/system", "storage": "srv"}],
     "hypervisor[1].storage: storage 'srv' is not an absolute path"),
    (["qemu+ssh://kvm2/system", "qemu+ssh://kvm2/system"], "hypervisor[1]: duplicate hypervisor"),
    ("qemu+ssh://root@kvm1/system?no_verify=1", "hypervisor: no_verify turns off the host key check"),
    ([{"uri": "qemu+ssh://kvm2/system", "labs": False}], "every hypervisor says labs: false"),
    ([{"uri": "qemu+ssh://kvm2/system", "colour": "blue"}], "hypervisor[0].colour: unknown key 'colour'"),
])
def test_bad_hypervisor_entries_are_one_line(tmp_path, hypervisor, words) -> None:
    line = one_line_error(labmgr("snapshot", "list", str(write(tmp_path, hypervisor))))
    assert "shop.yaml:" in line and words in line, line


# placement ----------------------------------------------------------------------------------
def site(name: str) -> HypervisorSite:
    return HypervisorSite(uri=f"qemu+ssh://root@{name}/system")


NEED = Need(memory=2 * GiB, disk=4 * GiB + MARGIN, snapshot=10 * GiB)


class Survey:
    """Fake answers per host; remembers whom it asked."""

    def __init__(self, **rooms) -> None:
        self.rooms, self.asked = rooms, []

    def __call__(self, asked: HypervisorSite) -> Room:
        name = asked.uri.split("@")[1].split("/")[0]
        self.asked.append(name)
        room = self.rooms[name]
        return room if isinstance(room, Room) else Room(asked, "/var/lib/labmgr", *room)


class Notes:
    def __init__(self) -> None:
        self.notes: list[str] = []

    def step(self, *a, **k):
        raise AssertionError("placement has no steps")

    def note(self, message: str) -> None:
        self.notes.append(message)


def test_the_first_hypervisor_with_room_takes_the_lab_and_later_ones_are_not_asked() -> None:
    survey = Survey(kvm1=(1 * GiB, 100 * GiB, True), kvm2=(8 * GiB, 100 * GiB, False), kvm3=(64 * GiB, 1000 * GiB, True))
    notes = Notes()
    chosen = choose([site("kvm1"), site("kvm2"), site("kvm3")], NEED, survey, notes)
    assert chosen.site.uri == "qemu+ssh://root@kvm2/system" and survey.asked == ["kvm1", "kvm2"]
    assert notes.notes == ["not on qemu+ssh://root@kvm1/system: 1.0 GiB memory free, the lab needs 2.0 GiB"]


def test_a_copy_of_the_snapshot_counts_where_there_is_none() -> None:
    # 12 GiB free: enough for the overlays (5 GiB), not with a 10 GiB copy of the snapshot as well
    survey = Survey(kvm1=(8 * GiB, 12 * GiB, False), kvm2=(8 * GiB, 12 * GiB, True))
    notes = Notes()
    assert choose([site("kvm1"), site("kvm2")], NEED, survey, notes).site.uri == "qemu+ssh://root@kvm2/system"
    assert notes.notes == ["not on qemu+ssh://root@kvm1/system: 12.0 GiB disk free in /var/lib/labmgr, the lab "
                           "needs 15.0 GiB with a copy of the snapshot"]


def test_no_room_anywhere_says_why_for_each() -> None:
    refused = HypervisorError("host key of hypervisor root@kvm2 has changed")
    survey = Survey(kvm1=(1 * GiB, 100 * GiB, True), kvm2=Room(site("kvm2"), error=refused))
    with pytest.raises(LabError) as caught:
        choose([site("kvm1"), site("kvm2")], NEED, survey, Notes())
    assert str(caught.value).startswith(
        "no hypervisor has room for the lab: qemu+ssh://root@kvm1/system: 1.0 GiB memory free, the lab needs "
        "2.0 GiB; qemu+ssh://root@kvm2/system: host key of hypervisor root@kvm2 has changed")


def test_a_single_hypervisor_that_cannot_be_asked_gives_its_own_error() -> None:
    refused = HypervisorError("SSH key refused by hypervisor root@kvm1")
    with pytest.raises(HypervisorError, match="SSH key refused by hypervisor root@kvm1"):
        choose([site("kvm1")], NEED, Survey(kvm1=Room(site("kvm1"), error=refused)), Notes())


# the relay that runs in a remote door -----------------------------------------------------
@pytest.fixture
def upper_server():
    """A TCP server on 127.0.0.1 that answers each line in upper case and closes at the end of the stream."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = server.accept()
        with connection, connection.makefile("rwb") as stream:
            for line in stream:
                stream.write(line.upper())
                stream.flush()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


@pytest.mark.parametrize("relay", ["python", "bash"])
def test_the_relay_carries_bytes_both_ways(upper_server, relay) -> None:
    argv = ([sys.executable, "-c", PYTHON_RELAY] if relay == "python" else ["bash", "-c", BASH_RELAY])
    process = subprocess.Popen([*argv, "127.0.0.1", str(upper_server), "announce"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stderr.readline() == b"labmgr-relay: connected\n"
        for text in (b"hello lab\n", b"second line\n"):
            process.stdin.write(text)
            process.stdin.flush()
            assert process.stdout.readline() == text.upper()
        process.stdin.close()
        if relay == "python":       # the end of stdin reaches the server, which closes: so does the relay
            assert process.wait(timeout=30) == 0 and process.stdout.read() == b""
    finally:
        process.kill()
        process.wait()


def test_the_relay_says_why_it_cannot_connect() -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    done = subprocess.run([sys.executable, "-c", PYTHON_RELAY, "127.0.0.1", str(port), "announce"],
                          capture_output=True, timeout=30)
    assert done.returncode == 1 and done.stderr == f"labmgr-relay: 127.0.0.1:{port}: Connection refused\n".encode()


def test_the_proxy_command_is_the_users_ssh_to_the_hypervisor() -> None:
    hop = parse_target("qemu+ssh://root@kvm1.example:2222/system?keyfile=/k/id%25x")
    command = proxy_command(hop, "labmgr-door-shop-1", "10.20.0.11", 22)
    assert "%%" in command and "%x" not in command.replace("%%", "")     # ssh_config expands single '%'
    argv = shlex.split(command.replace("%%", "%"))
    assert argv[:argv.index("--") + 2] == ["ssh", "-T", "-e", "none", "-o", "BatchMode=yes", "-p", "2222",
                                            "-l", "root", "-i", "/k/id%x", "--", "kvm1.example"]
    remote = shlex.split(argv[-1])
    assert remote[:4] == ["ip", "netns", "exec", "labmgr-door-shop-1"] and remote[-2:] == ["10.20.0.11", "22"]
