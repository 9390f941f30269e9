"""Probes of the guest itself (command, checksum): a command's exit status and output, files' sha256 sums."""

from __future__ import annotations

import re

from ..hypervisor.agent import ExecResult
from .plans import Context, Plan, Verdict, failed_command


# command -----------------------------------------------------------------

def plan_command(probe, context: Context) -> Plan:
    def evaluate(result: ExecResult) -> Verdict:
        if result.exit_code not in probe.exits:
            wanted = " or ".join(map(str, probe.exits))
            return False, failed_command(result, "command") + f" (expected exit {wanted})"
        if probe.output_matches is not None:
            output = result.stdout + result.stderr
            if not re.search(probe.output_matches, output, re.MULTILINE):
                last = output.strip().splitlines()[-1:] or ["no output"]
                return False, f"output does not match /{probe.output_matches}/ (last line: {last[0][:120]})"
            return True, f"exit {result.exit_code}, output matches /{probe.output_matches}/"
        return True, f"exit {result.exit_code}"
    return Plan(probe.argv, evaluate)


# checksum ----------------------------------------------------------------

def judge_checksums(output: str, manifest: dict[str, str]) -> Verdict:
    found: dict[str, str] = {}
    for line in output.splitlines():
        digest, sep, path = line.partition("  ")
        if sep and re.fullmatch(r"[0-9a-f]{64}", digest):
            found[path] = digest
    bad = []
    for path, expected in manifest.items():
        actual = found.get(path)
        if actual is None:
            bad.append(f"{path} (missing or unreadable)")
        elif actual != expected:
            bad.append(f"{path} (sha256 {actual[:12]}..., expected {expected[:12]}...)")
    if bad:
        return False, f"{len(bad)} of {len(manifest)} files differ: " + ", ".join(bad[:10]) + \
            (f", ... ({len(bad) - 10} more)" if len(bad) > 10 else "")
    return True, f"{len(manifest)} files match their sha256"


def plan_checksum(probe, context: Context) -> Plan:
    def evaluate(result: ExecResult) -> Verdict:
        return judge_checksums(result.stdout, probe.manifest)
    return Plan(["sha256sum", "--", *probe.manifest], evaluate)
