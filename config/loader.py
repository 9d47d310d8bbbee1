"""YAML file → validated models, with errors that name the file, the line and the field.

``ConfigError`` carries one line per problem, in the form ``path:line: field: reason``, so a
person can jump straight to the mistake. Duplicate keys, which YAML would silently collapse,
are refused too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from config.schema import SplitgateConfig

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file could not be read or does not validate."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_config(path: str | Path) -> SplitgateConfig:
    """Read and validate a splitgate configuration file."""
    return load_model(path, SplitgateConfig)


def load_model(path: str | Path, model: type[M]) -> M:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text ({exc.reason})"]) from None
    return parse_model(text, model, source=str(path))


def parse_model(text: str, model: type[M], *, source: str = "<config>") -> M:
    """Validate YAML ``text`` as ``model``; ``source`` names it in error messages."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_problem(source, exc)]) from None
    if root is None:
        raise ConfigError([f"{source}: the file is empty"])
    duplicates = list(_duplicate_keys(root, ()))
    if duplicates:
        raise ConfigError(
            [f"{source}:{line}: {_dotted(loc)}: key given twice" for loc, line in duplicates]
        )
    data: Any = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ConfigError([f"{source}:{root.start_mark.line + 1}: the top level must be a mapping"])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, root, source)) from None


def _yaml_problem(source: str, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    reason = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return f"{source}:{mark.line + 1}: not valid YAML: {reason}"
    return f"{source}: not valid YAML: {reason}"


def _problems(exc: ValidationError, root: yaml.Node, source: str) -> list[str]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        line = _line_of(root, loc)
        message = reason(error)
        where = f"{source}:{line}" if line is not None else source
        problems.append(f"{where}: {_dotted(loc) or '(top level)'}: {message}")
    return problems


def describe_validation_error(exc: ValidationError, source: str) -> list[str]:
    """``source: field: reason`` lines for a model validated from something other than a file."""
    return [
        f"{source}: {_dotted(tuple(e['loc'])) or '(top level)'}: {reason(e)}"
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
