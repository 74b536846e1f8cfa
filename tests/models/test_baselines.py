"""Baselines: tiny hand-computed frames, the shared interface, leak-freedom, and the CDNOW holdout figures."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from tiercast.features.contract import spend_column
from tiercast.models.baselines import CellMeanBaseline, NaiveBaseline
from tiercast.models.btyd import forecast
from tiercast.models.btyd.fitters import BetaGeoModel, GammaGammaModel
from tiercast.models.btyd.forecast import BTYDForecaster, btyd_features, fit_forecaster
from tiercast.models.evaluation import churn_metrics, roc_auc, value_metrics

CDNOW = Path(__file__).resolve().parents[2] / "data" / "cdnow" / "CDNOW_master.txt"


def tiny_frame() -> pd.DataFrame:
    """Eight customers; recency 1..8 days, one or more orders, spend in the last 90 days."""
    return pd.DataFrame(
        {
            "recency_days": [1.0, 2, 3, 4, 5, 6, 7, 8],
            "tenure_days": [200.0, 150, 300, 100, 250, 120, 180, 90],
            "repeat_purchase_days": [3.0, 0, 5, 1, 2, 1, 0, 0],
            "first_to_last_days": [150.0, 0, 290, 90, 200, 100, 0, 0],
            "repeat_spend_mean": [20.0, 0, 35, 10, 50, 15, 0, 0],
            "monetary_total": [10.0] * 8,
            "frequency_orders": [1.0, 1, 1, 1, 2, 2, 3, 3],
            "spend_90d": [40.0, 0, 70, 10, 0, 15, 5, 0],
        },
        index=pd.Index([f"c{i}" for i in range(8)], name="customer_id"),
    )


def synthetic_frame(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    """Feature rows of customers simulated from a BG/NBD process (rates per day), ages 60..360 days."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(0.5, 1 / 40.0, n)
    p_drop = rng.beta(1.0, 3.0, n)
    age = rng.uniform(60, 360, n)
    x, last, now = np.zeros(n), np.zeros(n), np.zeros(n)
    alive = np.ones(n, bool)
    while alive.any():
        now[alive] += rng.exponential(1 / lam[alive])
        alive &= now <= age
        x[alive] += 1
        last[alive] = now[alive]
        alive &= rng.random(n) >= p_drop
    first_to_last = np.floor(last)
    spend = rng.gamma(4.0, 8.0, n)
    return pd.DataFrame(
        {
            "recency_days": np.floor(age) - first_to_last,
            "tenure_days": np.floor(age),
            "repeat_purchase_days": x,
            "first_to_last_days": first_to_last,
            "repeat_spend_mean": np.where(x > 0, spend, 0.0),
            "monetary_total": spend * (x + 1),
            "frequency_orders": x + 1,
            "spend_90d": np.where(np.floor(age) - first_to_last < 90, spend, 0.0),
        },
        index=pd.Index([f"s{i}" for i in range(n)], name="customer_id"),
    )


# ----------------------------------------------------------------------------------------------- naive


def test_naive_value_is_last_window_spend() -> None:
    X = tiny_frame()
    nb = NaiveBaseline().fit(X)
    assert nb.predict_value(X, 90).tolist() == X["spend_90d"].tolist()
    with pytest.raises(ValueError, match="spend_30d"):
        nb.predict_value(X, 30)
    assert spend_column(90) == "spend_90d"
    with pytest.raises(ValueError):
        spend_column(90.5)


def test_naive_churn_without_labels_is_recency_mid_rank() -> None:
    X = pd.DataFrame({"recency_days": [10.0, 20, 20, 40]})
    nb = NaiveBaseline().fit(X)
    # sorted training recency 10, 20, 20, 40: mid-ranks (0+1)/8, (1+3)/8, (1+3)/8, (3+4)/8
    assert nb.predict_churn(X, 90).tolist() == [0.125, 0.5, 0.5, 0.875]
    # unseen values fall between: 15 is above one training value -> (1 + 1) / 8; 99 above all -> 1
    assert nb.predict_churn(pd.DataFrame({"recency_days": [15.0, 99.0]}), 90).tolist() == [0.25, 1.0]


def test_naive_churn_with_labels_is_calibrated_and_keeps_recency_order() -> None:
    rng = np.random.default_rng(0)
    rec = rng.uniform(0, 300, 2000)
    y = (rng.random(2000) < rec / 300).astype(float)
    X = pd.DataFrame({"recency_days": rec})
    p = NaiveBaseline().fit(X, y_churn=y).predict_churn(X, 90)
    assert np.all((p > 0) & (p < 1))
    assert p.mean() == pytest.approx(y.mean(), abs=1e-3)  # logistic MLE with intercept: calibrated in the large
    assert roc_auc(y, p) == pytest.approx(roc_auc(y, rec))  # strictly increasing in recency
    with pytest.raises(NotFittedError):
        NaiveBaseline().predict_churn(X, 90)


