"""`pip install` has nothing to warn about: every folder that ships files is a declared package.

setuptools warns ("Package would be ignored") for each folder inside a package
that holds files but is not listed; a Python package left out of the list is
missing from a wheel. Both are caught here, without installing anything.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def shipped_folders(config: dict) -> set[str]:
    """Package names of every folder, under each mapped package root, that holds a file."""
    found = set()
    for package, folder in config["package-dir"].items():
        root = REPO / folder
        for path in root.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith(".pyc"):
                relative = path.parent.relative_to(root).parts
                found.add(".".join((package, *relative)))
    return found


def test_every_folder_with_files_is_a_declared_package():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = set(config["packages"])
    # a mapped folder inside another mapped one (examples/demo is not inside labmgr/) is its own root
    assert sorted(shipped_folders(config) - declared) == []
    assert sorted(declared - shipped_folders(config)) == []


def test_every_data_folder_says_which_files_it_ships():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    data = config["package-data"]
    for package in config["packages"]:
        root = max((p for p in config["package-dir"] if package == p or package.startswith(p + ".")), key=len)
        inner = package[len(root) + 1:]
        folder = REPO / config["package-dir"][root] / Path(*(inner.split(".") if inner else []))
        files = [p for p in folder.iterdir() if p.is_file() and p.suffix not in (".py", ".pyc")]
        if files:
            assert package in data, f"{package} holds {files[0].name} but has no package-data entry"
