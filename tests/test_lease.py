"""One lease parser: a drill plan's `keep.lease` is read as `lab extend` reads it (lab/lease.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from labmgr.drill.plan import Keep
from labmgr.errors import LabError
from labmgr.lab.lease import lease_hours


@pytest.mark.parametrize("text, hours", [("8h", 8), (" 2d ", 48), ("1H", 1)])
def test_a_plan_keeps_a_lab_as_long_as_lab_extend_would(text, hours):
    assert lease_hours(Keep(lease=text).lease) == hours


@pytest.mark.parametrize("bad", ["", "0h", "8", "eight hours", "3w"])
def test_a_lease_refused_by_one_is_refused_by_both(bad):
    with pytest.raises(LabError):
        lease_hours(bad)
    with pytest.raises(ValidationError, match="is not a lease like 8h or 2d"):
        Keep(lease=bad)
