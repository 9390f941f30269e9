"""A remote hypervisor, for real: libvirt reached as qemu+ssh://root@127.0.0.1:PORT/system.

A dedicated sshd on 127.0.0.1 (its own host key and authorized key) stands for the
remote host; this machine's libvirt is behind it. Every labmgr command runs as a
user would run it against a remote host: in a mount namespace where the hypervisor's
storage, production's disks and the guest images are hidden (empty tmpfs), and
~/.ssh is a directory the test made (known_hosts with the sshd's host key). So
labmgr can only reach the hypervisor's files over SSH, as on another machine; the
test itself looks at the real files to check where they went.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from labmgr import paths
from labmgr.lab.hypervisors import forget_hypervisor
from labmgr.timeparse import format_point

from dbservers import keygen, running_sshd
from helpers import REPO, create_shop_database, fresh_db_production, leftovers, one_line_error, psql

pytestmark = pytest.mark.libvirt
PREFIX = "lmt-rm"
LAB = "lmt-rm-lab"
T0 = datetime(2026, 11, 20, 6, 0, tzinfo=timezone.utc)
DOT_SSH = Path("/root/.ssh")


@pytest.fixture(scope="module")
def hv(tmp_path_factory):
    """The "remote" hypervisor: sshd with an SFTP subsystem, its URI, its storage directory, and the
    user's ~/.ssh that trusts its host key."""
    made_dot_ssh = not DOT_SSH.exists()
    DOT_SSH.mkdir(mode=0o700, exist_ok=True)          # the mount point of the test's own ~/.ssh
    storage = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-storage-", dir="/var/tmp"))
    with running_sshd(config="Subsystem sftp internal-sftp") as server:
        home = tmp_path_factory.mktemp("dot-ssh")
        (home / "known_hosts").write_text(server.known_hosts_line())
        changed = tmp_path_factory.mktemp("dot-ssh-changed")
        other = keygen(changed / "other_host_key", "not-the-hypervisor")
        kind, blob = Path(f"{other}.pub").read_text().split()[:2]
        (changed / "known_hosts").write_text(f"[127.0.0.1]:{server.port} {kind} {blob}\n")
        uri = f"qemu+ssh://root@127.0.0.1:{server.port}/system?keyfile={server.client_key}"
        hv = {"server": server, "uri": uri, "storage": storage, "home": home, "changed_home": changed}
        yield hv
        if (paths.labs_dir() / LAB).exists():   # a test failed before its lab down: while sshd still runs
            remote_labmgr(hv, "lab", "down", LAB)
    shutil.rmtree(paths.snapshots_dir() / f"{PREFIX}-prod", ignore_errors=True)
    forget_hypervisor(uri)          # in case a test failed before lab gc forgot it: its sshd is gone now
    shutil.rmtree(storage, ignore_errors=True)
    if made_dot_ssh:
        try:
            DOT_SSH.rmdir()
        except OSError:
            pass


def remote_labmgr(hv, *args: str, home: Path | None = None, timeout: float = 900,
                  popen: bool = False):
    """`labmgr ARGS` as on a machine that only reaches the hypervisor over SSH."""
    hidden = [hv["storage"], paths.state_dir() / "production", paths.state_dir() / "images"]
    mounts = [f"mount --bind {home or hv['home']} {DOT_SSH}"]
    mounts += [f"mount -t tmpfs {PREFIX}-hidden {directory}" for directory in hidden]
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", " && ".join(mounts) + ' && exec "$@"',
            "labmgr", sys.executable, "-m", "labmgr", *args]
    if popen:
        return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def remote_production(hv, hypervisor, db_production, tmp_path_factory):
    """The shared db production with PostgreSQL, behind the remote URI; the lab servers' SSH key
    is authorised in it as an administrator would have done."""
    agent, spec = fresh_db_production(hypervisor, db_production, f"{PREFIX}-prod")
    keys = tmp_path_factory.mktemp("lab-keys")
    lab_key = keygen(keys / "id_ed25519", "lmt-rm-user")
    agent.run(["sh", "-c", "mkdir -p -m 700 /root/.ssh && cat > /root/.ssh/authorized_keys"],
              stdin=Path(f"{lab_key}.pub").read_bytes())
    create_shop_database(agent)
    psql(agent, "CREATE TABLE invoices (no integer PRIMARY KEY)")
    spec["hypervisor"] = [{"uri": hv["uri"], "storage": str(hv["storage"])}]
    spec["servers"][0]["dumps"] = [{"name": "invoices", "kind": "postgres", "database": "shop", "via": "agent"}]
    spec["dumps"] = {"store": str(tmp_path_factory.mktemp("store"))}
    path = tmp_path_factory.mktemp("spec") / f"{PREFIX}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    yield {"spec": path, "agent": agent, "lab_key": lab_key, "keys": keys, "env": db_production}
    agent.run(["rm", "-f", "/root/.ssh/authorized_keys"])


def count_invoices_over_ssh(hv, production) -> subprocess.CompletedProcess:
    # host key checked against the lab's known_hosts (learned through the hypervisor at capture)
    options = ["-i", str(production["lab_key"]), "-o", "BatchMode=yes", "-o", "ConnectTimeout=30", "-l", "root"]
    return remote_labmgr(hv, "ssh", *options, LAB, "db01.shop.test", "--",
                         "hostname; runuser -u postgres -- psql -At -d shop -c 'SELECT count(*) FROM invoices'",
                         timeout=180)


