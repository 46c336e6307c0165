"""The (de)serialiser of every typed config: dataclasses from and to JSON or TOML, strict keys and types.

Each config dataclass lives beside the part it configures (VAEConfig in image/vae.py, DalleConfig in
generators/dalle.py, VAETrainConfig in train/vae.py, ...); a saved model stores them in its config.json, so a
folder rebuilds exactly the model that was trained. Unknown keys, wrong types and non-finite numbers are errors
that name the key. Overrides (the command line's flags) are merged into the file's values before the dataclass
is built, so its checks see the config the run will use.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def check(cond: bool, msg: str) -> None:
    """A config's own checks (its __post_init__) raise through this: one ConfigError line."""
    if not cond:
        raise ConfigError(msg)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-safe dict of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass `cls` from a dict, checking every key and type; errors name the key path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a table/object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key {_short(unknown[0])} (known: {', '.join(sorted(names))})")
    kwargs = {k: _coerce(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as e:  # the dataclass's own checks (its __post_init__)
        raise ConfigError(f"{where}: {e}" if where else str(e)) from None
    except (TypeError, ValueError, ArithmeticError) as e:  # a required field left out; a check that overflows
        raise ConfigError(f"{where or 'config'}: {e}") from None


def _coerce(tp: Any, v: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, v, where)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if v is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, v, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: {_short(v)} does not fit {tp}")
    if origin in (tuple, list):
        args = typing.get_args(tp)
        if not isinstance(v, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {_short(v)}")
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):  # tuple[int, str]: fixed
            if len(v) != len(args):
                raise ConfigError(f"{where}: expected a list of {len(args)} entries, got {len(v)}")
            return tuple(_coerce(a, x, f"{where}[{i}]") for i, (a, x) in enumerate(zip(args, v)))
        inner = args[0] if args else Any
        return origin(_coerce(inner, x, f"{where}[{i}]") for i, x in enumerate(v))
    if origin is dict:
        args = typing.get_args(tp)
        if not isinstance(v, dict):
            raise ConfigError(f"{where}: expected a table/object, got {_short(v)}")
        inner = args[1] if len(args) == 2 else Any
        return {_coerce(str, k, where): _coerce(inner, x, f"{where}.{k}") for k, x in v.items()}
    if tp is Any:
        return v
    if tp is bool:
        if not isinstance(v, bool):
            raise ConfigError(f"{where}: expected true/false, got {_short(v)}")
        return v
    if tp is int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{where}: expected an integer, got {_short(v)}")
        return v
    if tp is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {_short(v)}")
        try:
            f = float(v)
        except OverflowError:  # an integer of hundreds of digits
            f = math.inf
        if not math.isfinite(f):  # NaN, or a literal such as 1e400 that JSON reads as infinity
            raise ConfigError(f"{where}: expected a finite number, got {_short(v)}")
        return f
    if tp is str:
        if not isinstance(v, str):
            raise ConfigError(f"{where}: expected a string, got {_short(v)}")
        return v
    return v


def _short(v: Any) -> str:
    """A value for an error message: its repr, cut short (an untrusted config may hold a megabyte in one value)."""
    r = repr(v) if not isinstance(v, int) or abs(v) < 10**60 else f"an integer of {len(str(abs(v)))} digits"
    return r if len(r) <= 80 else r[:77] + "..."


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a .json or .toml file into a dict; every failure is a one-line ConfigError."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file not found: {p}")
    if not p.is_file():
        raise ConfigError(f"config path is not a file: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config {p}: {e}") from None
    if p.suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            raise ConfigError("TOML configs need Python >= 3.11; use a .json config") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{p} is not valid TOML: {e}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{p} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
        except RecursionError:
            raise ConfigError(f"{p} is nested too deeply to be a config") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a JSON object / TOML table at the top, got {type(data).__name__}")
    return data


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` on top; a dotted key ("data.path") reaches into a nested table."""
    out = json.loads(json.dumps(base))  # a deep copy
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        table = out
        for p in parents:
            if not isinstance(table.get(p, {}), dict):
                raise ConfigError(f"cannot set {key}: {p} is not a table")
            table = table.setdefault(p, {})
        table[leaf] = value
    return out


def load_config(cls: type[T], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> T:
    """Dataclass `cls` from a JSON/TOML file (or its defaults when path is None), with `overrides` merged in
    before it is validated."""
    data = load_file(path) if path else {}
    try:
        return from_dict(cls, merge(data, overrides or {}))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}" if path else str(e)) from None
