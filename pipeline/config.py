"""The tiercast configuration: frozen pydantic models loaded from YAML files.

A config file may name a ``base:`` whose values it overrides key by key, so configs stay small: a file relative to
itself, or a preset shipped with the package by name (``base: online_retail_ii``, ``base: default.yaml``; see
:func:`preset_names`). Every section forbids unknown keys, and a config must end up with a ``data:`` and a
``playbook:`` section, so one that forgot its base fails instead of running with an empty playbook.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from tiercast.features.cutoff_plan import CutoffRules
from tiercast.models.playbook import PlaybookError
from tiercast.pipeline.config_files import (
    REQUIRED_SECTIONS,
    ConfigDate,
    ConfigError,
    Frozen,
    deep_merge,
    error_message,
    holder_of,
    key_paths,
    lgbm_params_problem,
    mlflow_name_problem,
    preset_names,
    preset_path,
    read_with_sources,
    read_yaml,
    replaced_sources,
)
from tiercast.pipeline.config_inputs import protect_inputs_of
from tiercast.pipeline.engine.config import EngineConfig
from tiercast.pipeline.ingest.sources import DataConfig
from tiercast.pipeline.playbook_config import PlaybookConfig, build_playbook

# The file-level helpers are part of this module's interface: importers read them from here.
__all__ = [
    "TIER_PRESETS",
    "Config",
    "ConfigError",
    "build_playbook",
    "deep_merge",
    "load_config",
    "preset_names",
    "preset_path",
    "read_yaml",
]

TIER_PRESETS: dict[str, tuple[str, ...]] = {
    "pyramid": ("platinum", "gold", "iron", "lead"),
    "abc": ("A", "B", "C"),
    "three_level": ("high", "medium", "low"),
}


# Day counts above this (about 27 years) are typos, and would overflow date arithmetic further on.
MAX_DAYS = 10_000


class FeatureConfig(Frozen):
    """Window lengths (days) for windowed counts and spend; the horizon window is always added."""

    windows_days: tuple[int, ...] = (30, 90, 180, 365)

    @field_validator("windows_days")
    @classmethod
    def _positive(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(w <= 0 or w > MAX_DAYS for w in v):
            raise ValueError(f"windows_days must be positive and at most {MAX_DAYS}")
        return tuple(sorted(set(v)))


class CutoffConfig(Frozen):
    """Rolling cutoffs: the test cutoff is ``data end - horizon`` unless given; training cutoffs step back from it.

    Training cutoffs are chosen so that their label windows end at or before the test cutoff (no overlap with the
    test horizon). The latest ``n_validation`` training cutoffs are the time-separated validation cutoffs for
    settings (rolling origin). The registered model is refitted on the same steps ending at ``data end - horizon``.
    """

    test_cutoff: ConfigDate = None
    step_days: int = Field(default=30, gt=0, le=MAX_DAYS)
    n_train: int = Field(default=6, ge=1, le=1000)
    min_history_days: int = Field(default=60, ge=0, le=MAX_DAYS)
    # Settings are chosen on up to this many of the latest training cutoffs (rolling origin, scores averaged),
    # each with an earlier training cutoff whose label window ends by it. When no label window ends by the latest
    # (a horizon longer than the cutoffs span) earlier cutoffs are added as the history allows; without any, settings
    # are chosen on label windows cut to end by it (at least 30 days), and without those the models are the BTYD
    # model alone.
    n_validation: int = Field(default=3, ge=1)
    # With history enough, add training cutoffs until their label windows cover a whole year.
    span_year: bool = True


class TierConfig(Frozen):
    """Tier scheme: preset or explicit names (best first); k is chosen by clustering unless fixed."""

    preset: Literal["pyramid", "abc", "three_level"] | None = "pyramid"
    names: tuple[str, ...] | None = None
    k: int | None = Field(default=None, ge=2)
    k_max: int = Field(default=4, ge=2)
    min_share: float = Field(default=0.02, gt=0.0, lt=0.5)
    silhouette_tolerance: float = Field(default=0.1, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _names_fit(self) -> TierConfig:
        if self.names is not None:
            twice = sorted({n for n in self.names if self.names.count(n) > 1})
            if twice:
                raise ValueError(f"tiers.names: {twice} given more than once; each tier needs a name of its own")
            if len(self.names) < 2:
                raise ValueError(f"tiers.names: give at least 2 tier names, best first (got {list(self.names)})")
        elif self.preset is None:
            raise ValueError(f"tiers: give a preset ({', '.join(TIER_PRESETS)}) or names (best first)")
        if self.k is not None and self.k > len(self.tier_names()):
            raise ValueError(f"tiers.k={self.k} but only {len(self.tier_names())} tier names")
        return self

    def tier_names(self) -> tuple[str, ...]:
        if self.names is not None:
            return self.names
        assert self.preset is not None  # checked on validation
        return TIER_PRESETS[self.preset]

    def possible_names(self) -> tuple[str, ...]:
        """The names the fitted tiers can have: with ``k`` fixed, the first ``k - 1`` names and the last (as
        ``tiercast.models.tiers.scheme.names_for_k`` names them), else every name (clustering chooses k)."""
        names = self.tier_names()
        return names if self.k is None else (*names[: self.k - 1], names[-1])

    def forced_k_note(self) -> str:
        """How a fixed ``k`` names its tiers, for errors about a name it never produces."""
        return (
            f"tiers.k={self.k} makes the tiers {list(self.possible_names())} (the first k - 1 names and the last); "
            "name those, or unset tiers.k"
        )


class ModelConfig(Frozen):
    """LightGBM settings shared by the value and churn models (overrides merged into library defaults)."""

    value_params: dict[str, Any] = Field(default_factory=dict)
    churn_params: dict[str, Any] = Field(default_factory=dict)
    n_estimators: int = Field(default=2000, gt=0)
    early_stopping_rounds: int = Field(default=50, gt=0)
    # Stacking on a buy-till-you-die model (see tiercast.models.gbm.stacked): BTYD features per training cutoff, the
    # trees boosted from the BTYD prediction, blended with it by a weight chosen on the validation cutoff. "auto":
    # BG/NBD or Pareto/NBD per model, label-free fits judged on the validation cutoffs: for churn the one predicting
    # "no purchase" best (log loss), for value the one ranking spend best (nGini; models.btyd.value_choice);
    # "bgnbd" alone trains faster (a Pareto/NBD fit costs about ten BG/NBD fits).
    btyd: Literal["auto", "bgnbd", "paretonbd"] | None = "auto"
    blend: bool = True
    # Hyperparameter candidates tried on the validation cutoff: "default" = the built-in grid
    # (tiercast.models.gbm.lgbm.DEFAULT_GRID), "none" = only value_params / churn_params, or an explicit list.
    param_grid: Literal["default", "none"] | tuple[dict[str, Any], ...] = "default"
    # Choose settings only on training cutoffs whose label windows end by the validation cutoff (then refit on all).
    purge: bool = True
    # Churn probability calibration on the validation cutoffs (tiercast.models.gbm.churn.CALIBRATIONS): "platt" maps
    # the whole log-odds, "offset" only the trees' correction (the BTYD log-odds kept), "auto" picks by window.
    churn_calibration: Literal["auto", "platt", "offset"] = "auto"
    # Set the level of the BTYD outputs (expected spend, mean P(no purchase)) by the seasonal index of the next
    # horizon, their ranking kept (last year's same window against the year's
    # rate; needs a year of history and the 365-day feature window, else the plain BTYD model). true / "all":
    # counted on every customer with a year of history (reads dropouts as a season: about 1.15 on a world with
    # none); "year": that index divided by its mean over the training cutoffs when their windows cover a year (the
    # seasons average out there, the dropout bias stays; no index without such a year); "alive": on the customers
    # certainly alive all year (a purchase in the last horizon), against their rate over the rest of the year,
    # horizons under half a year; "last_year": for horizons under half a year, the level the BTYD model would have
    # needed in last year's same window (its prediction from each customer's history a year ago against what they
    # spent and whether they bought; needs a year plus a horizon of history), else the "year" index; false: no index.
    seasonal: bool | Literal["all", "alive", "year", "last_year"] = "last_year"
    # Put the level of the scored rows' predictions (total spend, mean churn probability) on the BTYD model fitted
    # at the scoring cutoff, which reads the newest history; the trees and the calibration keep the ranking.
    btyd_level: bool = True
    # `tiercast backtest`: number of test cutoffs (step_days apart, the latest = the training test cutoff) and
    # paired-bootstrap replicates for "tiercast minus best baseline".
    backtest_n_tests: int = Field(default=4, ge=1)
    backtest_n_boot: int = Field(default=500, ge=0)

    @field_validator("btyd", mode="before")
    @classmethod
    def _btyd(cls, v: object) -> object:
        """One line naming the choices, null (plain GBMs) among them: 'none' is a YAML string, not null."""
        if v is None or v in ("auto", "bgnbd", "paretonbd"):
            return v
        raise ValueError(f"must be auto, bgnbd, paretonbd or null (plain GBMs, no BTYD stacking), got {v!r}")

    @field_validator("seasonal", mode="before")
    @classmethod
    def _season(cls, v: object) -> object:
        """One line naming the choices (the union's own error lists a failed bool parse first)."""
        if isinstance(v, bool) or v in ("all", "alive", "year", "last_year"):
            return v
        raise ValueError(f"must be true, false, all, alive, year or last_year, got {v!r}")

    @field_validator("value_params", "churn_params")
    @classmethod
    def _lgbm_params(cls, v: dict[str, Any]) -> dict[str, Any]:
        problem = lgbm_params_problem(v) if v else None
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("param_grid")
    @classmethod
    def _grid_entries(cls, v: str | tuple[dict[str, Any], ...]) -> str | tuple[dict[str, Any], ...]:
        for i, entry in enumerate(() if isinstance(v, str) else v, start=1):
            problem = lgbm_params_problem(entry)
            if problem:
                raise ValueError(f"entry {i} ({_inline(entry)}): {problem}")
        return v

    @model_validator(mode="after")
    def _grid_fits_params(self) -> ModelConfig:
        """A grid entry naming a parameter that value_params / churn_params give under another name would lose."""
        for field in ("value_params", "churn_params"):
            for i, entry in enumerate(() if isinstance(self.param_grid, str) else self.param_grid, start=1):
                problem = lgbm_params_problem({**getattr(self, field), **entry})
                if problem:
                    raise ValueError(f"param_grid entry {i} with {field}: {problem}")
        return self


def _inline(entry: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in entry.items()) + "}"


class MlflowConfig(Frozen):
    """Where runs and models go. ``tracking_uri`` None means a sqlite store under the project folder,
    unless ``MLFLOW_TRACKING_URI`` is set."""

    tracking_uri: str | None = None
    experiment: str = "tiercast"
    registered_model: str = "tiercast"
    # A retrain on newer data stays challenger when the 95% interval of its normalized Gini or ROC AUC minus the
    # champion's (re-evaluated on the same customers and labels) lies wholly below -promotion_margin.
    promotion_margin: float = Field(default=0.02, ge=0.0, lt=1.0)
    # Paired-bootstrap replicates for the logged intervals of that comparison.
    promotion_n_boot: int = Field(default=200, ge=1)

    @field_validator("experiment", "registered_model")
    @classmethod
    def _mlflow_name(cls, v: str, info: ValidationInfo) -> str:
        """A name MLflow accepts. The defaults are, and checking them would import MLflow on every config read."""
        name = str(info.field_name)
        problem = None if v == cls.model_fields[name].default else mlflow_name_problem(name, v)
        if problem:
            raise ValueError(problem)
        return v


class ScoreConfig(Frozen):
    """Batch scoring: cutoff (None = the midnight after the last transaction) and rows per chunk."""

    cutoff: ConfigDate = None
    chunk_size: int = Field(default=200_000, gt=0)
    psi_threshold: float = Field(default=0.25, gt=0.0, description="PSI above which a feature or score drifts.")


class OutputConfig(Frozen):
    """Output folder and the at-risk list: which tiers and churn bands it lists, how many, in which currency."""

    dir: Path = Path("outputs")
    at_risk_tiers: tuple[str, ...] | None = None
    at_risk_top: int = Field(default=500, gt=0)
    at_risk_min_churn: float = Field(default=0.0, ge=0.0, le=1.0)
    # None: every churn band but the lowest (medium and high with the default bands).
    at_risk_churn_bands: tuple[str, ...] | None = None
    currency: str | None = Field(default=None, description="Currency of the amounts (e.g. GBP), shown with money.")

    def tiers_listed(self, names: Sequence[str]) -> tuple[str, ...]:
        """The tiers the at-risk list covers: ``at_risk_tiers``, else the top ``min(2, k - 1)`` of the k ``names``
        (best first): never the lowest tier, which holds every customer without spend (k=2: the top tier only).
        A single name is listed as it is."""
        return self.at_risk_tiers or tuple(names[: max(1, min(2, len(names) - 1))])

    def churn_bands(self, playbook: PlaybookConfig) -> tuple[str, ...]:
        """The churn bands the at-risk list keeps: ``at_risk_churn_bands``, else (unset or empty, as for the tiers)
        every band but the lowest."""
        return self.at_risk_churn_bands or tuple(playbook.churn_bands)[1:]


class Config(Frozen):
    """The whole run configuration."""

    data: DataConfig
    horizon_days: int = Field(default=90, gt=0, le=MAX_DAYS)
    seed: int = 42
    features: FeatureConfig = FeatureConfig()
    cutoffs: CutoffConfig = CutoffConfig()
    tiers: TierConfig = TierConfig()
    models: ModelConfig = ModelConfig()
    mlflow: MlflowConfig = MlflowConfig()
    playbook: PlaybookConfig = PlaybookConfig()
    score: ScoreConfig = ScoreConfig()
    outputs: OutputConfig = OutputConfig()
    engine: EngineConfig = EngineConfig()

    @field_validator("engine")
    @classmethod
    def _engine_zone(cls, engine: EngineConfig, info: ValidationInfo) -> EngineConfig:
        """``engine.transactions`` converts times with a UTC offset to ``data.timezone``, as the single-table
        ingestion does (the run date is in that zone too); a different zone given there is refused."""
        data, source = info.data.get("data"), engine.transactions
        if source is None or not isinstance(data, DataConfig):
            return engine
        setting = f"data.{'transactions' if data.transactions is not None else 'olist'}.timezone"
        if "timezone" in source.model_fields_set and source.timezone != data.timezone:
            raise ValueError(
                f"transactions.timezone is {source.timezone!r} but {setting} is {data.timezone!r}: "
                f"engine.transactions takes its zone from {setting}; set it there only"
            )
        return engine.model_copy(update={"transactions": source.model_copy(update={"timezone": data.timezone})})

    @model_validator(mode="after")
    def _at_risk_names_exist(self) -> Config:
        """A misspelt tier or band, a tier a fixed k never makes, or a default that keeps no band would quietly
        leave customers off the at-risk list."""
        bands = list(self.playbook.churn_bands)
        unknown = sorted(set(self.outputs.at_risk_churn_bands or ()) - set(bands))
        if unknown:
            raise ValueError(f"outputs.at_risk_churn_bands: unknown band(s) {unknown}; known: {bands}")
        if not self.outputs.at_risk_churn_bands and len(bands) < 2:
            raise ValueError(
                f"outputs.at_risk_churn_bands: unset, the at-risk list keeps every churn band but the lowest, and "
                f"playbook.churn_bands has one band only ({bands[0]}): set outputs.at_risk_churn_bands: [{bands[0]}] "
                "to list the customers of the listed tiers whatever their churn, or give more bands"
            )
        unknown = sorted(set(self.outputs.at_risk_tiers or ()) - set(self.tiers.tier_names()))
        if unknown:
            raise ValueError(
                f"outputs.at_risk_tiers: unknown tier(s) {unknown}; known: {list(self.tiers.tier_names())}"
            )
        never = sorted(set(self.outputs.at_risk_tiers or ()) - set(self.tiers.possible_names()))
        if never:
            raise ValueError(f"outputs.at_risk_tiers: tier(s) {never} never exist: {self.tiers.forced_k_note()}")
        return self

    def cutoff_rules(self) -> CutoffRules:
        """The ``cutoffs:`` section and the horizon as the planner's arguments."""
        c = self.cutoffs
        return CutoffRules(
            horizon_days=self.horizon_days,
            step_days=c.step_days,
            n_train=c.n_train,
            min_history_days=c.min_history_days,
            span_year=c.span_year,
            test_cutoff=pd.Timestamp(c.test_cutoff) if c.test_cutoff else None,
            n_validation=c.n_validation,
        )


_NAMED_KEY = re.compile(r"([a-z_]+(?:\.[a-z_]+)+): ")  # "outputs.at_risk_tiers: ..." at a message's start


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Load and validate a config file; relative data paths resolve against the current directory.

    Every error is a ConfigError naming the file that holds the offending key."""
    raw, sources = read_with_sources(Path(path).resolve())
    if overrides:
        raw = deep_merge(raw, overrides)
        sources = replaced_sources(sources, overrides)
        sources.update({key: Path("(command-line option)") for key in key_paths(overrides)})
    missing = [s for s in REQUIRED_SECTIONS if s not in raw]
    if missing:
        raise ConfigError(
            f"{path}: no {' and no '.join(f'`{s}:`' for s in missing)} section; start from a preset "
            f"(`base: default`, or one of {', '.join(n for n in preset_names() if n != 'default')}) "
            "or write one with `tiercast init --data FILE`"
        )
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where, message = tuple(first["loc"]), error_message(first)
        if not where and (named := _NAMED_KEY.match(message)):  # a check across sections names its key first
            where, message = tuple(named[1].split(".")), message[named.end() :]
        loc = ".".join(str(p) for p in where) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{holder_of(where, sources, Path(path))}: {loc}: {message}{more}") from None
    try:
        build_playbook(config)
    except PlaybookError as exc:
        rules = holder_of(("playbook", "rules"), sources, Path(path))
        own = rules.is_file() and rules != Path(path).resolve()
        hint = f" (the rules come from {rules}: give playbook.rules to fit)" if own else ""
        raise ConfigError(f"{path}: {exc}{hint}") from None
    protect_inputs_of(Path(path).resolve(), sources, config.data.input_files(), config.data.quarantine_path)
    return config