# ----------------------------------------------------------------------------------------------- RFM


def test_rfm_cells_and_fallbacks() -> None:
    X = tiny_frame()
    y_value = np.array([0.0, 10, 20, 30, 5, 5, 5, 5])  # total 80
    y_churn = np.array([0.0, 0, 0, 1, 1, 1, 1, 0])
    # n_bins = 2: recency median 4.5 -> R = 2 for the first four; orders median 1.5 -> F = 2 for the last four;
    # monetary constant -> M = 1. Cells: (R2, F1, M1) = customers 0-3, (R1, F2, M1) = customers 4-7.
    rfm = CellMeanBaseline(n_bins=2, min_cell_size=1).fit(X, y_value, y_churn)
    assert rfm.predict_value(X, 90).tolist() == [15.0] * 4 + [5.0] * 4
    assert rfm.predict_churn(X, 90).tolist() == [0.25] * 4 + [0.75] * 4
    # a recent customer with 3 orders: (R2, F2) was never seen -> falls back to R2's mean 15
    new = X.iloc[[0]].assign(recency_days=2.0, frequency_orders=3.0)
    assert rfm.predict_value(new, 90).tolist() == [15.0]
    # cells smaller than min_cell_size are skipped -> overall mean 10
    assert CellMeanBaseline(n_bins=2, min_cell_size=5).fit(X, y_value).predict_value(X, 90).tolist() == [10.0] * 8


def test_rfm_needs_labels() -> None:
    X = tiny_frame()
    with pytest.raises(ValueError, match="needs y_value"):
        CellMeanBaseline().fit(X)
    rfm = CellMeanBaseline(n_bins=2, min_cell_size=1).fit(X, y_value=np.ones(8))
    with pytest.raises(ValueError, match="without y_churn"):
        rfm.predict_churn(X, 90)


# ----------------------------------------------------------------------------------------------- BTYD


def test_btyd_baseline_matches_the_models_in_weeks() -> None:
    X = synthetic_frame()
    b = BTYDForecaster("bgnbd").fit(X)
    x = X["repeat_purchase_days"].to_numpy()
    tx = X["first_to_last_days"].to_numpy() / 7
    T = X["tenure_days"].to_numpy() / 7
    m = X["repeat_spend_mean"].to_numpy()
    direct = BetaGeoModel().fit(x, tx, T)
    assert b.count_model_.params_ == pytest.approx(direct.params_, rel=1e-6)
    spend = GammaGammaModel().fit(x, m).conditional_expected_average_profit(x, m)
    assert b.predict_value(X, 91) == pytest.approx(direct.expected_purchases(13, x, tx, T) * spend, rel=1e-6)
    assert b.predict_churn(X, 91) == pytest.approx(direct.prob_no_purchase(13, x, tx, T), rel=1e-6)


def test_spend_of_every_purchase_day_reads_the_first_purchase_too() -> None:
    """``spend="all"``: Gamma-Gamma fitted on (purchase days, ``day_spend_mean``) of everyone who bought, so two
    one-time buyers of 20 and 200 get different spends (the lifetimes convention gives both the population mean);
    a customer without a purchase day gets the population mean. The count model is the same."""
    rng = np.random.default_rng(1)
    X = synthetic_frame()
    x = X["repeat_purchase_days"].to_numpy()
    X["day_spend_mean"] = (x * X["repeat_spend_mean"] + rng.gamma(4.0, 8.0, len(X))) / (x + 1)
    X.iloc[:3, X.columns.get_loc("repeat_purchase_days")] = 0.0
    X.iloc[:3, X.columns.get_loc("repeat_spend_mean")] = 0.0
    X.iloc[:3, X.columns.get_loc("day_spend_mean")] = [20.0, 200.0, 0.0]  # the third: refunds only
    x, day = X["repeat_purchase_days"].to_numpy(), X["day_spend_mean"].to_numpy()
    every = BTYDForecaster("bgnbd", spend="all").fit(X)
    repeat = BTYDForecaster("bgnbd").fit(X)
    assert every.count_model_.params_ == repeat.count_model_.params_
    n = np.where(day > 0, x + 1, 0.0)
    gg = GammaGammaModel().fit(n, day)
    assert every.gg_.params_ == pytest.approx(gg.params_, rel=1e-9)
    spend = every.transform(X, 91)["btyd_expected_avg_spend"].to_numpy()
    assert spend == pytest.approx(gg.conditional_expected_average_profit(n, day), rel=1e-9)
    p, q, v = (gg.params_[k] for k in "pqv")
    assert spend[0] == pytest.approx(p * (v + 20.0) / (p + q - 1)) and spend[1] > spend[0]
    assert spend[2] == pytest.approx(p * v / (q - 1))  # no purchase day: the population mean
    assert repeat.transform(X, 91)["btyd_expected_avg_spend"].iloc[:3].nunique() == 1
    with pytest.raises(ValueError, match="day_spend_mean"):
        BTYDForecaster(spend="all").fit(X.drop(columns="day_spend_mean"))
    with pytest.raises(ValueError, match="spend must be one of"):
        BTYDForecaster(spend="first").fit(X)


