"""Strict dataclass helpers shared by every config: a field with help text (cleanrl's one docstring per argument) and
`from_dict`, which rejects unknown keys and wrong types with an error naming them (nanoGPT's configurator, with
dataclasses). The bottom of the stack: it imports nothing from vvkit."""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import field
from typing import Any


class ConfigError(ValueError):
    """A params file or config dict that does not match its dataclass."""


def _type_ok(value: Any, tp: Any) -> bool:
    """Lenient runtime check for the simple types used in params (int accepted for float, None for Optional)."""
    if tp is Any or isinstance(tp, str):
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp in (str, bool):
        return isinstance(value, tp)
    if origin in (list, tuple) or tp in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    if typing.get_origin(tp) is typing.Literal:
        return value in typing.get_args(tp)
    return True  # enums, classes from TRL/transformers: left to their own __post_init__


def from_dict(cls: type, d: dict, where: str = "params") -> Any:
    """Build dataclass `cls` from `d`; every unknown key and every wrongly typed value is reported in one error."""
    names = {f.name: f for f in dataclasses.fields(cls) if f.init}
    problems = []
    unknown = sorted(set(d) - set(names))
    if unknown:
        problems.append(f"unknown key(s) {unknown} for {cls.__name__}; valid keys: {sorted(names)}")
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # third-party base classes may have unresolved forward references
        hints = {}
    for k, v in d.items():
        tp = hints.get(k)
        if k in names and tp is not None and not _type_ok(v, tp):
            problems.append(f"key {k!r} = {v!r} should be of type {tp}")
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    return cls(**d)


def _f(default: Any = dataclasses.MISSING, help: str = "", **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)
