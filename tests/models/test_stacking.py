"""BTYD stacking inside the value and churn models: per-cutoff fits, offsets, blend, purge, row-wise scoring."""

import copy

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from tiercast.features.training_set import build_training_set
from tiercast.models.btyd.forecast import BTYDForecaster
from tiercast.models.btyd.seasons import season_indices, season_method, season_scale, year_spanned
from tiercast.models.btyd.stacker import (
    BTYD_FEATURES,
    BTYD_MODELS,
    BTYDStacker,
    _paired_margin,
    btyd_inputs,
    choose_btyd,
    stacked_btyd,
)
from tiercast.models.btyd.value_choice import choose_value_btyd
from tiercast.models.evaluation import normalized_gini
from tiercast.models.gbm.blend import BLEND_WEIGHTS, choose_weight, gain_over_btyd
from tiercast.models.gbm.churn import ChurnModel, _offset_bic_score, _offset_platt, _platt_bic_score
from tiercast.models.gbm.stacked import PurgeWarning, overlaps_validation, purge_mask
from tiercast.models.gbm.value import ValueModel

HORIZON = 60
# One thread: on a shared machine, OpenMP threads waiting on busy cores make small fits many times slower.
FAST = {"params": {"n_jobs": 1}, "n_estimators": 300, "early_stopping_rounds": 20, "random_state": 0}


