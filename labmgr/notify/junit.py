"""A drill as JUnit XML, for Jenkins (junit step / xUnit) and GitLab (artifacts:reports:junit).

Mapping::

    <testsuites>
      <testsuite name="labmgr.<environment>" tests failures errors skipped time timestamp>
        <properties>  environment, lab, point, exit_code, rpo_seconds, stage.<name> seconds
        <testcase classname="<environment>.<server>" name="<probe>" time="<seconds>">
          <failure message="<detail>" type="<kind>">   a failed critical probe
          <failure message="[warning] <detail>" ...>  a failed warning probe
          <system-out>                                the probe's output tail
        <testcase classname="<environment>.objectives" name="rto|rpo">
          <failure message="RTO 31m against 30m: MISSED by 1m" type="objective">   a missed objective
      (exit code 2: one <testcase classname="<environment>" name="lab"> with <error>)

Credentials in details, errors and output (URL passwords, ``password=``-style
pairs) are masked: CI artifacts are read by many. Validated in the tests against the Jenkins xUnit plugin's ``junit-10.xsd``.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from ..timeparse import utc
from ..atomic import atomic_write
from ._http import scrub
from .model import EXIT_NOT_RUN, WARNING, ProbeResult, RunSummary

MESSAGE_LIMIT = 1000  # characters of a failure message attribute

# characters XML 1.0 does not allow (consoles emit \x1b, \x00 and friends)
_ILLEGAL = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text: str, limit: int | None = None) -> str:
    text = _ILLEGAL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def _seconds(value: float) -> str:
    # SUREFIRE_TIME in the Jenkins schema: digits and a dot, no exponent, no sign
    return f"{max(0.0, float(value)):.3f}"


def _timestamp(summary: RunSummary) -> str:
    # ISO 8601 without an offset (the Ant/windyroad schema forbids one); always UTC
    return utc(summary.started_at).strftime("%Y-%m-%dT%H:%M:%S")


def _probe_case(suite: ET.Element, environment: str, result: ProbeResult) -> None:
    case = ET.SubElement(suite, "testcase", {
        "classname": _clean(f"{environment}.{result.server}"),
        "name": _clean(result.name),
        "time": _seconds(result.seconds),
    })
    if not result.passed:
        detail = scrub(result.detail)
        message = detail or "probe failed"
        if result.severity == WARNING:
            message = f"[warning] {message}"
        failure = ET.SubElement(case, "failure", {
            "message": _clean(message, MESSAGE_LIMIT),
            "type": _clean(result.kind),
        })
        failure.text = _clean(f"severity: {result.severity}\nkind: {result.kind}\n"
                              f"server: {result.server}\n{detail}")
    if result.output_tail:
        ET.SubElement(case, "system-out").text = _clean(scrub(result.output_tail))


def build(summary: RunSummary) -> ET.Element:
    """The ``<testsuites>`` element for ``summary``."""
    not_run = summary.exit_code == EXIT_NOT_RUN
    if not_run:
        tests, failures, errors = 1, 0, 1
    else:
        tests = len(summary.results) + len(summary.objectives)
        failures = len(summary.failed_results) + sum(1 for j in summary.objectives if not j.met)
        errors = 0
    total = _seconds(summary.duration_seconds)
    root = ET.Element("testsuites", {
        "name": "labmgr", "tests": str(tests), "failures": str(failures),
        "errors": str(errors), "time": total,
    })
    suite = ET.SubElement(root, "testsuite", {
        "name": _clean(f"labmgr.{summary.environment}"),
        "tests": str(tests), "failures": str(failures), "errors": str(errors),
        "skipped": "0", "time": total, "timestamp": _timestamp(summary),
    })
    properties = ET.SubElement(suite, "properties")
    values = [("environment", summary.environment), ("lab", summary.lab),
              ("point", summary.point), ("exit_code", str(summary.exit_code))]
    if summary.rpo_seconds is not None:
        values.append(("rpo_seconds", f"{summary.rpo_seconds:g}"))
    values += [(f"stage.{name}", _seconds(seconds)) for name, seconds in summary.stages.items()]
    for name, value in values:
        ET.SubElement(properties, "property", {"name": _clean(name), "value": _clean(value)})

    if not_run:
        case = ET.SubElement(suite, "testcase", {
            "classname": _clean(summary.environment), "name": "lab", "time": total})
        error = ET.SubElement(case, "error", {
            "message": _clean(scrub(summary.error) or "the lab could not run the probes",
                              MESSAGE_LIMIT),
            "type": "lab",
        })
        error.text = _clean(scrub(summary.error))
        stages = "\n".join(f"{name}: {_seconds(s)} s" for name, s in summary.stages.items())
        if stages:
            ET.SubElement(case, "system-out").text = _clean(f"stages reached:\n{stages}")
    else:
        for result in summary.results:
            _probe_case(suite, summary.environment, result)
        for judged in summary.objectives:
            case = ET.SubElement(suite, "testcase", {"classname": _clean(f"{summary.environment}.objectives"),
                                                     "name": judged.name, "time": "0.000"})
            if not judged.met:
                ET.SubElement(case, "failure", {"message": _clean(judged.describe()), "type": "objective"})
    return root


def to_bytes(summary: RunSummary) -> bytes:
    root = build(summary)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write_junit(path: str | os.PathLike[str], summary: RunSummary) -> Path:
    """Write the JUnit XML for ``summary`` to ``path`` atomically; returns the path."""
    return atomic_write(path, to_bytes(summary))
