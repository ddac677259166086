"""Typed study configurations, presets and `key=value` overrides.

Every study declares a pydantic config (a subclass of `StudyConfig`) and three presets: `smoke` (seconds,
for tests), `laptop` (the default: minutes on a 2-core CPU) and `paper` (the source's full scale). The
resolved config is what a run saves as `config.yaml`, so it must be enough to re-run the study exactly.
"""

from __future__ import annotations

import numbers
import re
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from learnlab.errors import LearnlabError


class StudyConfig(BaseModel):
    """Fields every study shares. Hyper-parameters carry plain names (`steps`, `lr`, ...).

    Types are strict (a bool is not a number, "10" is not an int) so a typo cannot silently train 1 step;
    the only conversions are an integral float to an int (`steps=1e4`) and an int to a float (`lr=1`)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False, strict=True)

    study: str = ""
    preset: str = "laptop"
    seed: int = Field(0, ge=0, le=2**62, description="first master seed; seeds are seed .. seed+seeds-1")
    seeds: int = Field(20, ge=1, description="number of independent repetitions per arm")
    arms: list[str] = Field(default_factory=list, description="arms to run (resolved to all when empty)")
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:\d+)?)$")

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seed, self.seed + self.seeds))

    @field_validator("*", mode="before")
    @classmethod
    def _whole_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """Every study's fields, once: the numbers strict mode should take after all (see the class)."""
        field = cls.model_fields.get(info.field_name or "")
        return value if field is None else as_number(field.annotation, value)


def as_number(annotation: Any, value: Any) -> Any:
    """`value` as `annotation`'s number type where that loses nothing (`1e4` -> 10000, numpy scalars ->
    Python's); anything else unchanged, for strict validation to accept or refuse."""
    if typing.get_origin(annotation) is list and isinstance(value, list):
        (item,) = typing.get_args(annotation) or (Any,)
        return [as_number(item, v) for v in value]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return value
    if annotation is int:
        if isinstance(value, numbers.Integral):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
    if annotation is float and not isinstance(value, float):
        return float(value)
    return value


def check_arms(arms: list[str], known: Any) -> list[str]:
    """For a config's `arms` validator: every arm known, none twice."""
    unknown = [a for a in arms if a not in known]
    if unknown:
        raise ValueError(f"unknown arm {unknown[0]!r} (arms: {', '.join(known)})")
    if len(set(arms)) < len(arms):
        raise ValueError("an arm is listed twice")
    return arms


def distinct_sorted(values: list[Any], message: str, *, allow_zero: bool = False, reverse: bool = False) -> list[Any]:
    """For a grid validator: the values sorted, or `ValueError(message)` if one repeats or is too small."""
    too_small = any(v < 0 if allow_zero else v <= 0 for v in values)
    if too_small or len(set(values)) < len(values):
        raise ValueError(message)
    return sorted(values, reverse=reverse)


class _Loader(yaml.SafeLoader):
    """YAML 1.1 as PyYAML reads it, but `1e4` and `1e-3` are floats (as in YAML 1.2 and Python), not strings."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no objects built


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """Parse `key=value` strings; values are read as YAML scalars/lists (`3`, `1e-3`, `[6, 12]`, `true`)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise LearnlabError(f"bad --set {item!r}: expected key=value")
        try:
            out[key] = load_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key] = raw
    return out


def validation_message(err: ValidationError, context: str) -> str:
    """One line naming the first bad key and value."""
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"{context}: unknown config key {key!r}"
    if not key:  # a check across fields: its message names them
        return f"{context}: {first['msg'].removeprefix('Value error, ')}"
    return f"{context}: invalid value {first.get('input')!r} for {key!r}: {first['msg']}"


def build_config(
    config_cls: type[StudyConfig],
    study: str,
    presets: dict[str, dict[str, Any]],
    preset: str = "laptop",
    overrides: dict[str, Any] | None = None,
) -> StudyConfig:
    """Preset values, then overrides, validated against the study's config class."""
    if preset not in presets:
        raise LearnlabError(f"unknown preset {preset!r} for {study} (choose from {', '.join(presets)})")
    check_label(overrides or {}, "study", study, f"run it as `learnlab run {(overrides or {}).get('study')}`")
    check_label(overrides or {}, "preset", preset, "drop --preset, or change 'preset' in the config file")
    values = {**presets[preset], **(overrides or {}), "study": study, "preset": preset}
    unknown = sorted(set(values) - set(config_cls.model_fields))
    if unknown:
        known = ", ".join(sorted(k for k in config_cls.model_fields if k not in ("study", "preset")))
        raise LearnlabError(f"unknown config key {unknown[0]!r} for {study} (known: {known})")
    try:
        return config_cls.model_validate(values)
    except ValidationError as err:
        raise LearnlabError(validation_message(err, study)) from None


def check_label(values: dict[str, Any], key: str, truth: str, hint: str) -> None:
    """A saved config's values are its own study's and preset's: refuse to run them labelled another."""
    claimed = values.get(key, truth)
    if claimed != truth:
        raise LearnlabError(f"the config's {key} is {claimed!r} but the run's is {truth!r} ({hint})")


def config_to_yaml(cfg: StudyConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def config_from_yaml(path: Path) -> dict[str, Any]:
    """A saved config.yaml as a dict; a missing, unreadable or malformed file is a LearnlabError."""
    try:
        data = load_yaml(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        problem = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise LearnlabError(f"{str(path)!r}: not a readable YAML config ({problem})") from None
    if not isinstance(data, dict):
        raise LearnlabError(f"{str(path)!r}: a config file must hold a mapping of key: value")
    return data
