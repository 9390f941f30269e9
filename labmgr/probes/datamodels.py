"""The probe models every kind shares (``ProbeBase``), and the kinds of the data as a whole:
``consistency`` and ``drift`` (their checks: ``datachecks.py``)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from ..strict import Strict

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
Engine = Literal["postgres", "mariadb"]


class ProbeBase(Strict):
    name: str = Field(pattern=NAME)
    server: str
    timeout: float = Field(default=60, gt=0, le=3600, description="seconds")
    severity: Literal["critical", "warning"] = "critical"
    description: str | None = None


class ConsistencyProbe(ProbeBase):
    """The engines' own checkers over every database the server dumps (only ``engine``'s if given):
    pg_amcheck --heapallindexed and a full read; mariadb-check --extended."""

    kind: Literal["consistency"]
    engine: Engine | None = None
    timeout: float = Field(default=600, gt=0, le=3600, description="seconds")


def _share(value: float | str) -> float | str:
    if isinstance(value, str):
        if not re.fullmatch(r"\d+(\.\d+)?%", value.strip()):
            raise ValueError(f"'{value}' is not a percentage like 10%")
        return value.strip()
    if not 0 <= value <= 1:
        raise ValueError("give a share between 0 and 1, or a percentage like 10%")
    return value


class DriftProbe(ProbeBase):
    """This hour's data profile of the server against the nearest earlier restored hour's."""

    kind: Literal["drift"]
    max_shrink: float | str = Field(default="10%", description="how much a table may shrink: '10%' or 0.1")
    max_entropy_jump: float | str = Field(default="20%", description="how much the share of high-entropy "
                                          "files may rise: '20%' or 0.2")
    new_extensions: bool = Field(default=True, description="fail when files with an extension not seen "
                                 "at the earlier hour appear (.locked)")

    _shares = field_validator("max_shrink", "max_entropy_jump")(classmethod(lambda cls, v: _share(v)))


def nothing_to_check(probe, server) -> str | None:
    """Why a consistency or drift probe on ``server`` (a spec Server) would check nothing; None if it would not."""
    if probe.kind == "consistency" and not any(d.kind in ("postgres", "mariadb") and probe.engine in (None, d.kind)
                                               for d in server.dumps):
        return (f"consistency probe on server {server.name}, which dumps no "
                f"{probe.engine or 'postgres or mariadb'} database")
    if probe.kind == "drift" and not server.dumps:
        return (f"drift probe on server {server.name}, which has no dump sources: its restored hours have "
                "no data to profile")
    return None
