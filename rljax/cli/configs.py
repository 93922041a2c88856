"""Algorithms the command knows, and configs built from flags and files.

A config comes from, in order (later wins): the algorithm's defaults, a YAML/JSON
file (`--config`), `--env`, and `--set field=value` flags. Values are parsed as YAML
scalars or lists (`lr=1e-3`, `hidden_sizes=[64,64]`, `core=gru`, `core=null`) and
coerced to the field's declared type; sequences become tuples (static fields must
be hashable). Every mistake raises `UsageError` with one line that says what to do.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import re
import types
from pathlib import Path
from typing import Any

import yaml

from rljax import algos
from rljax import config as config_lib

ALGOS = algos.REGISTRY          # the one registry (rljax.algos)
DEFAULT_ALGO = algos.DEFAULT


class UsageError(Exception):
    """Bad input from the command line or a config file: one line, exit status 2."""


def close_match(word: str, choices) -> str:
    match = difflib.get_close_matches(word, list(choices), n=3)
    return f" (did you mean {', '.join(match)}?)" if match else ""


def get_algo(name: str) -> types.ModuleType:
    try:
        return algos.get(name)
    except ValueError as e:
        raise UsageError(str(e)) from None


def field_type(cls, name: str) -> str:
    """The field's annotation as a string ('int', 'tuple[int, ...]', 'str | None')."""
    return config_lib.type_name({f.name: f for f in dataclasses.fields(cls)}[name])


def _scalar(name: str, kind: str, value: Any, shown: Any):
    def bad():
        return UsageError(f"{name} must be {kind}, got {shown!r}")

    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise bad()
    if kind == "int":
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise bad() from None
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        raise bad()
    if kind == "float":
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, str):
            try:
                return float(value)       # '1e-3', 'inf' (YAML reads these as strings)
            except ValueError:
                raise bad() from None
        if isinstance(value, (int, float)):
            return float(value)
        raise bad()
    if kind == "str":
        if isinstance(value, str):
            return value
        raise bad()
    return value


def coerce(cls, name: str, value: Any):
    """`value` converted to field `name`'s type, or a `UsageError` naming both."""
    kind = field_type(cls, name).replace(" ", "")
    optional = "None" in kind.split("|")
    base = "|".join(k for k in kind.split("|") if k != "None")
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise UsageError(f"{name} must be {base}, got None")
    if base.startswith("tuple["):
        inner = base[len("tuple["):-1].split(",")[0]
        items = value if isinstance(value, (list, tuple)) else [value]
        return tuple(_scalar(name, inner, v, value) for v in items)
    return _scalar(name, base, value, value)


def parse_value(text: str):
    """A `--set` value as YAML (`1e-3` -> 0.001, `[64, 64]` -> list, `null` -> None)."""
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def parse_sets(items: list[str]) -> dict[str, Any]:
    changes = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--set expects field=value, got {item!r}")
        key, text = item.split("=", 1)
        changes[key.strip()] = parse_value(text)
    return changes


def read_config_file(path: str) -> dict[str, Any]:
    """A flat mapping of fields, or a run folder's config.json ({"algo", "config", ...})."""
    p = Path(path)
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise UsageError(f"--config {path} is a folder without a config.json; give a YAML or "
                             f"JSON file, or a run folder")
        p = p / "config.json"
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else "not a text file"
        raise UsageError(f"cannot read config file {path}: {reason}") from None
    kind = "JSON" if p.suffix == ".json" else "YAML"
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"config file {p} is not valid JSON: line {e.lineno}, column {e.colno}: "
                         f"{e.msg}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UsageError(f"config file {p} is not valid {kind}: {where}{what}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"config file {path} must hold a mapping of field: value")
    return data


def cli_message(message: str) -> str:
    """An algorithm's error as the command says it (point to `rljax list`, not Python)."""
    return re.sub(r"rljax\.envs\.list_envs\(\) lists all (\d+)\.?", r"`rljax list` shows all \1 envs.",
                  message)


def make_config(algo: types.ModuleType, changes: dict[str, Any], preset: str | None = None):
    """`algo.Config` (from its preset `preset`, if given) with `changes` coerced to the
    fields' types."""
    cls = algo.Config
    names = [f.name for f in dataclasses.fields(cls)]
    if preset is not None:
        if preset not in algo.PRESETS:
            name = algo.__name__.split(".")[-1]
            raise UsageError(f"unknown preset {preset!r} for {name}{close_match(preset, algo.PRESETS)}; "
                             f"presets: {', '.join(algo.PRESETS) or 'none'} (`rljax list {name}`)")
        changes = {**algo.PRESETS[preset].changes, **changes}
    values = {}
    for key, value in changes.items():
        if key not in names:
            raise UsageError(f"unknown field {key!r} for {algo.__name__.split('.')[-1]}"
                             f"{close_match(key, names)}; `rljax list` shows the fields")
        values[key] = coerce(cls, key, value)
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise UsageError(cli_message(str(e).strip().splitlines()[0] if str(e).strip()
                                     else type(e).__name__)) from None


def to_json(config) -> dict[str, Any]:
    """Field values as JSON-friendly Python (tuples -> lists, inf -> 'inf')."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        elif hasattr(value, "item"):      # a 0-d array from a traced field
            value = value.item()
        out[f.name] = value
    return out


def describe_fields(cls) -> list[tuple[str, str, str, bool, str]]:
    """`(name, type, default, static, doc)` of every field of a Config class."""
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else ""
        rows.append((f.name, field_type(cls, f.name), repr(default),
                     config_lib.is_static(cls, f.name), config_lib.field_doc(cls, f.name)))
    return rows