def simulate_transactions(n_customers: int = 800, days: int = 420, seed: int = 0) -> pd.DataFrame:
    """A BG/NBD world: customers arrive over the first months, buy at Gamma-distributed Poisson rates and drop out
    after each purchase with a Beta-distributed probability; spend per order has a per-customer level."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2022-01-01")
    rate = rng.gamma(0.8, 1 / 25.0, n_customers)  # orders per day
    drop = rng.beta(1.0, 6.0, n_customers)
    level = rng.lognormal(3.5, 0.6, n_customers)
    rows = []
    for c in range(n_customers):
        t = float(rng.integers(0, days // 3))
        while t < days:
            rows.append((f"c{c:04d}", t, level[c] * rng.lognormal(0, 0.4)))
            if rng.random() < drop[c]:
                break
            t += rng.exponential(1 / rate[c])
    tx = pd.DataFrame(rows, columns=["customer_id", "day", "amount"])
    tx["timestamp"] = (start + pd.to_timedelta(tx.pop("day").round(), unit="D")).astype("datetime64[us]")
    tx["order_id"] = [f"o{i}" for i in range(len(tx))]
    return tx.sort_values(["timestamp", "customer_id"], ignore_index=True)[
        ["customer_id", "timestamp", "amount", "order_id"]
    ]


@pytest.fixture(scope="module")
def frames():
    """Training cutoffs every 30 days, the validation cutoff (= test - horizon) and the test cutoff."""
    tx = simulate_transactions()
    test = pd.Timestamp("2022-01-01") + pd.Timedelta(days=420 - HORIZON)
    val = test - pd.Timedelta(days=HORIZON)
    train_cuts = [val - pd.Timedelta(days=30 * k) for k in (4, 3, 2, 1)]
    data = build_training_set(
        tx,
        cutoffs=[*train_cuts, val, test],
        horizon_days=HORIZON,
        windows_days=(30, 90),
        data_end=test + pd.Timedelta(days=HORIZON),
    )
    feats = [c for c in data.columns if c not in ("customer_id", "future_value", "future_orders", "churned")]
    train = data[data["cutoff"].isin(train_cuts)].reset_index(drop=True)
    return (
        train,
        data[data["cutoff"] == val].reset_index(drop=True),
        data[data["cutoff"] == test].reset_index(drop=True),
        feats,
    )


@pytest.fixture(scope="module")
def value_model(frames):
    train, val, _, feats = frames
    return ValueModel(horizon_days=HORIZON, **FAST).fit(
        train[feats], train["future_value"], val[feats], val["future_value"]
    )


@pytest.fixture(scope="module")
def churn_model(frames):
    train, val, _, feats = frames
    return ChurnModel(horizon_days=HORIZON, calibration="offset", **FAST).fit(
        train[feats], train["churned"], val[feats], val["churned"]
    )


def test_btyd_features_are_fitted_per_cutoff_without_leakage(frames):
    train, _, _, feats = frames
    groups = train["cutoff"].to_numpy()
    days = np.full(len(train), float(HORIZON))
    kw = {"model": "bgnbd", "time_unit_days": 7.0, "feature_horizon_days": HORIZON, "label_days": days}
    derived, _, latest = stacked_btyd(train, groups, **kw)
    first = train["cutoff"] == train["cutoff"].min()
    alone = BTYDStacker().fit(train[first]).transform(train[first], HORIZON)
    np.testing.assert_allclose(derived[first.to_numpy()].to_numpy(), alone.to_numpy())
    # Changing another cutoff's rows changes nothing at this cutoff: each cutoff sees only its own rows.
    other = train.copy()
    other.loc[~first, "repeat_purchase_days"] += 3
    other.loc[~first, "first_to_last_days"] = other.loc[~first, "tenure_days"]
    again, _, _ = stacked_btyd(other, groups, **kw)
    np.testing.assert_array_equal(again[first.to_numpy()].to_numpy(), derived[first.to_numpy()].to_numpy())
    assert latest.btyd_.count_model_.n_customers_ == int((train["cutoff"] == train["cutoff"].max()).sum())


def test_btyd_inputs_map_undefined_to_no_purchase():
    X = pd.DataFrame(
        {"repeat_purchase_days": [0.0, 2.0], "first_to_last_days": [np.nan, 30.0], "tenure_days": [10.0, 20.0],
         "repeat_spend_mean": [np.nan, 5.0]}
    )  # fmt: skip
    out = btyd_inputs(X)
    assert out.loc[0, "first_to_last_days"] == 0.0 and out.loc[0, "repeat_spend_mean"] == 0.0
    assert out.loc[1, "first_to_last_days"] == 20.0  # recency never exceeds age
    with pytest.raises(ValueError, match="tenure_days"):
        btyd_inputs(X.drop(columns="tenure_days"))


def test_purge_keeps_rows_whose_labels_end_by_the_validation_cutoff():
    cuts = pd.to_datetime(["2022-01-01", "2022-02-01", "2022-03-01"]).to_numpy()
    mask = purge_mask(cuts, np.array([31.0, 31.0, 31.0]), pd.Timestamp("2022-03-01"))
    np.testing.assert_array_equal(mask, [True, False, False])  # Jan 1 + 31 d = Feb 1 <= Mar 1; Feb 1 + 31 d > Mar 1
    assert purge_mask(cuts[:2], np.array([1.0, 1.0]), pd.Timestamp("2022-03-01")) is None  # nothing to purge
    assert purge_mask(np.array([0, 1, 2]), np.ones(3), pd.Timestamp("2022-03-01")) is None  # no dates: no purge


def test_stacked_value_model_beats_plain_btyd_and_totals(value_model, frames):
    _, _, test, feats = frames
    y = test["future_value"].to_numpy()
    pred = value_model.predict(test[feats])
    assert pred.shape == (len(test),) and (pred > 0).all()
    btyd = BTYDForecaster("bgnbd").fit(btyd_inputs(test)).predict_value(btyd_inputs(test), HORIZON)
    # The data follow BG/NBD, so BTYD is near-optimal: the stacked model must not fall far behind it.
    assert normalized_gini(y, pred) > normalized_gini(y, btyd) - 0.03
    assert normalized_gini(y, pred) > 0.5
    assert pred.sum() == pytest.approx(y.sum(), rel=0.3)
    assert 0.0 <= value_model.weight_ <= 1.0 and set(value_model.blend_scores_) >= {0.0, 1.0}
    assert list(value_model.feature_names_in_[-len(BTYD_FEATURES) :]) == list(BTYD_FEATURES)


def test_stacked_churn_model_ranks_and_is_calibrated(churn_model, frames):
    _, _, test, feats = frames
    y = test["churned"].to_numpy()
    p = churn_model.predict_proba(test[feats])[:, 1]
    assert ((p > 0) & (p < 1)).all()
    btyd = BTYDForecaster("bgnbd").fit(btyd_inputs(test)).predict_churn(btyd_inputs(test), HORIZON)
    assert roc_auc_score(y, p) > roc_auc_score(y, btyd) - 0.02
    assert p.mean() == pytest.approx(y.mean(), abs=0.08)
    # stacked: only the trees' correction is calibrated (offset form), no Platt map of the whole log-odds
    assert churn_model.tree_calibration_ is not None and churn_model.calibrator_ is None


def test_offset_calibration_recovers_slope_and_intercept():
    rng = np.random.default_rng(0)
    off, z = rng.normal(0, 1, 20_000), rng.normal(0, 1, 20_000)
    y = (rng.random(20_000) < 1 / (1 + np.exp(-(off + 0.6 * z - 0.4)))).astype(int)
    a, b = _offset_platt(off, z, y)
    assert a == pytest.approx(0.6, abs=0.05) and b == pytest.approx(-0.4, abs=0.05)


def test_offset_calibration_keeps_the_btyd_horizon(churn_model, frames):
    """Changing the horizon moves the calibrated log-odds by exactly the BTYD offset's change (coefficient 1)."""
    _, _, test, feats = frames
    X = test[feats]
    stacker = churn_model.stacker_
    d_off = BTYDStacker.churn_offset(stacker.transform(X, 3 * HORIZON)) - BTYDStacker.churn_offset(
        stacker.transform(X, HORIZON)
    )
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    d_z = logit(churn_model.predict_proba(X, horizon_days=3 * HORIZON)[:, 1]) - logit(
        churn_model.predict_proba(X)[:, 1]
    )
    np.testing.assert_allclose(d_z, d_off, atol=1e-6)


