"""Probes: checks of the data and services inside a lab's guests, run through the guest agent.

    probes = load_probes("shop-probes.yaml", env)
    results = run_probes(record, env, probes)

See docs/probes.md for the file format.
"""

from .model import KINDS, load_probes
from .result import ProbeResult
from .runner import run_probes

__all__ = ["KINDS", "ProbeResult", "load_probes", "run_probes"]
