"""The tiercast configuration: frozen pydantic models loaded from ``configs/*.yaml``.

A config file may name a ``base:`` file (relative to itself) whose values it overrides key by key, so presets stay
small. Every section forbids unknown keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tiercast.pipeline.sources import DataConfig

TIER_PRESETS: dict[str, tuple[str, ...]] = {
    "pyramid": ("platinum", "gold", "iron", "lead"),
    "abc": ("A", "B", "C"),
    "three_level": ("high", "medium", "low"),
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeatureConfig(_Frozen):
    """Window lengths (days) for windowed counts and spend; the horizon window is always added."""

    windows_days: tuple[int, ...] = (30, 90, 180, 365)

    @field_validator("windows_days")
    @classmethod
    def _positive(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(w <= 0 for w in v):
            raise ValueError("windows_days must be positive")
        return tuple(sorted(set(v)))


class CutoffConfig(_Frozen):
    """Rolling cutoffs: the test cutoff is ``data end - horizon`` unless given; training cutoffs step back from it.

    Training cutoffs are chosen so that their label windows end at or before the test cutoff (no overlap with the
    test horizon). The latest training cutoff doubles as the time-separated validation cutoff for early stopping.
    """

    test_cutoff: str | None = None
    step_days: int = Field(default=30, gt=0)
    n_train: int = Field(default=6, ge=2)
    min_history_days: int = Field(default=60, ge=0)


class TierConfig(_Frozen):
    """Tier scheme: preset or explicit names (best first); k is chosen by clustering unless fixed."""

    preset: Literal["pyramid", "abc", "three_level"] | None = "pyramid"
    names: tuple[str, ...] | None = None
    k: int | None = Field(default=None, ge=2)
    k_max: int = Field(default=4, ge=2)
    min_share: float = Field(default=0.02, gt=0.0, lt=0.5)
    silhouette_tolerance: float = Field(default=0.1, ge=0.0, lt=1.0)

    def tier_names(self) -> tuple[str, ...]:
        if self.names:
            return self.names
        if self.preset is None:
            raise ValueError("tiers: give a preset or names")
        return TIER_PRESETS[self.preset]


class ModelConfig(_Frozen):
    """LightGBM settings shared by the value and churn models (overrides merged into library defaults)."""

    value_params: dict[str, Any] = Field(default_factory=dict)
    churn_params: dict[str, Any] = Field(default_factory=dict)
    n_estimators: int = Field(default=2000, gt=0)
    early_stopping_rounds: int = Field(default=50, gt=0)


class MlflowConfig(_Frozen):
    """Where runs and models go. ``tracking_uri`` None means a sqlite store under the project folder,
    unless ``MLFLOW_TRACKING_URI`` is set."""

    tracking_uri: str | None = None
    experiment: str = "tiercast"
    registered_model: str = "tiercast"


class ScoreConfig(_Frozen):
    """Batch scoring: cutoff (None = the midnight after the last transaction) and rows per chunk."""

    cutoff: str | None = None
    chunk_size: int = Field(default=200_000, gt=0)


class OutputConfig(_Frozen):
    dir: Path = Path("outputs")
    at_risk_tiers: tuple[str, ...] | None = None
    at_risk_top: int = Field(default=500, gt=0)
    at_risk_min_churn: float = Field(default=0.0, ge=0.0, le=1.0)


class Config(_Frozen):
    """The whole run configuration."""

    data: DataConfig
    horizon_days: int = Field(default=90, gt=0)
    seed: int = 42
    features: FeatureConfig = FeatureConfig()
    cutoffs: CutoffConfig = CutoffConfig()
    tiers: TierConfig = TierConfig()
    models: ModelConfig = ModelConfig()
    mlflow: MlflowConfig = MlflowConfig()
    score: ScoreConfig = ScoreConfig()
    outputs: OutputConfig = OutputConfig()


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise FileNotFoundError(f"config file not found: {path}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a config must be a mapping at top level")
    base = raw.pop("base", None)
    if base is not None:
        raw = _deep_merge(_read_yaml((path.parent / base).resolve()), raw)
    return raw


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Load and validate a config file; relative data paths resolve against the current directory."""
    raw = _read_yaml(Path(path))
    if overrides:
        raw = _deep_merge(raw, overrides)
    return Config.model_validate(raw)