def test_platt_calibration_is_still_available(frames):
    train, val, test, feats = frames
    model = ChurnModel(horizon_days=HORIZON, calibration="platt", **{**FAST, "n_estimators": 80}).fit(
        train[feats], train["churned"], val[feats], val["churned"]
    )
    assert model.calibrator_ is not None and model.tree_calibration_ is None
    p = model.predict_proba(test[feats])[:, 1]
    assert ((p > 0) & (p < 1)).all()
    with pytest.raises(ValueError, match="calibration"):
        ChurnModel(horizon_days=HORIZON, calibration="isotonic", **FAST).fit(
            train[feats], train["churned"], val[feats], val["churned"]
        )


@pytest.mark.parametrize("which", ["value", "churn"])
def test_scoring_is_row_wise_and_contributions_add_up(which, value_model, churn_model, frames):
    _, _, test, feats = frames
    model = value_model if which == "value" else churn_model
    X = test[feats].drop(columns="cutoff")
    if which == "value":
        score, link = model.predict, lambda X: np.log(model.predict(X))
    else:
        score = lambda X: model.predict_proba(X)[:, 1]  # noqa: E731
        link = lambda X: np.log(score(X) / (1 - score(X)))  # noqa: E731
    full = score(X)
    for i in (0, 7, len(X) - 1):
        np.testing.assert_array_equal(score(X.iloc[[i]]), full[[i]])
    shuffled = X.sample(frac=1.0, random_state=1)
    np.testing.assert_array_equal(score(shuffled), full[X.index.get_indexer(shuffled.index)])
    contrib = model.contributions(X.head(50))
    assert contrib.shape == (50, len(model.feature_names_in_) + 1)
    np.testing.assert_allclose(contrib.sum(axis=1), link(X.head(50)), rtol=1e-6, atol=1e-6)
    derived = model.transform(X.head(5))
    assert list(derived.columns) == list(model.feature_names_in_)


def test_longer_horizon_predicts_more_spend_and_less_churn(value_model, churn_model, frames):
    _, _, test, feats = frames
    X = test[feats]
    assert (value_model.predict(X, horizon_days=3 * HORIZON) >= value_model.predict(X)).all()
    z_long = churn_model.decision_function(X, horizon_days=3 * HORIZON)
    assert (z_long <= churn_model.decision_function(X) + 1e-12).all()


def test_refit_keeps_the_chosen_settings(frames):
    train, val, test, feats = frames
    model = ValueModel(horizon_days=HORIZON, **FAST).fit(
        train[feats], train["future_value"], val[feats], val["future_value"]
    )
    n_trees, weight = model.n_trees_, model.weight_
    both = pd.concat([train, val], ignore_index=True)
    model.refit(both[feats], both["future_value"])
    assert model.n_trees_ == n_trees and model.weight_ == weight
    assert model.model_.n_estimators == n_trees
    assert model.predict(test[feats]).shape == (len(test),)
    with pytest.raises(ValueError, match="same feature columns"):
        model.refit(both[feats[:-2]], both["future_value"])


def test_stacked_models_are_deterministic(frames):
    train, val, test, feats = frames
    kw = {**FAST, "n_estimators": 80}
    a = ChurnModel(horizon_days=HORIZON, **kw).fit(train[feats], train["churned"], val[feats], val["churned"])
    b = ChurnModel(horizon_days=HORIZON, **kw).fit(train[feats], train["churned"], val[feats], val["churned"])
    np.testing.assert_array_equal(a.predict_proba(test[feats]), b.predict_proba(test[feats]))


def test_hyperparameters_are_chosen_on_the_validation_cutoff(frames):
    train, val, _, feats = frames
    grid = ({"num_leaves": 4, "min_child_samples": 50}, {"num_leaves": 15, "min_child_samples": 20})
    model = ValueModel(horizon_days=HORIZON, param_grid=grid, **{**FAST, "n_estimators": 150}).fit(
        train[feats], train["future_value"], val[feats], val["future_value"]
    )
    assert len(model.grid_) == 2
    best = max(model.grid_, key=lambda r: r["val_score"])
    assert model.params_["num_leaves"] == best["num_leaves"] and model.n_trees_ == best["n_trees"]


