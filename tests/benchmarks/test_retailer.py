"""The synthetic retailer: deterministic, inside its period, seasonal where told, and its truth is the truth."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tiercast.benchmarks.retailer import WORLDS, Cohort, World, generate_world, true_predictions, write_world
from tiercast.features.build import build_features
from tiercast.features.labels import build_labels
from tiercast.models.btyd.fitters import GammaGammaModel, ParetoNBDModel
from tiercast.pipeline.config import load_config
from tiercast.pipeline.ingest.transactions import read_transactions

BASE = WORLDS["btyd_cohorts"]


def tiny(**update) -> World:
    """A small pure-BTYD world of two yearly cohorts."""
    cohorts = tuple(Cohort(start=dt.date(y, 1, 1), days=365, customers=300) for y in (2020, 2021))
    return BASE.with_(**{"name": "tiny", "cohorts": cohorts, **update})


def test_same_seed_same_transactions_other_seed_other():
    a, b = generate_world(tiny(seed=5)), generate_world(tiny(seed=5))
    pd.testing.assert_frame_equal(a, b)
    assert not generate_world(tiny(seed=6)).equals(a)


def test_everything_falls_inside_the_period_and_first_purchases_in_the_cohort_windows():
    world = tiny(seed=1)
    tx = generate_world(world)
    assert tx["timestamp"].min() >= pd.Timestamp(world.start)
    assert tx["timestamp"].max() < pd.Timestamp(world.end)
    assert tx["timestamp"].is_monotonic_increasing and tx["order_id"].is_unique
    assert (tx["amount"] > 0).all() and tx["customer_id"].nunique() == world.n_customers
    first = tx.groupby("customer_id")["timestamp"].min().sort_index()
    n0 = world.cohorts[0].customers
    assert (first.iloc[:n0] < pd.Timestamp("2021-01-01")).all() and (
        first.iloc[n0:] >= pd.Timestamp("2021-01-01")
    ).all()


def test_a_world_that_outlives_its_end_is_refused():
    with pytest.raises(ValueError, match="runs past the end"):
        tiny(cohorts=(Cohort(start=dt.date(2022, 6, 1), days=365, customers=10),))
    with pytest.raises(ValueError, match="last test window"):
        tiny(backtest=BASE.backtest.model_copy(update={"test_cutoff": dt.date(2022, 12, 1)}))
    with pytest.raises(ValueError, match="months 1..12"):
        tiny(season={13: 2.0})


def test_the_december_peak_shows_in_monthly_totals():
    """With December's clock at 2.5 (November 1.3) December's spend is ~2.5x October's (same length, a month
    of population growth apart); without a season the two are alike."""

    def monthly(world: World) -> pd.Series:
        tx = generate_world(world)
        tx = tx[tx["timestamp"] >= pd.Timestamp("2020-01-01")]  # cohorts every year from 2019: a steady population
        return tx.groupby(tx["timestamp"].dt.month)["amount"].sum()

    cohorts = tuple(Cohort(start=dt.date(y, 1, 1), days=365, customers=1_500) for y in (2019, 2020, 2021, 2022))
    flat = monthly(tiny(cohorts=cohorts, seed=2))
    peak = monthly(tiny(cohorts=cohorts, seed=2, season={11: 1.3, 12: 2.5}))
    assert 0.85 < flat[12] / flat[10] < 1.2
    assert 2.0 < peak[12] / peak[10] < 2.9
    assert 1.1 < peak[11] / peak[10] < 1.5
    assert peak.idxmax() == 12 and peak[12] > 2 * peak.drop([11, 12]).max()


def _observed_information(model: ParetoNBDModel, x, tx, T) -> np.ndarray:
    """Standard errors of the log-parameters from the finite-difference Hessian of the total log-likelihood."""
    z0 = np.log(model._params_array())

    def ll(z):
        return float(np.sum(model._loglik(np.exp(z), x, tx, T)))

    k, eps = z0.size, 1e-3
    H = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            ei, ej = np.eye(k)[i] * eps, np.eye(k)[j] * eps
            H[i, j] = (ll(z0 + ei + ej) - ll(z0 + ei - ej) - ll(z0 - ei + ej) + ll(z0 - ei - ej)) / (4 * eps**2)
    return np.sqrt(np.diag(np.linalg.inv(-H)))


def test_paretonbd_fitted_on_a_large_btyd_world_recovers_the_true_parameters():
    world = BASE.with_(name="large", seed=11, cohorts=(Cohort(start=dt.date(2021, 1, 1), days=365, customers=6_000),))
    tx = generate_world(world)
    feats = build_features(tx, cutoff=pd.Timestamp("2023-01-01"), windows_days=(30,), horizon_days=91)
    x = feats["repeat_purchase_days"].to_numpy()
    tx_w = np.where(x > 0, feats["first_to_last_days"].fillna(0).to_numpy() / 7, 0.0)
    T = feats["tenure_days"].to_numpy() / 7
    fit = ParetoNBDModel().fit(x, tx_w, T)
    assert fit.converged_
    se = _observed_information(fit, x, tx_w, T)
    truth = np.array([world.r, world.alpha, world.s, world.beta])
    z = (np.log(fit._params_array()) - np.log(truth)) / se
    assert (np.abs(z) < 3.5).all(), dict(zip(("r", "alpha", "s", "beta"), z.round(2), strict=True))
    assert (se < 0.25).all()  # a large enough world to pin the parameters down
    gg = GammaGammaModel().fit(x, feats["repeat_spend_mean"].to_numpy())
    for name in ("p", "q", "v"):
        assert gg.params_[name] == pytest.approx(getattr(world, name), rel=0.25), (name, gg.params_)


@pytest.mark.parametrize("season", [{}, {11: 1.3, 12: 2.5}])
def test_true_predictions_add_up_to_what_happens(season):
    """Summed over customers, the true expected purchases and P(no purchase) meet the realized counts and churn
    (within a few standard errors); in a seasonal world too, over the December quarter and over spring."""
    cohorts = tuple(Cohort(start=dt.date(y, 1, 1), days=365, customers=2_000) for y in (2020, 2021, 2022))
    world = tiny(cohorts=cohorts, seed=7, season=season)
    tx = generate_world(world)
    for cutoff in ("2022-03-01", "2022-10-01"):
        truth = true_predictions(world, tx, cutoff=cutoff, horizon_days=91)
        labels = build_labels(tx, cutoff=pd.Timestamp(cutoff), horizon_days=91).set_index("customer_id")
        labels = labels.reindex(truth.index).fillna({"future_value": 0.0, "future_orders": 0.0, "churned": 1.0})
        purchases = tx[(tx["timestamp"] >= cutoff) & (tx["timestamp"] < pd.Timestamp(cutoff) + pd.Timedelta(days=91))]
        realized = purchases[purchases["customer_id"].isin(truth.index)].shape[0]
        expected = truth["expected_purchases"].sum()
        assert abs(realized - expected) < 4 * np.sqrt(expected) * 1.5, (cutoff, realized, expected)
        churn_sd = np.sqrt((truth["p_no_purchase"] * (1 - truth["p_no_purchase"])).sum())
        assert abs(labels["churned"].sum() - truth["p_no_purchase"].sum()) < 4 * churn_sd
        assert truth["expected_value"].sum() == pytest.approx(labels["future_value"].sum(), rel=0.15)
        assert ((truth["p_alive"] >= 0) & (truth["p_alive"] <= 1)).all()


def test_true_spend_is_the_posterior_mean_over_every_purchase():
    """Hand-computed: E[spend per purchase | n amounts with mean m] = p (v + n m) / (p n + q - 1)."""
    world = tiny(seed=9)
    tx = pd.DataFrame(
        {
            "customer_id": ["a", "b", "b", "b"],
            "timestamp": pd.to_datetime(
                ["2021-01-05 09:00", "2021-01-05 09:00", "2021-02-01 10:00", "2021-02-01 15:00"]
            ),
            "amount": [40.0, 10.0, 5.0, 15.0],
            "order_id": ["1", "2", "3", "4"],
        }
    )
    truth = true_predictions(world, tx, cutoff="2021-03-01", horizon_days=91)
    p, q, v = world.p, world.q, world.v
    assert truth.loc["a", "expected_spend"] == pytest.approx(p * (v + 40.0) / (p + q - 1))
    # b: two purchase days (10; 5 + 15 on one day), mean 15 per day
    assert truth.loc["b", "expected_spend"] == pytest.approx(p * (v + 2 * 15.0) / (2 * p + q - 1))


def test_written_world_reads_back_through_the_config(tmp_path):
    world = tiny(seed=3)
    data, config_path = write_world(world, tmp_path)
    cfg = load_config(config_path)
    assert cfg.horizon_days == world.backtest.horizon_days
    assert cfg.cutoffs.test_cutoff == str(world.backtest.test_cutoff)
    ingest = read_transactions(cfg.data)
    tx = generate_world(world)
    assert ingest.n_read == len(tx) and len(ingest.quarantine) == 0
    assert len(ingest.accepted) == len(tx) and ingest.accepted["customer_id"].nunique() == world.n_customers
    assert ingest.accepted["amount"].sum() == pytest.approx(tx["amount"].sum())
