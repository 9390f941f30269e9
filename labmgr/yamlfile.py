"""Load a YAML file into a pydantic model, with errors that name file, line and field.

PyYAML's composer gives every node a start mark; we keep a map from the path of
each value (``("servers", 0, "nics", 1, "mac")``) to its line, so a pydantic
error's ``loc`` can be turned back into ``file:line``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .errors import SpecError

Model = TypeVar("Model", bound=BaseModel)
Loc = tuple[Any, ...]


def _construct(node: yaml.Node, loc: Loc, lines: dict[Loc, int], source: str) -> Any:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):      # `? [a, b]` or `{a: 1}: x`: unhashable
                raise SpecError(f"{source}:{key_node.start_mark.line + 1}: a key must be a plain word, "
                                f"not a {'list' if isinstance(key_node, yaml.SequenceNode) else 'mapping'}")
            key = _scalar(key_node)
            if key in result:
                raise SpecError(f"{source}:{key_node.start_mark.line + 1}: duplicate key '{key}'")
            result[key] = _construct(value_node, (*loc, key), lines, source)
            lines[(*loc, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*loc, i), lines, source) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def read(path: Path) -> tuple[Any, dict[Loc, int]]:
    """Parse ``path``; return the plain data and the line of every value."""
    source = str(path)
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise SpecError(f"{source}: file not found") from None
    except OSError as exc:
        raise SpecError(f"{source}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise SpecError(f"{source}{line}: invalid YAML: {_one_line(exc.problem or exc.context)}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: invalid YAML: {_one_line(exc)}") from None
    if node is None:
        raise SpecError(f"{source}: the file is empty")
    lines: dict[Loc, int] = {}
    try:
        data = _construct(node, (), lines, source)
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: invalid YAML: {_one_line(exc)}") from None
    return data, lines


def _one_line(problem: object) -> str:
    """PyYAML's messages run over several lines (a mark, a snippet): an error is one line."""
    return " ".join(str(problem).split())


def line_of(lines: dict[Loc, int], loc: Loc) -> int:
    """The line of the deepest part of ``loc`` that the file actually has."""
    loc = tuple(loc)
    while loc and loc not in lines:
        loc = loc[:-1]
    return lines.get(loc, 1)


def describe(loc: Loc) -> str:
    """``("servers", 0, "nics", 1, "mac")`` -> ``servers[0].nics[1].mac``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass(frozen=True)
class Source:
    """A loaded file and the line of each of its values, for errors found after validation."""

    path: Path
    lines: dict[Loc, int]

    def error(self, loc: Loc, message: str) -> SpecError:
        field = describe(loc) or "(top level)"
        return SpecError(f"{self.path}:{line_of(self.lines, loc)}: {_printable(f'{field}: {message}')}")


def _printable(text: str) -> str:
    """Keys and values from the file may hold newlines or other control characters: shown
    escaped, so the error stays one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def load(path: Path, model: type[Model]) -> tuple[Model, Source]:
    """Read ``path`` and validate it as ``model``; any problem becomes one SpecError line."""
    path = Path(path)
    data, lines = read(path)
    source = Source(path, lines)
    if not isinstance(data, dict):
        raise SpecError(f"{path}:1: expected a mapping at the top level")
    try:
        return model.model_validate(data), source
    except ValidationError as exc:
        raise validation_error(exc, source) from None


def validation_error(exc: ValidationError, source: Source,
                     relocate: Callable[[Loc], Loc] = lambda loc: loc) -> SpecError:
    """pydantic's first problem as one line naming file, line and field."""
    errors = exc.errors()
    # a misspelt key explains a "missing" one better than the other way round
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = relocate(tuple(error["loc"]))
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = f"unknown key '{loc[-1]}'"
    elif error["type"] == "missing":
        message = f"required key '{loc[-1]}' is missing"
    elif message.startswith("Value error, "):
        message = message[len("Value error, "):]
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return source.error(loc, message + more)