def test_stacking_gives_the_gbm_what_the_btyd_model_knows(value_model, churn_model, frames):
    """On data from a BG/NBD world a plain GBM on the same features falls behind the stacked one."""
    train, val, test, feats = frames
    cols = [c for c in feats if c != "cutoff"]
    plain_value = ValueModel(**FAST).fit(train[cols], train["future_value"], val[cols], val["future_value"])
    plain_churn = ChurnModel(**FAST).fit(train[cols], train["churned"], val[cols], val["churned"])
    y, churned = test["future_value"].to_numpy(), test["churned"].to_numpy()
    gini_plain = normalized_gini(y, plain_value.predict(test[cols]))
    assert normalized_gini(y, value_model.predict(test[feats])) > gini_plain + 0.01  # measured +0.024
    auc_plain = roc_auc_score(churned, plain_churn.predict_proba(test[cols])[:, 1])
    assert roc_auc_score(churned, churn_model.predict_proba(test[feats])[:, 1]) > auc_plain  # measured +0.010


def test_auto_calibration_uses_the_offset_form_only_for_short_validation_windows(frames):
    train, val, _, feats = frames
    kw = {**FAST, "n_estimators": 60}
    args = (train[feats], train["churned"], val[feats], val["churned"])
    same = ChurnModel(horizon_days=HORIZON, **kw).fit(*args)
    assert same.calibration_used_ == "platt" and same.calibrator_ is not None
    short = ChurnModel(horizon_days=HORIZON, **kw).fit(*args, val_label_days=HORIZON / 2)
    assert short.calibration_used_ == "offset" and short.tree_calibration_ is not None


def test_overlaps_validation_is_hand_computed():
    groups = np.array(["2020-03-01", "2020-03-15"], dtype="datetime64[ns]")
    days = np.array([31.0, 60.0])  # windows end 2020-04-01 and 2020-05-14
    assert not overlaps_validation(groups, days, [pd.Timestamp("2020-04-01")])  # the first ends by it
    assert overlaps_validation(groups, days, [pd.Timestamp("2020-03-31")])
    assert overlaps_validation(groups, days, [pd.Timestamp("2020-04-01"), pd.Timestamp("2020-03-31")])  # any
    assert not overlaps_validation(np.array([0, 1]), days, [pd.Timestamp("2020-03-31")])  # undated cutoffs
    assert not overlaps_validation(groups, None, [pd.Timestamp("2020-03-31")])


@pytest.mark.parametrize("cls", [ValueModel, ChurnModel])
def test_a_validation_the_training_windows_overlap_leaves_the_btyd_model(cls, frames):
    """Training label windows that all reach past the validation cutoff cannot show that trees help: the model
    is BTYD-led (weight 0), with a PurgeWarning; an earlier cutoff whose window ends by it brings the trees back."""
    train, val, _, feats = frames
    target = "future_value" if cls is ValueModel else "churned"
    latest = train[train["cutoff"] == train["cutoff"].max()]  # 30 days before the validation cutoff, 60-day labels
    with pytest.warns(PurgeWarning, match="BTYD model alone"):
        overlapped = cls(horizon_days=HORIZON, **FAST).fit(latest[feats], latest[target], val[feats], val[target])
    assert overlapped.overlapping_ and overlapped.btyd_led_ and overlapped.weight_ == 0.0
    assert overlapped.n_trees_ == 1
    separated = cls(horizon_days=HORIZON, **FAST).fit(train[feats], train[target], val[feats], val[target])
    assert not separated.overlapping_ and not separated.btyd_led_


def test_purge_that_keeps_nothing_warns():
    groups = np.array(["2020-03-01", "2020-03-15"], dtype="datetime64[ns]")
    with pytest.warns(PurgeWarning, match="validation cutoff 2020-04-01"):
        assert purge_mask(groups, np.array([60.0, 60.0]), pd.Timestamp("2020-04-01")) is None


def test_offset_bic_keeps_btyd_alone_unless_the_trees_add_information():
    rng = np.random.default_rng(0)
    n = 5_000
    offset = rng.normal(0, 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-offset))).astype(int)  # the offset is the whole truth
    noise = rng.normal(0, 1, n)
    # noise trees: the fitted slope buys a little in-sample log loss, less than the AIC's extra parameter
    assert _offset_bic_score(offset, np.zeros(n), y) > _offset_bic_score(offset, noise, y)
    signal = rng.normal(0, 1, n)
    y2 = (rng.random(n) < 1 / (1 + np.exp(-(offset + 0.5 * signal)))).astype(int)
    assert _offset_bic_score(offset, signal, y2) > _offset_bic_score(offset, np.zeros(n), y2)