def ssh_banner_through_forward(hv) -> str:
    """`labmgr forward LAB db:22`, and the first line the lab server's sshd says through it."""
    process = remote_labmgr(hv, "forward", LAB, "db:22", popen=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("forwarding 127.0.0.1:"), line + process.stderr.read()
        port = int(line.split()[1].split(":")[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            return connection.makefile("rb").readline().decode().strip()
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_the_whole_round_trip_goes_through_ssh(hv, hypervisor, remote_production) -> None:
    spec, agent = str(remote_production["spec"]), remote_production["agent"]
    storage = hv["storage"]

    # two hours of production work, each followed by collection through the remote libvirt's guest agent
    for hour in (1, 2):
        psql(agent, f"INSERT INTO invoices SELECT generate_series({hour * 10 - 9}, {hour * 10})")
        ok(remote_labmgr(hv, "dumps", "collect", spec, "--taken-at", format_point(T0 + timedelta(hours=hour))))

    # capture: the copies are written on the hypervisor's host; here only the manifest and definitions
    captured = ok(remote_labmgr(hv, "snapshot", "capture", spec))
    snapshot_id = captured.split()[1]
    remote_copy = storage / "snapshots" / f"{PREFIX}-prod" / snapshot_id
    assert sorted(p.name for p in (remote_copy / "db").iterdir()) == ["initrd", "kernel", "vda.qcow2"]
    local_copy = paths.snapshots_dir() / f"{PREFIX}-prod" / snapshot_id
    assert sorted(p.name for p in (local_copy / "db").iterdir()) == ["domain.xml"]
    manifest = json.loads((local_copy / "manifest.json").read_text())
    assert manifest["hypervisor"] == hv["uri"] and manifest["storage"] == str(remote_copy)

    # lab up: overlays on the hypervisor's host, the record here
    up = ok(remote_labmgr(hv, "lab", "up", spec, "--name", LAB))
    assert f"lab {LAB} is up on qemu+ssh://root@127.0.0.1:{hv['server'].port}/system" in up
    overlay = storage / "labs" / LAB / "db" / "vda.qcow2"
    assert overlay.is_file()
    # here: the lab's record and its known_hosts (what labmgr ssh checks host keys against)
    assert sorted(p.name for p in (paths.labs_dir() / LAB).iterdir() if p.suffix != ".lock") == \
        ["known_hosts", "lab.json"]
    assert hv["uri"] in (paths.state_dir() / "hypervisors").read_text().splitlines()   # lab gc looks there
    lab_agent = hypervisor.domain(f"{LAB}-db").agent(timeout=60)
    assert psql(lab_agent, "SELECT count(*) FROM invoices") == "20"

    # restore the first hour: the ISO is built here and uploaded with SFTP, then removed there
    restored = ok(remote_labmgr(hv, "lab", "restore", LAB, "--at", format_point(T0 + timedelta(hours=1, minutes=30))))
    assert "skew between servers' dumps" in restored
    assert psql(lab_agent, "SELECT count(*) FROM invoices") == "10"
    assert not (storage / "labs" / LAB / "media").exists()

    probes = remote_production["keys"] / "probes.yaml"
    probes.write_text(yaml.safe_dump({"probes": [{"name": "first-hour", "kind": "sql", "server": "db",
                                                  "query": "SELECT count(*) FROM invoices", "expect": {"equals": 10}}]}))
    probed = remote_labmgr(hv, "probe", LAB, "--probes", str(probes))
    assert probed.returncode == 0 and "first-hour" in probed.stdout, probed.stdout + probed.stderr

    # ssh and forward: the door is on the hypervisor's host, reached over SSH
    logged_in = count_invoices_over_ssh(hv, remote_production)
    assert logged_in.returncode == 0, logged_in.stderr
    assert logged_in.stdout.split() == ["db01.shop.test", "10"]
    assert ssh_banner_through_forward(hv).startswith("SSH-2.0-OpenSSH")
    shown = ok(remote_labmgr(hv, "lab", "show", LAB))
    door = ipaddress.ip_network(remote_production["env"].network)[254]
    assert f"door: open ({door}/24 in lan)" in shown and f"on qemu+ssh://root@127.0.0.1:{hv['server'].port}" in shown
    listed = ok(remote_labmgr(hv, "lab", "list"))
    line = next(line for line in listed.splitlines() if line.startswith(LAB))
    assert "up" in line and "1/1 running" in line and f"127.0.0.1:{hv['server'].port}/system" in line

    # bad input, one line each: the hypervisor's host key changed; the SSH key refused
    changed = one_line_error(remote_labmgr(hv, "ssh", LAB, "db", "--", "true", home=hv["changed_home"]))
    assert f"host key of hypervisor root@127.0.0.1:{hv['server'].port} has changed" in changed
    stranger = keygen(remote_production["keys"] / "stranger")
    bad_spec = remote_production["keys"] / "stranger.yaml"
    bad_spec.write_text(Path(spec).read_text().replace(str(hv["server"].client_key), str(stranger)))
    refused = one_line_error(remote_labmgr(hv, "snapshot", "capture", str(bad_spec)))
    assert f"SSH key refused by hypervisor root@127.0.0.1:{hv['server'].port}" in refused

    # down: nothing left, here or there
    ok(remote_labmgr(hv, "lab", "down", LAB))
    assert leftovers(hypervisor, LAB) == []
    assert not (storage / "labs" / LAB).exists()
    ok(remote_labmgr(hv, "snapshot", "delete", spec, snapshot_id))
    assert not remote_copy.exists() and not local_copy.exists()
    assert leftovers(hypervisor, PREFIX + "-lab") == []

    # gc forgets the hypervisor once nothing is left there (part of this test: alone, nothing was placed)
    ok(remote_labmgr(hv, "lab", "gc"))
    registry = paths.state_dir() / "hypervisors"
    assert hv["uri"] not in (registry.read_text().splitlines() if registry.exists() else [])

