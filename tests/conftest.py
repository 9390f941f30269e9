"""Shared fixtures: a real guest image, a real production on libvirt, a sentinel.

Every libvirt object and file a test makes is named with the prefix ``lmt``;
fixtures remove what they made.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Tests run under TCG with a state directory whose image cache survives runs.
os.environ.setdefault("LABMGR_STATE_DIR", "/var/tmp/labmgr-test-state")
os.environ.setdefault("LABMGR_ACCEL", "tcg")

import pytest  # noqa: E402

from labmgr.demo import production as prod  # noqa: E402
from labmgr.hypervisor import connect  # noqa: E402
from labmgr.image import build_image, load_recipe  # noqa: E402

# real sshd, PostgreSQL, MariaDB and an S3-compatible server on 127.0.0.1 (session fixtures)
pytest_plugins = ["dbservers", "s3server"]

TESTS = Path(__file__).parent
URI = "qemu:///system"


@pytest.fixture(scope="session")
def base_image():
    return build_image(load_recipe(TESTS / "images" / "base.yaml"))


@pytest.fixture(scope="session")
def db_image():
    """The guest image with PostgreSQL and MariaDB (dump, restore and probe tests)."""
    return build_image(load_recipe(TESTS / "images" / "db.yaml"))


@pytest.fixture(scope="session")
def hypervisor():
    with connect(URI) as hv:
        yield hv


@pytest.fixture(scope="session")
def production(hypervisor, base_image):
    """Two running production servers on an isolated network; db has a data disk it never mounts."""
    environment = prod.Production(
        prefix="lmt-prod", network="10.77.0.0/24", gateway="10.77.0.1",
        servers=[
            prod.ProdServer("db", "db01.shop.test", "10.77.0.11", "52:54:00:77:00:11", data_disk_mib=64),
            prod.ProdServer("app", "app01.shop.test", "10.77.0.12", "52:54:00:77:00:12"),
        ])
    prod.create(hypervisor, environment, base_image)
    yield environment
    prod.remove(hypervisor, environment)


@pytest.fixture(scope="session")
def db_production(hypervisor, db_image):
    """One running production server of the db image (PostgreSQL, MariaDB), booted once per run and
    shared by the modules that need no more (test_restore, test_hunt, test_tui_real, test_remote,
    test_evidence, test_share_lab, test_restic, test_pgbackrest). Each module
    starts with ``helpers.fresh_db_production`` (what any module before put in it removed) and names
    its own environment, so its snapshots, dumps and labs are its own."""
    environment = prod.Production(prefix="lmq-db", network="10.71.0.0/24", gateway="10.71.0.1", servers=[
        prod.ProdServer("db", "db01.shop.test", "10.71.0.11", "52:54:00:71:00:11", memory=1024,
                        screen=True)])      # a screen: test_evidence takes screenshots
    try:        # a setup that fails half-way leaves no production either
        prod.create(hypervisor, environment, db_image)
        yield environment
    finally:
        prod.remove(hypervisor, environment)


@pytest.fixture(scope="session")
def spec_file(production, tmp_path_factory) -> Path:
    return production.write_spec(tmp_path_factory.mktemp("spec") / "lmt-prod.yaml")


# A TCP listener that accepts and closes every connection; says when it listens.
SENTINEL = """
import socket, sys
server = socket.create_server((sys.argv[1], int(sys.argv[2])))
print("listening", flush=True)
while True:
    server.accept()[0].close()
"""


def sh(*command: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, check=check)


@pytest.fixture(scope="session")
def gateway_sentinel(production):
    """Production's gateway, made real: a network namespace on production's bridge
    holding the gateway address and a TCP listener. Production reaches it; a lab must not."""
    ns, host_end, ns_end = "lmt-gw", "lmt-gw-h", "lmt-gw-n"
    sh("ip", "netns", "del", ns, check=False)
    sh("ip", "link", "del", host_end, check=False)
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end)
    sh("ip", "link", "set", ns_end, "netns", ns)
    sh("ip", "link", "set", host_end, "master", production.bridge, "up")
    sh("ip", "-n", ns, "addr", "add", f"{production.gateway}/24", "dev", ns_end)
    sh("ip", "-n", ns, "link", "set", ns_end, "up")
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    listener = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SENTINEL, production.gateway, "7777"],
                                stdout=subprocess.PIPE, text=True)
    assert listener.stdout.readline().strip() == "listening"
    yield {"ip": production.gateway, "port": 7777}
    listener.kill()
    listener.wait()
    sh("ip", "link", "del", host_end, check=False)
    sh("ip", "netns", "del", ns, check=False)


# Fixtures that make libvirt objects, build images or start root services. A test
# using any of them, directly or through another fixture, is a `libvirt` test
# whatever its module says, so `pytest -m "not libvirt"` stays quick and needs no
# root services (README: the quick check).
NEEDS_LIBVIRT = {"hypervisor", "base_image", "db_image", "production", "db_production", "spec_file",
                 "gateway_sentinel",
                 "postgres_server", "mariadb_server", "sshd_server"}


# Under xdist (pyproject: `-n auto --dist loadgroup`) the libvirt tests all run on one
# worker, in file order, sharing the session's productions; every other module stays
# whole on a worker of its own, so its module fixtures are made once.
@pytest.hookimpl(tryfirst=True)     # before xdist reads the groups
def pytest_collection_modifyitems(items):
    for item in items:
        if NEEDS_LIBVIRT & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.libvirt)
        group = "libvirt" if item.get_closest_marker("libvirt") else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))