def test_platt_blend_keeps_btyd_alone_unless_the_trees_add_information():
    rng = np.random.default_rng(0)
    n = 5_000
    offset = rng.normal(0, 1.5, n)
    signal = rng.normal(0, 1, n)
    weak = (rng.random(n) < 1 / (1 + np.exp(-(offset + 0.03 * signal)))).astype(int)  # a correction too small to use
    strong = (rng.random(n) < 1 / (1 + np.exp(-(offset + 0.5 * signal)))).astype(int)

    def chosen(y: np.ndarray, penalized: bool = True) -> float:
        def plain(z: np.ndarray) -> float:
            return -log_loss(y, _platt_probs(z, y), normalize=False)

        score = (lambda z: _platt_bic_score(offset, z, y)) if penalized else plain
        return choose_weight(score, offset, signal, BLEND_WEIGHTS)[0]

    # on the rows it is scored on, a weak correction always fits a little better: only the penalty drops it
    assert chosen(weak, penalized=False) > 0.0
    assert chosen(weak) == 0.0
    assert chosen(strong) >= 0.3
    # uncalibrated: the weight is the only free parameter
    noise = rng.normal(0, 0.1, n)
    assert _platt_bic_score(offset, offset, weak, calibrate=False) > _platt_bic_score(
        offset, offset + noise, weak, calibrate=False
    )


def test_value_trees_are_kept_only_with_a_gain_beyond_noise():
    rng = np.random.default_rng(6)  # a draw where the grid picks a weight of pure noise
    n = 600  # a small shop: a weight picked on these rows is mostly noise
    offset = rng.normal(0, 1, n)
    noise, signal = rng.normal(0, 1, n), rng.normal(0, 1, n)
    spend = rng.gamma(2.0, np.exp(offset + 0.8 * signal) / 2.0) * (rng.random(n) < 0.6)
    plain = rng.gamma(2.0, np.exp(offset) / 2.0) * (rng.random(n) < 0.6)
    best_w = choose_weight(lambda z: normalized_gini(plain, z), offset, noise, BLEND_WEIGHTS)[0]
    assert best_w > 0  # the grid finds a "gain" in noise
    assert not gain_over_btyd(normalized_gini, plain, offset, noise, best_w)["lo"] > 0
    assert gain_over_btyd(normalized_gini, spend, offset, signal, 1.0)["lo"] > 0


def _platt_probs(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1e6).fit(z.reshape(-1, 1), y).predict_proba(z.reshape(-1, 1))[:, 1]


def test_a_candidate_scored_nan_never_locks_the_grid_choice(frames):
    import lightgbm as lgb

    from tiercast.models.gbm.lgbm import fit_gbm

    train, val, _, feats = frames
    feats = [c for c in feats if c != "cutoff"]
    calls = iter([np.nan, 0.5])
    fit = fit_gbm(
        lgb.LGBMRegressor,
        {"objective": "regression", "n_jobs": 1, "verbose": -1},
        train[feats],
        train["future_value"].to_numpy(),
        val[feats],
        val["future_value"].to_numpy(),
        n_estimators=20,
        early_stopping_rounds=5,
        random_state=0,
        grid=({"num_leaves": 4}, {"num_leaves": 8}),
        score=lambda y, raw, init: next(calls),
    )
    assert fit.params["num_leaves"] == 8


def test_several_validation_cutoffs_form_rolling_origin_folds(frames):
    """Two validation cutoffs: one fold each, its probe trees fitted only on rows whose label windows end by that
    cutoff; every validation row is scored out of sample by its own fold; the grid score is the folds' mean."""
    train, val, _, feats = frames
    cuts = sorted(train["cutoff"].unique())
    X = train[train["cutoff"].isin(cuts[:-1])].reset_index(drop=True)
    X_val = pd.concat([train[train["cutoff"] == cuts[-1]], val], ignore_index=True)
    grid = ({"num_leaves": 4}, {"num_leaves": 15})
    model = ValueModel(horizon_days=HORIZON, **{**FAST, "param_grid": grid}).fit(
        X[feats], X["future_value"], X_val[feats], X_val["future_value"]
    )
    assert len(model.folds_) == 2
    for (probe, rows), v in zip(model.folds_, sorted(X_val["cutoff"].unique()), strict=True):
        ends = X["cutoff"] + pd.Timedelta(days=HORIZON)
        kept = np.ones(len(X), dtype=bool) if probe is None else probe
        assert (ends[kept] <= v).all()
        assert (X_val["cutoff"][rows] == v).all()
    assert len(model.grid_) == 2 and all(np.isfinite(r["val_score"]) for r in model.grid_)
    assert 0.0 <= model.weight_ <= 1.0
    one = ValueModel(horizon_days=HORIZON, **{**FAST, "param_grid": grid}).fit(
        X[feats], X["future_value"], val[feats], val["future_value"]
    )
    assert one.folds_ is None  # one validation cutoff: the single time-separated fit as before


