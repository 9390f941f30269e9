"""The base of every model read from a user's file (spec, recipe, probes, plan): an unknown
field is refused (a typo never passes silently) and a loaded model never changes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
