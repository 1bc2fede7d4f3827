"""Building frozen config dataclasses from plain YAML data, with errors that name the key and
its source (a file or ``<override>``). :mod:`glore_ray.config` holds the sections themselves."""

from __future__ import annotations

import dataclasses
import types
import typing


class ConfigError(ValueError):
    """A config problem, with the key and the source that caused it."""


def set_dotted(data: dict, key: str, value) -> None:
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"<override> {key}: {part} is not a section")
    node[parts[-1]] = value


def build_dataclass(cls, data, prefix: str, source: str, sources: dict):
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'top level'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        where = sources.get(prefix + key, source)
        if key not in fields:
            raise ConfigError(f"{where}: unknown key {prefix + key!r}; known keys here: {sorted(fields)}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = build_dataclass(hint, value or {}, f"{prefix}{key}.", source, sources)
        else:
            kwargs[key] = _coerce(value, hint, prefix + key, where)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:
        where = next((sources[k] for k in sources if k.startswith(prefix)), source)
        raise ConfigError(f"{where}: bad value in {prefix.rstrip('.') or 'config'}: {err}") from None


def _coerce(value, hint, key: str, where: str):
    """Check ``value`` against a simple type hint (int, float, bool, str, Optional, tuple)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: {key} = {value!r} is not a {hint}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: {key} = {value!r} must be a list")
        args = typing.get_args(hint)
        item = args[0]
        return tuple(_coerce(v, item, f"{key}[{i}]", where) for i, v in enumerate(value))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:
            return float(value)  # YAML reads 1e-5 (no dot) as a string
        except ValueError:
            pass
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise ConfigError(f"{where}: {key} = {value!r} must be {hint.__name__}, got {type(value).__name__}")
    return value