def _assert_index_read(seasonal: BTYDStacker, plain: BTYDStacker, rows: pd.DataFrame, h: int) -> None:
    """The index sets the level, the plain model the ranking: expected purchases and value are the plain model's at
    h times one factor each, P(no purchase) its log-odds plus one shift, so that the totals (the mean) over the
    fitted rows are the plain model's at the effective horizon h * index."""
    index, level = seasonal.season_[h], seasonal.season_level_[h]
    got, at_h, at_effective = seasonal.transform(rows, h), plain.transform(rows, h), plain.transform(rows, h * index)
    assert index != pytest.approx(1.0) and level["btyd_p_no_purchase"] != pytest.approx(0.0)
    for col in ("btyd_expected_purchases", "btyd_expected_value"):
        np.testing.assert_allclose(got[col], at_h[col] * level[col])
        assert got[col].sum() == pytest.approx(at_effective[col].sum())
    np.testing.assert_allclose(
        got[["btyd_p_alive", "btyd_expected_avg_spend"]], at_h[["btyd_p_alive", "btyd_expected_avg_spend"]]
    )
    clipped = lambda p: np.clip(p, 1e-4, 1 - 1e-4)  # noqa: E731 (P(no purchase) may be 0 or 1)
    logit = lambda p: np.log(clipped(p) / (1 - clipped(p)))  # noqa: E731
    np.testing.assert_allclose(
        logit(got["btyd_p_no_purchase"]) - logit(at_h["btyd_p_no_purchase"]), level["btyd_p_no_purchase"]
    )
    assert got["btyd_p_no_purchase"].mean() == pytest.approx(at_effective["btyd_p_no_purchase"].mean(), rel=1e-6)


def test_seasonal_btyd_puts_its_level_where_the_effective_horizon_reads_it(frames):
    train, _, _, _ = frames
    rows = train[train["cutoff"] == train["cutoff"].max()].copy()
    plain = BTYDStacker(seasonal=False).fit(rows)
    peak = rows.assign(tenure_days=rows["tenure_days"] + 400.0, orders_365d=12.0, orders_275d=4.0, orders_90d=2.0)
    seasonal = BTYDStacker().fit(peak)
    index = seasonal.season_[90]
    assert index == pytest.approx(8 / (12 * 90 / 365))
    _assert_index_read(seasonal, BTYDStacker(seasonal=False).fit(peak), peak, 90)
    saved_before_levels = copy.deepcopy(seasonal)
    del saved_before_levels.season_level_  # a stacker saved when the index was read as a horizon scores as then
    np.testing.assert_allclose(
        saved_before_levels.transform(peak, 90), BTYDStacker(seasonal=False).fit(peak).transform(peak, 90 * index)
    )
    assert plain.season_ == {} and BTYDStacker().fit(rows).season_ == {}  # a short history: the plain model
    assert plain.season_level_ == {}
    alive = BTYDStacker(seasonal="alive").fit(peak)
    assert alive.season_ == pytest.approx({90: 8 / (10 * 90 / 275)})  # everyone bought lately: all qualify
    _assert_index_read(alive, plain.fit(peak), peak, 90)
    assert season_method(True) == "all" and season_method(False) is None and season_method("alive") == "alive"
    with pytest.raises(ValueError, match="seasonal must be"):
        BTYDStacker(seasonal="peak").fit(peak)


def test_year_scale_divides_the_index_by_its_mean_over_a_year_of_cutoffs(frames):
    """ "year": the "all" index of each cutoff over the mean of the cutoffs' indices, by horizon, only where the
    cutoffs' windows of that horizon cover a year (hand-computed: two cutoffs 181 days apart, two customers)."""
    train, _, _, _ = frames
    base = train[train["cutoff"] == train["cutoff"].max()].head(2)
    base = base.drop(columns=[c for c in base.columns if c.startswith("orders_")])
    old = {"tenure_days": [400.0, 500.0]}
    a = base.assign(**old, orders_365d=[10.0, 6.0], orders_180d=[2.0, 2.0], orders_275d=[5.0, 5.0])
    b = base.assign(**old, orders_365d=[8.0, 8.0], orders_180d=[6.0, 6.0], orders_275d=[7.0, 7.0])
    X = pd.concat([a, b], ignore_index=True)
    groups = np.array(["2022-01-01"] * 2 + ["2022-07-01"] * 2, dtype="datetime64[ns]")
    idx_a, idx_b = 12 / (16 * 185 / 365), 4 / (16 * 185 / 365)  # last year's first 185 days against the year
    assert season_indices(a, "year")[185] == pytest.approx(idx_a)
    assert year_spanned(groups, 185) and not year_spanned(groups, 90)  # 181 + 185 >= 365 > 181 + 90
    scale = season_scale(X, groups, "year")
    assert scale == pytest.approx({185: (idx_a + idx_b) / 2})  # h = 90 (orders_275d) does not span a year
    assert season_scale(X, groups, "all") == {} and season_scale(X, np.zeros(4), "year") == {}
    fitted = BTYDStacker(seasonal="year", season_scale=scale).fit(a)
    assert fitted.season_[185] == pytest.approx(idx_a / scale[185])
    assert 90 in season_indices(a, "year") and 90 not in fitted.season_  # no year of cutoffs for h = 90: no index
    assert BTYDStacker(seasonal="year").fit(a).season_ == {} and BTYDStacker(seasonal="all").fit(a).season_


