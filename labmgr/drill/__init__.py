"""`labmgr run PLAN.yaml`: the whole drill, unattended."""

from .plan import Plan, load_plan
from .run import run_plan

__all__ = ["Plan", "load_plan", "run_plan"]
