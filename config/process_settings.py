"""A process's settings, declared once: a pydantic-settings model whose fields are the settings.

Each field carries its ``Format`` (how the value is written, and the parser it goes through),
its default and its help; its environment variable comes from the model's ``env_prefix`` (or
the field's ``validation_alias``) and its flag from its name (``redis_url`` → ``--redis-url``).
The argparse flags, the error messages and the rows of docs/SETTINGS.md are all generated
from ``entries()``, so flag, variable, format and default cannot drift apart.

``load(flags, env)`` reads an explicit mapping, never ``os.environ``: a flag given wins over
its variable, an empty value counts as unset, and every bad value becomes one line of a
``ConfigError`` that names the flag or variable it came from. Defaults are written as
they would be typed and go through the same parser.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn, Self

from pydantic import Field, GetCoreSchemaHandler, JsonValue, ValidationError
from pydantic_core import ErrorDetails, core_schema
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from config.loader import ConfigError


@dataclass(frozen=True)
class Format:
    """How a setting is written: ``text`` for the docs, ``metavar`` for ``--help``, and
    ``parse``, which turns the text into the value or raises ``ValueError`` with a reason
    that reads after ``NAME: ``. A ``secret`` is never echoed in a reason and (in the planes)
    has no flag, since a flag shows in ``ps`` to every user of the machine."""

    text: str
    parse: Callable[[Any], Any]
    metavar: str = "VALUE"
    secret: bool = False

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self._parse, handler(source))

    def _parse(self, value: Any) -> Any:
        return None if value is None else self.parse(value)


def setting(
    help: str,
    default: str | None = None,
    *,
    env: str | None = None,
    factory: Callable[[], Any] | None = None,
    shown: str | None = None,
    required: bool = False,
) -> Any:
    """A field: ``default`` as it would be typed (``"10s"``), ``env`` to name its variable
    outside the model's prefix, ``shown`` for a default the docs describe rather than quote."""
    extra: dict[str, JsonValue] | None = {"shown": shown} if shown is not None else None
    if required:
        return Field(description=help, validation_alias=env, json_schema_extra=extra)
    if factory is not None:
        return Field(
            default_factory=factory,
            description=help,
            validation_alias=env,
            json_schema_extra=extra,
        )
    return Field(default, description=help, validation_alias=env, json_schema_extra=extra)


def instance_name() -> str:
    """The default name of a process in Redis (acks, the leader lease): ``<hostname>-<pid>``."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class Entry:
    """One setting as people see it: its flag (None: variable only), variable, format and
    default (as the docs show it; ``typed`` as it would be typed, ``""`` for none)."""

    name: str
    flag: str | None
    env: str
    format: Format
    default: str
    typed: str
    help: str

    @property
    def names(self) -> str:
        """``--config PATH or SPLITGATE_CONFIG``; the variable alone when there is no flag."""
        return f"{self.flag} {self.format.metavar} or {self.env}" if self.flag else self.env


class FlagParser(argparse.ArgumentParser):
    """An argument parser whose usage mistakes raise ``ConfigError`` (one line, exit 2 in
    ``__main__``) instead of printing the usage and exiting from deep inside."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError([message])


