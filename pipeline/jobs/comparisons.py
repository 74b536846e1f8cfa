"""What a user compares tiercast with first, on the training job's test cutoff: the buy-till-you-die models they would
use instead (BG/NBD and Pareto/NBD, each with Gamma-Gamma spend) and a plain LightGBM on the same features without the
BTYD stacking. The same methods as ``tiercast backtest`` (:mod:`tiercast.pipeline.jobs.backtest`), for the one test
cutoff ``tiercast train`` and ``tiercast run`` report."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tiercast.features.contract import CUTOFF
from tiercast.features.errors import InsufficientDataError
from tiercast.models.btyd.forecast import fit_forecaster
from tiercast.models.btyd.stacker import btyd_inputs
from tiercast.pipeline.config import Config
from tiercast.pipeline.jobs.model_fit import fit_models

#: How each method is named in tables and reports.
METHOD_LABELS: dict[str, str] = {
    "tiercast": "tiercast",
    "naive": "naive",
    "bgnbd_gg": "BG/NBD x GG",
    "paretonbd_gg": "Pareto/NBD x GG",
    "lgbm": "plain LightGBM",
    "rfm": "RFM",
}
#: Method name -> BTYD model of the baseline.
BTYD_BASELINES: dict[str, str] = {"bgnbd_gg": "bgnbd", "paretonbd_gg": "paretonbd"}


def comparison_predictions(
    train: pd.DataFrame, test: pd.DataFrame, validation: pd.Timestamp, config: Config
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(predicted value, churn probability) on the ``test`` rows per method: the BTYD baselines fitted on the test
    cutoff's own history (no labels), and the plain LightGBM fitted on ``train`` with ``validation`` choosing its
    settings like tiercast's (left out with a single training cutoff, or a churn label of one class: it would have
    nothing to validate on)."""
    h = config.horizon_days
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    inputs = btyd_inputs(test)
    for name, model in BTYD_BASELINES.items():
        fitted = fit_forecaster(inputs, model=model)
        out[name] = (fitted.predict_value(inputs, h), fitted.predict_churn(inputs, h))
    if train[CUTOFF].nunique() > 1:
        try:
            value, churn = fit_models(train, validation, config, stacked=False)
        except InsufficientDataError:  # a churn label of one class: no plain GBM to compare with
            return out
        out["lgbm"] = (value.predict(test), churn.predict_proba(test)[:, 1])
    return out
