"""Sign-offs on a lab, and the evidence of a lab for its report."""

from __future__ import annotations

from pathlib import Path

from ..errors import LabError, NotFoundError
from ..history import LabEvidence, Signoff, history_for
from ..history_evidence import consoles_of, row_counts
from ..spec import load_environment
from . import records


def sign_off(name: str, user: str, note: str) -> Signoff:
    """Record that ``user`` checked something in lab ``name`` at the point it is at now."""
    record = records.load(name)
    if not user.strip() or not note.strip():
        raise LabError("a sign-off needs a user and a note saying what was checked",
                       hint='--user NAME --note "Q3 invoices present"')
    env = load_environment(record.spec)
    with history_for(env) as history:
        return history.add_signoff(name, env.name, record.point.get("at", ""), user.strip(), note.strip())


def evidence_for(name: str, spec: Path | None = None) -> LabEvidence:
    """The lab's history; after ``lab down`` the spec must be given to find it."""
    try:
        spec = spec or Path(records.load(name).spec)
    except NotFoundError:
        raise NotFoundError(f"no lab named '{name}' is up to find its environment",
                            hint=f"give the environment: 'labmgr report {name} --spec ENV.yaml'") from None
    env = load_environment(spec)
    with history_for(env) as history:
        evidence = history.evidence(name, env.name)
        evidence.consoles = {run.id: consoles_of(history, run.id) for run in evidence.runs}
        evidence.row_counts = row_counts(history, env.name, name)
        evidence.drills = history.drills(env.name)
    evidence.objectives = env.objectives.seconds() if env.objectives else {}
    if not evidence.created_at and not evidence.restores and not evidence.runs:
        raise NotFoundError(f"environment {env.name} has no history of a lab named '{name}'")
    from .bisect import bisections
    from .mutate import mutations

    evidence.bisections = bisections(env, name, evidence.created_at)
    evidence.mutations = mutations(env, name, evidence.created_at)
    return evidence