class ProcessSettings(BaseSettings):
    """The base of every process's settings model: frozen, every field validated, defaults too."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_ignore_empty=True,
        enable_decoding=False,
        validate_default=True,
        validate_by_name=True,
    )
    secret_flags: ClassVar[bool] = False
    """Whether secrets get a flag too (the load test's, which locust masks in its web UI)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only ``load`` reads the environment, and only the mapping it is given.
        return (init_settings,)

    @classmethod
    def entries(cls) -> tuple[Entry, ...]:
        prefix = cls.model_config.get("env_prefix", "")
        rows = []
        for name, info in cls.model_fields.items():
            formats = [m for m in info.metadata if isinstance(m, Format)]
            if len(formats) != 1:
                raise TypeError(f"{cls.__name__}.{name}: declare exactly one Format")
            fmt = formats[0]
            alias = info.validation_alias
            env = alias if isinstance(alias, str) else prefix + name.upper()
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            literal = not info.is_required() and info.default_factory is None
            typed = str(info.default) if literal and info.default is not None else ""
            if "shown" in extra:
                shown = str(extra["shown"])
            elif info.is_required():
                shown = "required"
            else:
                shown = f"`{typed}`" if typed else "none"
            has_flag = not fmt.secret or cls.secret_flags
            flag = "--" + name.replace("_", "-") if has_flag else None
            rows.append(Entry(name, flag, env, fmt, shown, typed, info.description or ""))
        return tuple(rows)

    @classmethod
    def add_flags(cls, parser: argparse.ArgumentParser) -> None:
        """One flag per setting that has one, each defaulting to None (not given); the
        variables without a flag (secrets) are listed after the options."""
        for entry in cls.entries():
            if entry.flag is None:
                continue
            default = entry.default.replace("`", "")
            parser.add_argument(
                entry.flag,
                dest=entry.name,
                metavar=entry.format.metavar,
                help=f"{entry.help} (default: {default}; env {entry.env})".replace("%", "%%"),
            )
        secrets = [e.env for e in cls.entries() if e.flag is None]
        if secrets and parser.epilog is None:
            parser.epilog = f"From the environment only (secrets): {', '.join(secrets)}."

    @classmethod
    def load(cls, flags: Mapping[str, object], env: Mapping[str, str]) -> Self:
        """The settings from ``flags`` (field name → value, None: not given) over ``env``."""
        found = cls.from_env(env)
        values: dict[str, object] = {}
        origins: dict[str, str] = {}
        for entry in cls.entries():
            given = flags.get(entry.name) if entry.flag else None
            if given is not None and given != "":
                values[entry.name], origins[entry.name] = given, entry.flag or entry.env
            elif entry.name in found:
                values[entry.name], origins[entry.name] = found[entry.name], entry.env
        return cls.checked(values, origins)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> dict[str, object]:
        """The raw values ``env`` sets, by field name, as pydantic-settings' source reads them."""
        found = _MappingEnvSource(cls, env)()
        # pydantic-settings keys a value by the field's alias, if it has one, else its name;
        # with an alias, the prefixed name (which it also tries) is not this field's variable.
        keys = {
            name: info.validation_alias if isinstance(info.validation_alias, str) else name
            for name, info in cls.model_fields.items()
        }
        return {name: found[key] for name, key in keys.items() if found.get(key) is not None}

    @classmethod
    def checked(cls, values: Mapping[str, object], origins: Mapping[str, str]) -> Self:
        """Validate ``values``; a problem names ``origins[field]`` (default: flag, else variable)."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(cls._problems(exc.errors(include_url=False), origins)) from None

    @classmethod
    def _problems(cls, errors: list[ErrorDetails], origins: Mapping[str, str]) -> list[str]:
        entries = cls.entries()
        by_key = {e.name: e for e in entries} | {e.env: e for e in entries}
        lines: list[str] = []
        named: set[str] = set()
        for error in errors:
            entry = by_key.get(str(error["loc"][0])) if error["loc"] else None
            if entry is None:
                lines.append(_reason(error))
            elif entry.name not in named:
                named.add(entry.name)
                if error["type"] == "missing":
                    lines.append(f"{entry.names} is required: {entry.help}")
                else:
                    where = origins.get(entry.name) or entry.flag or entry.env
                    lines.append(f"{where}: {_reason(error)}")
        return lines


def _reason(error: ErrorDetails) -> str:
    cause = error.get("ctx", {}).get("error")
    return str(cause) if error["type"] == "value_error" and cause is not None else error["msg"]


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of ``os.environ``.

    Only upper-case names are read, as documented (``SPLITGATE_LEASE``, never
    ``splitgate_lease``); the source then matches them to the fields without regard to case.
    """

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._mapping = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            name.lower(): value
            for name, value in self._mapping.items()
            if name.isupper() and (value != "" or not self.env_ignore_empty)
        }