def test_btyd_baseline_ignores_labels_and_is_unit_free() -> None:
    X = synthetic_frame()
    a = BTYDForecaster("paretonbd").fit(X)
    b = BTYDForecaster("paretonbd").fit(X, y_value=np.full(len(X), 1e6), y_churn=np.ones(len(X)))
    assert np.array_equal(a.predict_value(X, 90), b.predict_value(X, 90))
    days = BTYDForecaster("paretonbd", time_unit_days=1.0).fit(X)
    assert days.predict_churn(X, 90) == pytest.approx(a.predict_churn(X, 90), rel=1e-3)
    with pytest.raises(ValueError, match="model must be"):
        BTYDForecaster("nbd").fit(X)


def test_btyd_features_per_cutoff() -> None:
    X = synthetic_frame()
    f = btyd_features(X, 90)
    assert list(f.columns) == [
        "btyd_expected_purchases", "btyd_p_alive", "btyd_p_no_purchase", "btyd_expected_avg_spend",
        "btyd_expected_value",
    ]  # fmt: skip
    assert f.index.equals(X.index)
    assert np.allclose(f["btyd_expected_value"], f["btyd_expected_purchases"] * f["btyd_expected_avg_spend"])
    assert np.allclose(f["btyd_expected_value"], BTYDForecaster().fit(X).predict_value(X, 90))
    assert f["btyd_p_no_purchase"].between(0, 1).all() and f["btyd_p_alive"].between(0, 1).all()
    # stacked cutoffs are fitted separately: the rows of one cutoff do not depend on the other cutoff's rows
    later = X.assign(tenure_days=X["tenure_days"] + 30, recency_days=X["recency_days"] + 30)
    stacked = pd.concat([X.assign(cutoff=1), later.assign(cutoff=2)]).reset_index()
    fs = btyd_features(stacked, 90)
    assert np.allclose(fs.loc[stacked["cutoff"] == 1, "btyd_p_alive"], f["btyd_p_alive"])
    assert not np.allclose(fs.loc[stacked["cutoff"] == 2, "btyd_p_alive"], f["btyd_p_alive"])
    # the baseline, given a stacked frame, fits on the latest cutoff only
    latest = BTYDForecaster().fit(stacked)
    assert latest.count_model_.params_ == pytest.approx(BTYDForecaster().fit(later).count_model_.params_)


def test_fit_forecaster_fits_each_set_of_rows_once(monkeypatch) -> None:
    """The memoized fit gives what a fresh fit gives, fits rows it has seen once per model, refits when one value
    or the cutoff column changes, and hands out copies (a caller's changes do not reach the next one)."""
    X = synthetic_frame(n=300, seed=3)
    fits: list[int] = []
    fit = BTYDForecaster.fit
    monkeypatch.setattr(BTYDForecaster, "fit", lambda self, X: fits.append(len(X)) or fit(self, X))
    monkeypatch.setattr(forecast, "_FITTED", type(forecast._FITTED)())
    a = fit_forecaster(X, model="paretonbd")
    b = fit_forecaster(X.copy(), model="paretonbd")
    assert len(fits) == 1 and a is not b and a.count_model_ is not b.count_model_
    fresh = fit(BTYDForecaster("paretonbd"), X)
    assert a.count_model_.params_ == fresh.count_model_.params_
    assert np.array_equal(b.predict_churn(X, 90), fresh.predict_churn(X, 90))
    a.count_model_.params_["r"] = -1.0
    assert fit_forecaster(X, model="paretonbd").count_model_.params_ == fresh.count_model_.params_
    fit_forecaster(X, model="bgnbd")
    changed = X.copy()
    changed.iloc[0, changed.columns.get_loc("tenure_days")] += 1.0
    fit_forecaster(changed, model="paretonbd")
    fit_forecaster(X.assign(cutoff=1), model="paretonbd")
    assert len(fits) == 4


