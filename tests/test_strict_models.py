"""Every model read from a user's file has one strict base (labmgr.strict.Strict): unknown fields refused."""

from __future__ import annotations

import importlib
import inspect

import pytest
from pydantic import BaseModel, ValidationError

from labmgr.strict import Strict

USER_FILE_MODULES = ["labmgr.spec.model", "labmgr.probes.model", "labmgr.drill.plan", "labmgr.image.recipe"]


@pytest.mark.parametrize("module", USER_FILE_MODULES)
def test_every_model_of_a_user_file_is_strict(module):
    models = [cls for _, cls in inspect.getmembers(importlib.import_module(module), inspect.isclass)
              if issubclass(cls, BaseModel) and cls.__module__ == module]
    assert models
    assert [cls.__name__ for cls in models if not issubclass(cls, Strict)] == []


def test_strict_refuses_unknown_fields_and_changes():
    class Example(Strict):
        name: str

    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Example(name="a", nmae="typo")
    with pytest.raises(ValidationError, match="frozen"):
        Example(name="a").name = "b"
