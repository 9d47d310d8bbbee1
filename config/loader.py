"""YAML file → validated models, with errors that name the file, the line and the field.

``ConfigError`` carries one ``Problem`` per mistake (source, line, field, reason), which reads
as ``path:line: field: reason``, so a person can jump straight to it and the admin API can
name the field without parsing text back. Duplicate keys, which YAML would silently collapse,
are refused too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from config.schema import SplitgateConfig

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration: where (``source``, ``line``, ``field``) and why.

    ``str()`` gives the one line a person reads: ``routes.yaml:12: routes[0].name: reason``.
    ``field`` is None for a problem with the text itself (not YAML, empty, unreadable)."""

    source: str
    line: int | None
    field: str | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        parts = [where] if where else []
        if self.field is not None:
            parts.append(self.field or "(top level)")
        return ": ".join([*parts, self.reason])


class ConfigError(ValueError):
    """A configuration could not be read or does not validate: ``details`` says where and
    why, one ``Problem`` each; ``problems`` is the same as lines of text."""

    def __init__(self, problems: Sequence[str | Problem]) -> None:
        self.details = [
            p if isinstance(p, Problem) else Problem("", None, None, p) for p in problems
        ]
        self.problems = [str(p) for p in self.details]
        super().__init__("\n".join(self.problems))


def load_config(path: str | Path) -> SplitgateConfig:
    """Read and validate a splitgate configuration file."""
    return load_model(path, SplitgateConfig)


def load_routing_file(path: str | Path) -> SplitgateConfig:
    """The routing file given by ``--config``/``SPLITGATE_CONFIG``; a missing one is named with
    what to do (the image sets ``/etc/splitgate/routes.yaml`` and ships no file there: its
    upstreams are the user's, and a loopback example would answer 502 to every request)."""
    if not Path(path).exists():
        why = (
            "no routing file there: give yours with --config PATH or SPLITGATE_CONFIG "
            "(in a container, mount it at this path); config/examples/routes.yaml is a start"
        )
        raise ConfigError([Problem(str(path), None, None, why)])
    return load_config(path)


def load_model(path: str | Path, model: type[M]) -> M:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        why = f"cannot read the file: {exc.strerror or exc}"
        raise ConfigError([Problem(str(path), None, None, why)]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [Problem(str(path), None, None, f"not UTF-8 text ({exc.reason})")]
        ) from None
    return parse_model(text, model, source=str(path))


def parse_model(text: str, model: type[M], *, source: str = "<config>") -> M:
    """Validate YAML ``text`` as ``model``; ``source`` names it in error messages."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_problem(source, exc)]) from None
    if root is None:
        raise ConfigError([Problem(source, None, None, "the file is empty")])
    duplicates = list(_duplicate_keys(root, ()))
    if duplicates:
        raise ConfigError(
            [Problem(source, line, _dotted(loc), "key given twice") for loc, line in duplicates]
        )
    data: Any = yaml.safe_load(text)
    if not isinstance(data, dict):
        line = root.start_mark.line + 1
        raise ConfigError([Problem(source, line, None, "the top level must be a mapping")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, root, source)) from None


def _yaml_problem(source: str, exc: yaml.YAMLError) -> Problem:
    mark = getattr(exc, "problem_mark", None)
    why = getattr(exc, "problem", None) or str(exc)
    line = mark.line + 1 if mark is not None else None
    return Problem(source, line, None, f"not valid YAML: {why}")


def _problems(exc: ValidationError, root: yaml.Node, source: str) -> list[Problem]:
    return [
        Problem(source, _line_of(root, tuple(e["loc"])), _dotted(tuple(e["loc"])), reason(e))
        for e in exc.errors(include_url=False)
    ]


def describe_validation_error(exc: ValidationError, source: str) -> list[Problem]:
    """The problems of a model validated from something other than a file (no lines)."""
    return [
        Problem(source, None, _dotted(tuple(e["loc"])), reason(e))
        for e in exc.errors(include_url=False)
    ]


def reason(error: Any) -> str:
    """A pydantic error's reason in plain words."""
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "missing":
        return "required field is missing"
    return str(error["msg"]).removeprefix("Value error, ")


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _line_of(node: yaml.Node, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the deepest node along ``loc`` that exists in the file."""
    line = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    # Point at the key for a bad value: that is where the eye goes.
                    line = key.start_mark.line + 1
                    child = value
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            return line
        node = child
    return line


def _duplicate_keys(node: yaml.Node, loc: tuple[Any, ...]) -> Any:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key)
            if name in seen:
                yield (*loc, name), key.start_mark.line + 1
            seen.add(name)
            yield from _duplicate_keys(value, (*loc, name))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*loc, index))