# ----------------------------------------------------------------------------------------------- CDNOW

H = 273  # 1997-10-01 .. 1998-06-30: 39 weeks


@lru_cache(maxsize=1)
def cdnow_at_cutoff() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Feature frame at cutoff 1997-10-01 (features see dates < cutoff) and holdout labels (39 weeks)."""
    df = pd.read_csv(CDNOW, sep=r"\s+", dtype={"customer_id": str, "date": str})
    df["date"] = pd.to_datetime(df["date"], format="%Y%m%d")
    cutoff, end = pd.Timestamp("1997-10-01"), pd.Timestamp("1998-07-01")
    past = df[df["date"] < cutoff]
    day = past.groupby(["customer_id", "date"], as_index=False)["dollar_value"].sum()
    g = day.groupby("customer_id").agg(
        first=("date", "min"), last=("date", "max"), n=("date", "size"), total=("dollar_value", "sum")
    )
    first_spend = day.sort_values("date").groupby("customer_id")["dollar_value"].first()
    X = pd.DataFrame(index=g.index)
    X["recency_days"] = (cutoff - g["last"]).dt.days.astype(float)
    X["tenure_days"] = (cutoff - g["first"]).dt.days.astype(float)
    X["repeat_purchase_days"] = (g["n"] - 1).astype(float)
    X["first_to_last_days"] = (g["last"] - g["first"]).dt.days.astype(float)
    X["repeat_spend_mean"] = np.where(g["n"] > 1, (g["total"] - first_spend) / (g["n"] - 1).clip(lower=1), 0.0)
    X["monetary_total"] = g["total"]
    X["frequency_orders"] = past.groupby("customer_id").size().astype(float)
    recent = past[past["date"] >= cutoff - pd.Timedelta(days=H)]
    X[f"spend_{H}d"] = recent.groupby("customer_id")["dollar_value"].sum().reindex(X.index).fillna(0.0)
    future = df[(df["date"] >= cutoff) & (df["date"] < end)]
    y_value = future.groupby("customer_id")["dollar_value"].sum().reindex(X.index).fillna(0.0).to_numpy()
    y_churn = (~X.index.isin(future["customer_id"])).astype(float)
    return X, y_value, y_churn


def test_cdnow_frame() -> None:
    X, y_value, y_churn = cdnow_at_cutoff()
    assert len(X) == 23570
    assert y_value.sum() == pytest.approx(776961.13, abs=0.01)
    assert y_churn.mean() == pytest.approx(0.7006, abs=1e-4)


@pytest.mark.parametrize(
    ("model", "gini", "spearman", "mae", "auc"),
    [("bgnbd", 0.672, 0.420, 32.6, 0.746), ("paretonbd", 0.684, 0.442, 31.8, 0.763)],
)
def test_btyd_baseline_cdnow_holdout(model, gini, spearman, mae, auc) -> None:
    """Reference: BG/NBD x GG nGini 0.672; Pareto/NBD x GG 0.684, Spearman 0.44, MAE ~32, P(no purchase) AUC 0.763."""
    X, y_value, y_churn = cdnow_at_cutoff()
    b = BTYDForecaster(model).fit(X)
    v = value_metrics(y_value, b.predict_value(X, H))
    c = churn_metrics(y_churn, b.predict_churn(X, H))
    assert v["normalized_gini"] == pytest.approx(gini, abs=0.002)
    assert v["spearman"] == pytest.approx(spearman, abs=0.002)
    assert v["mae"] == pytest.approx(mae, abs=0.1)
    assert c["roc_auc"] == pytest.approx(auc, abs=0.001)
    # P(no purchase) ranks churners; 1 - P(alive) does not (BG/NBD: P(alive) = 1 without repeat purchases)
    if model == "bgnbd":
        p_alive = b.transform(X, H)["btyd_p_alive"].to_numpy()
        assert roc_auc(y_churn, 1 - p_alive) < 0.4


def test_naive_cdnow_holdout() -> None:
    """Reference: recency's churn AUC 0.759. Calibration is fitted on the same frame here (CDNOW has no earlier
    39-week window), so its Brier is in-sample."""
    X, y_value, y_churn = cdnow_at_cutoff()
    nb = NaiveBaseline().fit(X, y_churn=y_churn)
    c = churn_metrics(y_churn, nb.predict_churn(X, H))
    assert c["roc_auc"] == pytest.approx(0.759, abs=0.001)
    assert c["roc_auc"] == pytest.approx(roc_auc(y_churn, X["recency_days"]))
    v = value_metrics(y_value, nb.predict_value(X, H))
    assert v["normalized_gini"] == pytest.approx(0.696, abs=0.002)
