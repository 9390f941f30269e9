"""`labmgr demo`: a production of two servers on this machine, captured and cloned into a lab.

This is the foundation's round trip (image, production, snapshot, lab, checks
through the guest agent); later stages of the demo add data, dumps and probes.
"""

from __future__ import annotations

import shutil
import time
from importlib.resources import files
from pathlib import Path

from .. import paths
from ..hypervisor import connect
from ..hypervisor.accel import choose_virt_type
from ..image import build_image, load_recipe
from ..lab import records
from ..lab.teardown import lab_down
from ..lab.up import lab_up
from ..progress import Reporter
from ..snapshot import capture
from ..snapshot.store import environment_dir
from ..spec import load_environment
from . import production as prod

PREFIX = "lmdemo"
URI = "qemu:///system"


def demo_production(virt_type: str) -> prod.Production:
    return prod.Production(prefix=PREFIX, network="10.66.0.0/24", gateway="10.66.0.1", virt_type=virt_type,
                           servers=[prod.ProdServer("db", "db01.demo.test", "10.66.0.11", "52:54:00:66:00:11"),
                                    prod.ProdServer("app", "app01.demo.test", "10.66.0.12", "52:54:00:66:00:12")])


def spec_path() -> Path:
    return paths.subdir("demo") / f"{PREFIX}.yaml"


def run_demo(reporter: Reporter, say) -> None:
    timings: dict[str, float] = {}

    def timed(stage: str, action):
        started = time.monotonic()
        result = action()
        timings[stage] = time.monotonic() - started
        return result

    recipe = load_recipe(Path(str(files("labmgr.demo") / "files" / "recipe.yaml")))
    image = timed("image", lambda: build_image(recipe, reporter))
    with connect(URI) as hypervisor:
        virt_type = choose_virt_type("auto", hypervisor)
        production = demo_production(virt_type)
        with reporter.step("production: boot and configure 2 servers"):
            timed("production", lambda: prod.create(hypervisor, production, image))
    spec = production.write_spec(spec_path())
    env = load_environment(spec)
    snapshot = timed("capture", lambda: capture(env, reporter))
    record = timed("lab up", lambda: lab_up(env, spec, snapshot_id=snapshot.id, reporter=reporter))

    say(f"\nLab {record.name} is up, cloned from snapshot {snapshot.id} ({virt_type}):")
    with connect(URI) as hypervisor:
        for server in env.servers:
            agent = hypervisor.domain(record.servers[server.name].domain).agent(timeout=30)
            addresses = {n["mac"]: n["ipv4"] for n in agent.interfaces()}
            ips = ", ".join(ip for nic in server.nics for ip in addresses.get(nic.mac, []))
            say(f"  {server.name}: hostname {agent.hostname()}, {ips}, "
                f"MAC {', '.join(n.mac for n in server.nics)} (as in production)")
        for name, network in record.networks.items():
            say(f"  network {name}: bridge {network.bridge}, no host address, no forward")
    say("\nStage times: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    say(f"\nTry next:\n  labmgr lab show {record.name}\n  virsh console {record.servers['db'].domain}"
        f"   (root / labmgr)\n  labmgr lab up {spec} --name mine   (a second lab, same IPs)\n"
        f"  labmgr demo down   (removes the demo's labs, production and snapshots)")


def demo_down(reporter: Reporter, say) -> None:
    for record in records.all_records():
        if record.environment == PREFIX:
            lab_down(record.name, reporter)
            say(f"removed lab {record.name}")
    with connect(URI) as hypervisor:
        prod.remove(hypervisor, demo_production("qemu"))
    shutil.rmtree(environment_dir(PREFIX), ignore_errors=True)
    shutil.rmtree(paths.state_dir() / "dumps" / PREFIX, ignore_errors=True)    # its dumps and history
    spec_path().unlink(missing_ok=True)
    say("demo production, snapshots and labs removed (the built image stays cached)")
