"""The one scoring artifact: tier scheme + value model + churn model + feature list, as an MLflow pyfunc.

:class:`TiercastScorer` is plain Python (usable without MLflow); :class:`TiercastPyfunc` wraps it for MLflow so a
batch job loads a single registered model and scores feature rows, row-aligned.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import joblib
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

from tiercast.features.contract import (
    CHURN_PROBABILITY,
    CHURN_REASONS,
    CURRENT_TIER,
    PREDICTED_TIER,
    PREDICTED_VALUE,
    SEGMENT,
    SEGMENT_KEY,
    VALUE_AT_RISK,
    VALUE_REASONS,
)
from tiercast.models.drift import DriftProfile
from tiercast.models.gbm.churn import ChurnModel
from tiercast.models.gbm.value import ValueModel
from tiercast.models.reasons import top_reasons
from tiercast.models.segments import BehaviorSegments
from tiercast.models.tiers.scheme import TierScheme


class FeatureSchemaError(ValueError):
    """Feature rows do not match the features the model was trained on."""


_WINDOW_COLUMN = re.compile(r"^(?:orders|spend)_(?P<days>\d+)d$")


@dataclass(frozen=True)
class TiercastScorer:
    """Scores feature rows built at a cutoff with the same feature definitions as training.

    ``current_value_column`` holds realized spend over the last horizon-length window, which the tier scheme maps
    to the current tier; the predicted tier comes from the predicted value through the scheme's prediction
    thresholds. Value at risk = predicted value x churn probability. With ``segments``, each row also gets its
    behavioral segment (readable name and the key playbook rules refer to).
    """

    scheme: TierScheme
    value_model: ValueModel
    churn_model: ChurnModel
    feature_names: tuple[str, ...]
    current_value_column: str
    horizon_days: int
    versions: dict[str, str] = field(default_factory=dict)
    feature_profile: DriftProfile | None = None
    score_profile: DriftProfile | None = None
    segments: BehaviorSegments | None = None

    def drift(self, features: pd.DataFrame, scores: pd.DataFrame, threshold: float | None = None) -> pd.DataFrame:
        """PSI of each feature and of the score distributions against the training reference (empty without one)."""
        parts = []
        if self.feature_profile is not None:
            parts.append(self.feature_profile.psi(features, threshold=threshold).assign(kind="feature"))
        if self.score_profile is not None:
            parts.append(self.score_profile.psi(scores, threshold=threshold).assign(kind="score"))
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    @property
    def required_columns(self) -> tuple[str, ...]:
        extra = () if self.current_value_column in self.feature_names else (self.current_value_column,)
        return (*self.feature_names, *extra)

    @property
    def feature_windows(self) -> tuple[int, ...]:
        """Window lengths (days) of the model's windowed inputs (``orders_{w}d``, ``spend_{w}d``), the horizon's
        included: features built with these and :attr:`horizon_days` have every column the model reads."""
        return tuple(sorted({int(m["days"]) for c in self.required_columns if (m := _WINDOW_COLUMN.match(c))}))

    def trained_with(self) -> str:
        """How the model's features were built, e.g. ``horizon_days 90, windows 30/90/180`` (the window of last
        year's same season, which a 365-day window adds, left out)."""
        h = int(self.horizon_days)
        windows = [w for w in self.feature_windows if not (365 in self.feature_windows and w == 365 - h != h)]
        shown = "/".join(map(str, windows)) or "none"
        return f"horizon_days {h}, windows {shown}"

    def missing_columns_error(self, missing: Sequence[str]) -> FeatureSchemaError:
        """The error for feature rows that lack ``missing``; for window columns it names the model's horizon."""
        text = f"feature rows lack {len(missing)} column(s) the model needs: {', '.join(missing[:10])}"
        if any(_WINDOW_COLUMN.match(c) for c in missing):
            text += (
                f" (the model predicts {self.horizon_days} days, trained with {self.trained_with()}: build the "
                "features with that horizon and those windows, or retrain with the config's horizon_days and "
                "windows_days)"
            )
        return FeatureSchemaError(text)

    def check_schema(self, features: pd.DataFrame) -> None:
        missing = [c for c in self.required_columns if c not in features.columns]
        if missing:
            raise self.missing_columns_error(missing)
        bad = [c for c in self.required_columns if not pd.api.types.is_numeric_dtype(features[c])]
        if bad:
            raise FeatureSchemaError(f"feature column(s) are not numeric: {', '.join(bad[:10])}")

    def explain(self, features: pd.DataFrame, top: int = 3) -> pd.DataFrame:
        """Reason columns: the ``top`` features raising each customer's churn risk and value, as text.

        Exact per-feature contributions (TreeSHAP) cost far more than scoring, so batch jobs explain the customers
        they list (the at-risk list) rather than everyone.
        """
        self.check_schema(features)
        X = features[list(self.feature_names)].astype("float64")

        def reasons(model: ValueModel | ChurnModel, target: Literal["churn", "value"]) -> np.ndarray:
            # a stacked model's inputs include its derived BTYD features; phrases read them from transform()
            names = list(model.feature_names_in_)
            return top_reasons(model.contributions(X), model.transform(X), names, top, target=target).to_numpy()

        return pd.DataFrame(
            {CHURN_REASONS: reasons(self.churn_model, "churn"), VALUE_REASONS: reasons(self.value_model, "value")},
            index=features.index,
        ).astype("str")

    def score(self, features: pd.DataFrame, reasons: bool = False) -> pd.DataFrame:
        """Score columns (and, with ``reasons``, reason columns) for each row of ``features``, row-aligned."""
        self.check_schema(features)
        X = features[list(self.feature_names)].astype("float64")
        value = np.clip(self.value_model.predict(X), 0.0, None)
        churn = self.churn_model.predict_proba(X)[:, 1]
        current = features[self.current_value_column].astype("float64").fillna(0.0).to_numpy()
        out = pd.DataFrame(
            {
                CURRENT_TIER: self.scheme.assign(current),
                PREDICTED_TIER: self.scheme.assign_predicted(value),
                PREDICTED_VALUE: value,
                CHURN_PROBABILITY: churn,
                VALUE_AT_RISK: value * churn,
            },
            index=features.index,
        ).astype({CURRENT_TIER: "str", PREDICTED_TIER: "str"})
        if self.segments is not None:
            out[SEGMENT] = pd.Series(self.segments.predict(X), index=out.index, dtype="str")
            out[SEGMENT_KEY] = pd.Series(self.segments.predict_keys(X), index=out.index, dtype="str")
        return pd.concat([out, self.explain(features)], axis=1) if reasons else out


class TiercastPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow wrapper: loads the pickled :class:`TiercastScorer` artifact and scores a feature frame."""

    ARTIFACT = "scorer"

    def load_context(self, context) -> None:  # noqa: ANN001 - MLflow's context object
        self.scorer: TiercastScorer = joblib.load(context.artifacts[self.ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # noqa: ANN001
        """Scores; ``params={"reasons": True}`` adds the reason columns."""
        return self.scorer.score(model_input, reasons=bool((params or {}).get("reasons", False)))


EXAMPLE_QUANTILES = (0.25, 0.5, 0.75)


def aggregate_example(features: pd.DataFrame, quantiles: tuple[float, ...] = EXAMPLE_QUANTILES) -> pd.DataFrame:
    """Input-example rows that are no customer's row: each row holds one quantile of every column, taken over all
    the given rows (a model artifact must not carry real customers' features). Column dtypes are kept."""
    rows = features.quantile(list(quantiles), interpolation="nearest").reset_index(drop=True)
    return rows.astype(features.dtypes.to_dict())


def pyfunc_spec(scorer: TiercastScorer, example: pd.DataFrame, artifact_dir: str | Path) -> dict:
    """Keyword arguments for ``mlflow.pyfunc.save_model`` / ``log_model``: the pickled scorer as the artifact, the
    wrapper class, and a signature (feature columns in, score columns out, a ``reasons`` flag as a parameter) with
    an input example aggregated from ``example`` (per-column quantiles, never a customer's own row)."""
    example = aggregate_example(example[list(scorer.required_columns)])
    artifact = dump_scorer(scorer, Path(artifact_dir) / "scorer.joblib")
    return {
        "python_model": TiercastPyfunc(),
        "artifacts": {TiercastPyfunc.ARTIFACT: str(artifact)},
        "signature": infer_signature(example, scorer.score(example), params={"reasons": False}),
        "input_example": example,
    }


def dump_scorer(scorer: TiercastScorer, path: str | Path) -> Path:
    """Pickle the scorer with joblib (the artifact the pyfunc loads)."""
    path = Path(path)
    joblib.dump(scorer, path)
    return path