@pytest.mark.parametrize("which", ["value", "churn"])
def test_btyd_level_puts_the_scored_rows_on_the_btyd_level(which, frames):
    """With ``btyd_level`` the BTYD fit at the scoring cutoff sets the level (total spend, mean churn probability
    of the scored rows), the trees only the ranking; the shift is stored, so scoring stays row-wise."""
    train, val, test, feats = frames
    cls, target = (ValueModel, "future_value") if which == "value" else (ChurnModel, "churned")
    kw = {**FAST, "n_estimators": 60, "horizon_days": HORIZON}
    own, anchored = (
        cls(btyd_level=b, **kw).fit(train[feats], train[target], val[feats], val[target]).fit_btyd_at(test[feats])
        for b in (False, True)
    )
    btyd = BTYDStacker().fit(test).transform(test, HORIZON)
    if which == "value":
        a, b = anchored.predict(test[feats]), own.predict(test[feats])
        assert a.sum() == pytest.approx(btyd["btyd_expected_value"].sum(), rel=1e-9)
        one = anchored.predict(test[feats].iloc[[3]])
        rows = np.log(a)
    else:
        a, b = anchored.predict_proba(test[feats])[:, 1], own.predict_proba(test[feats])[:, 1]
        assert a.mean() == pytest.approx(btyd["btyd_p_no_purchase"].mean(), rel=1e-9)
        one = anchored.predict_proba(test[feats].iloc[[3]])[:, 1]
        rows = np.log(a / (1 - a))
    assert anchored.level_shift_ != 0.0 and own.level_shift_ == 0.0
    np.testing.assert_array_equal(np.argsort(a, kind="stable"), np.argsort(b, kind="stable"))  # same ranking
    np.testing.assert_allclose(one, a[[3]], rtol=1e-12)  # a customer scored alone: the same
    np.testing.assert_allclose(anchored.contributions(test[feats]).sum(axis=1), rows, atol=1e-6)  # reasons add up
    anchored.refit(train[feats], train[target])
    assert anchored.level_shift_ == 0.0  # a refitted BTYD part has no level until fitted at a cutoff again


def test_choose_btyd_scores_each_model_by_the_log_loss_of_no_purchase_per_cutoff(frames):
    """Score of a BTYD candidate = mean over cutoffs of the log loss of its P(no purchase in the label window),
    each cutoff's model fitted on that cutoff's rows alone."""
    train, val, _, _ = frames
    last = train[train["cutoff"] == train["cutoff"].max()]
    rows = pd.concat([last, val], ignore_index=True)
    groups, days = rows["cutoff"].to_numpy(), np.full(len(rows), float(HORIZON))
    best, scores = choose_btyd(rows, rows["churned"].to_numpy(), groups, label_days=days, time_unit_days=7.0)
    assert set(scores) == set(BTYD_MODELS) and best in BTYD_MODELS  # which: the margin rule, tested below
    for name in BTYD_MODELS:
        per_cutoff = []
        for part in (last, val):
            p = BTYDStacker(model=name).fit(part).transform(part, HORIZON)["btyd_p_no_purchase"]
            per_cutoff.append(log_loss(part["churned"], p, labels=[0, 1]))
        assert scores[name] == pytest.approx(np.mean(per_cutoff), rel=1e-6)


def test_choose_btyd_keeps_the_first_candidate_on_a_tie(frames):
    _, val, _, _ = frames
    days = np.full(len(val), float(HORIZON))
    args = (val, val["churned"].to_numpy(), val["cutoff"].to_numpy())
    best, scores = choose_btyd(*args, label_days=days, time_unit_days=7.0, candidates=("bgnbd", "bgnbd"))
    assert best == "bgnbd" and len(scores) == 1
    assert BTYD_MODELS[0] == "paretonbd"  # the preferred model when nothing tells them apart
    with pytest.raises(ValueError, match="no_purchase"):
        choose_btyd(val, np.ones(3), val["cutoff"].to_numpy(), label_days=days, time_unit_days=7.0)


def test_paired_margin_is_the_mean_of_group_means_over_its_standard_error():
    """Group a: differences -1, -3 (mean -2, variance 2 over 2 rows: 1); group b: 0, -2 (mean -1, variance 2 over
    2 rows: 1). Mean of the group means -1.5, standard error sqrt(1 + 1) / 2; the margin 1.5 / 0.7071 = 2.1213."""
    diff = np.array([-1.0, -3.0, 0.0, -2.0])
    parts = [np.array([True, True, False, False]), np.array([False, False, True, True])]
    assert _paired_margin(diff, parts) == pytest.approx(1.5 / (np.sqrt(2.0) / 2))
    assert _paired_margin(-diff, parts) == pytest.approx(-1.5 / (np.sqrt(2.0) / 2))  # the other way: below zero
    assert _paired_margin(np.zeros(4), parts) == 0.0
    assert _paired_margin(np.full(4, -0.1), parts) == np.inf  # the same gain on every row: certain


@pytest.mark.parametrize(("shift", "chosen"), [(0.0, "paretonbd"), (0.005, "paretonbd"), (0.02, "bgnbd")])
def test_choose_btyd_switches_only_for_a_clear_win(monkeypatch, shift, chosen):
    """BG/NBD replaces Pareto/NBD only when its log loss is lower by more than two standard errors: the same noisy
    probabilities for both, BG/NBD's moved toward the truth by ``shift`` (0.005: lower on average by 0.0043, 0.46
    standard errors; 0.02: by 0.043, 5.4 standard errors)."""
    from tiercast.models.btyd import stacker

    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.5).astype(float)
    base = np.clip(0.5 + rng.normal(0, 0.2, 400), 0.05, 0.95)
    noise = rng.normal(0, 0.05, 400)
    probs = {"paretonbd": base, "bgnbd": np.clip(base + np.where(y == 1, shift, -shift) + noise, 0.01, 0.99)}

    def fake(X, groups, *, model, **_):
        return None, pd.DataFrame({"btyd_p_no_purchase": probs[model]}), None

    monkeypatch.setattr(stacker, "stacked_btyd", fake)
    groups = np.repeat([1, 2], 200)
    rows, days = pd.DataFrame(index=range(400)), np.full(400, 90.0)
    best, scores = choose_btyd(rows, y, groups, label_days=days, time_unit_days=7.0)
    assert best == chosen
    if shift == 0.005:
        assert scores["bgnbd"] < scores["paretonbd"]  # a lower score, yet not clearly: the first stays


@pytest.mark.parametrize("which", ["value", "churn"])
def test_auto_btyd_is_the_model_it_chooses(which, frames):
    """btyd="auto" picks a BTYD model on the validation rows (label-free fits, scored on their labels: the churn
    model by the log loss of P(no purchase), the value model by the ranking of spend) and is then exactly the model
    stacked on that choice; without validation rows it picks on the latest training cutoff."""
    train, val, test, feats = frames
    cls, target = (ValueModel, "future_value") if which == "value" else (ChurnModel, "churned")
    kw = {**FAST, "n_estimators": 60, "horizon_days": HORIZON}
    auto = cls(btyd="auto", **kw).fit(train[feats], train[target], val[feats], val[target])
    assert auto.btyd_ in BTYD_MODELS and set(auto.btyd_scores_) == set(BTYD_MODELS)
    days, groups = np.full(len(val), float(HORIZON)), val["cutoff"].to_numpy()
    if which == "churn":
        chosen = choose_btyd(val, val["churned"].to_numpy(), groups, label_days=days, time_unit_days=7.0)
    else:
        chosen = choose_value_btyd(val, val["future_value"].to_numpy(), groups, label_days=days, time_unit_days=7.0)
    assert chosen == (auto.btyd_, pytest.approx(auto.btyd_scores_))
    fixed = cls(btyd=auto.btyd_, **kw).fit(train[feats], train[target], val[feats], val[target])
    assert fixed.btyd_ == auto.btyd_ and fixed.btyd_scores_ == {}
    out = (lambda m: m.predict(test[feats])) if which == "value" else (lambda m: m.predict_proba(test[feats]))
    np.testing.assert_array_equal(out(auto.fit_btyd_at(test[feats])), out(fixed.fit_btyd_at(test[feats])))
    alone = cls(btyd="auto", **kw).fit(train[feats], train[target])
    assert alone.btyd_ in BTYD_MODELS and alone.btyd_led_
