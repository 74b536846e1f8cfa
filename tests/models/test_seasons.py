import numpy as np
import pandas as pd
import pytest

from tiercast.benchmarks.retailer import WORLDS, generate_world, seasonal_clock
from tiercast.features.build import build_features
from tiercast.models.btyd.seasons import season_indices, year_ago_rows
from tiercast.models.btyd.stacker import MAX_LEVEL_SE, BTYDStacker, btyd_inputs, ratio_log_se


def test_season_index_is_last_years_window_against_the_years_average():
    X = pd.DataFrame(
        {
            "tenure_days": [400.0, 500.0, 380.0, 100.0],  # the last customer is not a year old: left out
            "orders_365d": [4.0, 8.0, 0.0, 50.0],
            "orders_275d": [2.0, 6.0, 0.0, 50.0],
        }
    )
    # last year's next 90 days: (4 + 8) - (2 + 6) = 4 orders against 12 * 90 / 365 in an average 90 days
    assert season_indices(X) == pytest.approx({90: 4 / (12 * 90 / 365)})
    assert season_indices(X.assign(tenure_days=200.0)) == {}  # no year of history: no index
    assert season_indices(X.drop(columns="orders_275d")) == {}


def test_alive_season_index_is_hand_computed():
    X = pd.DataFrame(
        {
            "tenure_days": [400.0, 500.0, 380.0, 100.0, 420.0],
            "orders_365d": [4.0, 8.0, 3.0, 50.0, 6.0],
            "orders_275d": [2.0, 6.0, 3.0, 50.0, 1.0],
            "orders_90d": [1.0, 2.0, 0.0, 50.0, 0.0],
        }
    )
    # qualifying: a year old and a purchase in the last 90 days -> rows 0 and 1 (row 3 is not a year old; rows 2
    # and 4 bought nothing lately: row 4, all of whose purchases fall early in the year, is the dropout the index
    # must not read as a season). Last year's next 90 days: (4 - 2) + (8 - 6) = 4 orders; the reference
    # [cutoff - 365, cutoff - 90): (4 - 1) + (8 - 2) = 9 orders over 275 days, 9 * 90 / 275 in 90 days. No index
    # for h = 365 - 90 = 275 (orders_90d read as last year's window): from half a year on, the conditioning window
    # [cutoff - 275, cutoff) would overlap last year's window [cutoff - 365, cutoff - 90)
    assert season_indices(X, "alive") == pytest.approx({90: 4 / (9 * 90 / 275)})
    assert season_indices(X, "alive") != season_indices(X, "all")
    assert season_indices(X.assign(tenure_days=200.0), "alive") == {}  # no year of history: no index
    assert season_indices(X.drop(columns="orders_275d"), "alive") == {}  # no window a year back
    assert season_indices(X.drop(columns="orders_90d"), "alive") == {}  # no window to tell who is alive
    assert season_indices(X.assign(orders_90d=0.0), "alive") == {}  # nobody certainly alive
    with pytest.raises(ValueError, match="season index method"):
        season_indices(X, "peak")


def _season_rows(name: str, cutoff: str) -> pd.DataFrame:
    return build_features(_world_tx(name), cutoff=pd.Timestamp(cutoff), windows_days=(365,), horizon_days=91)


_WORLD_TX: dict[str, pd.DataFrame] = {}


def _world_tx(name: str) -> pd.DataFrame:
    if name not in _WORLD_TX:
        _WORLD_TX[name] = generate_world(WORLDS[name])
    return _WORLD_TX[name]


def _alive_counts(X: pd.DataFrame, h: int = 91) -> tuple[float, float]:
    """(orders in last year's window, orders in the reference window) of the customers the index counts."""
    alive = (X["tenure_days"] >= 365) & (X[f"orders_{h}d"] > 0)
    window = (X["orders_365d"] - X[f"orders_{365 - h}d"])[alive].sum()
    return float(window), float((X["orders_365d"] - X[f"orders_{h}d"])[alive].sum())


def _index_se(X: pd.DataFrame, h: int = 91) -> float:
    """Standard error of the index: given each qualifying customer's reference count, the orders falling in last
    year's window (a part of the reference) are binomial with the window's share p of the reference, so W / R has
    variance p (1 - p) / R, and the index is W / R * (365 - h) / h."""
    w, r = _alive_counts(X, h)
    p = w / r
    return float(np.sqrt(p * (1 - p) / r) * (365 - h) / h)


@pytest.mark.parametrize("name", ["btyd_one_cohort", "btyd_cohorts"])
def test_alive_season_index_is_one_without_a_season(name):
    """On the synthetic worlds with no season (Pareto/NBD customers, one cohort or yearly cohorts) the index is 1
    within sampling noise, where counting every year-old customer reads the dropouts as a peak."""
    X = _season_rows(name, "2022-10-01")
    se = _index_se(X)
    assert se < 0.03  # about 1,500 qualifying customers, 10,000 reference orders: a tight test
    index = season_indices(X, "alive")[91]
    assert abs(index - 1.0) < 4 * se
    assert season_indices(X, "all")[91] > 1.0 + 4 * se  # the old count: dropouts buy early in the year


def _true_index(name: str, cutoff: str, h: int = 91) -> float:
    """The seasonal world's purchase rate over last year's window against the rate over [cutoff - 365, cutoff - h)
    (the world's clock: a day of month m counts as season[m] days of customer time)."""
    world = WORLDS[name]
    cal, cum = seasonal_clock(world)
    c = pd.Timestamp(cutoff)
    clock = lambda t: np.interp((t - pd.Timestamp(world.start)).days, cal, cum)  # noqa: E731
    a, b, e = c - pd.Timedelta(days=365), c - pd.Timedelta(days=365 - h), c - pd.Timedelta(days=h)
    return float(((clock(b) - clock(a)) / h) / ((clock(e) - clock(a)) / (365 - h)))


@pytest.mark.parametrize("cutoff", ["2022-10-01", "2022-06-01"])
def test_alive_season_index_reads_the_true_season(cutoff):
    """With a December peak (November 1.3, December 2.5 times the ordinary rate) the index is the true ratio of
    rates: about 1.3 for the fourth quarter, 0.83 for the summer (the reference year holds the peak)."""
    X = _season_rows("seasonal", cutoff)
    truth, se = _true_index("seasonal", cutoff), _index_se(X)
    assert se < 0.04 and abs(truth - 1.0) > 8 * se  # a season the sample can tell from none
    assert season_indices(X, "alive")[91] == pytest.approx(truth, abs=4 * se)


def test_year_ago_rows_are_the_btyd_summary_a_year_back_and_what_followed():
    X = pd.DataFrame(
        {
            "tenure_days": [400.0, 600.0, 100.0, 370.0],  # the third customer was not there a year ago
            "year_ago_repeat_purchase_days": [2.0, 0.0, np.nan, 0.0],
            "year_ago_first_to_last_days": [20.0, 0.0, np.nan, np.nan],
            "year_ago_repeat_spend_mean": [15.0, 0.0, np.nan, 0.0],
            "year_ago_day_spend_mean": [14.0, 8.0, np.nan, 0.0],  # a first day of 12, then two of 15; one of 8
            "orders_365d": [5.0, 0.0, 3.0, 1.0],
            "orders_275d": [3.0, 0.0, 3.0, 1.0],
            "spend_365d": [90.0, 0.0, 30.0, 10.0],
            "spend_275d": [50.0, 0.0, 30.0, 10.0],
        }
    )
    inputs, value, no_purchase = year_ago_rows(X, 90)
    assert inputs.index.tolist() == [0, 1, 3]
    assert inputs["tenure_days"].tolist() == [35.0, 235.0, 5.0]  # tenure a year ago
    assert inputs["repeat_purchase_days"].tolist() == [2.0, 0.0, 0.0]
    assert inputs["repeat_spend_mean"].tolist() == [15.0, 0.0, 0.0]
    assert inputs["day_spend_mean"].tolist() == [14.0, 8.0, 0.0]
    # [cutoff - 365, cutoff - 275): spend_365d - spend_275d, and no purchase where orders_365d - orders_275d = 0
    assert value.tolist() == [40.0, 0.0, 0.0]
    assert no_purchase.tolist() == [0.0, 1.0, 1.0]
    assert year_ago_rows(X, 200) is None  # half a year or more: no such window
    assert year_ago_rows(X.drop(columns="spend_275d"), 90) is None  # the window is not a feature
    assert year_ago_rows(X.assign(tenure_days=[400.0, 420.0, 100.0, 370.0]), 90) is None  # 55 days back < 90


def _world_window(name: str, cutoff: pd.Timestamp, X: pd.DataFrame, h: int = 91) -> tuple[float, float]:
    """(total spend, share without a purchase) of X's customers in ``[cutoff, cutoff + h)``."""
    tx = _world_tx(name)
    fut = tx[(tx["timestamp"] >= cutoff) & (tx["timestamp"] < cutoff + pd.Timedelta(days=h))]
    bought = X["customer_id"].isin(fut["customer_id"])
    return float(fut.loc[fut["customer_id"].isin(X["customer_id"]), "amount"].sum()), float(1 - bought.mean())


@pytest.mark.parametrize(("name", "cutoff"), [("seasonal", "2022-01-30"), ("seasonal", "2022-10-01")])
def test_last_year_level_follows_the_peak_and_what_follows_it(name, cutoff):
    """With a December peak, a calendar-time Pareto/NBD misses both the fourth quarter and the quarter after the
    peak (in the latter, customers who bought in December look alive). Last year's same window puts the total
    within 2% and the mean P(no purchase) within 0.01 of what happens."""
    c = pd.Timestamp(cutoff)
    X = _season_rows(name, cutoff)
    actual, churn = _world_window(name, c, X)
    plain = BTYDStacker(model="paretonbd", seasonal=False).fit(X).transform(X, 91)
    last = BTYDStacker(model="paretonbd", seasonal="last_year").fit(X).transform(X, 91)
    assert abs(plain["btyd_expected_value"].sum() / actual - 1) > 0.25
    assert last["btyd_expected_value"].sum() / actual == pytest.approx(1.0, abs=0.02)
    assert last["btyd_p_no_purchase"].mean() == pytest.approx(churn, abs=0.01)
    assert abs(plain["btyd_p_no_purchase"].mean() - churn) > 0.03


def test_last_year_level_reads_no_season_where_there_is_none():
    """On yearly cohorts of Pareto/NBD customers with no season, last year's window asks for no level beyond
    noise: a factor within 3% of 1 and a mean P(no purchase) within 0.02 of what happens (where the ``"all"`` index
    reads the dropouts as a 10% peak). Without a year of history there is no such level."""
    c = "2022-01-30"
    X = _season_rows("btyd_cohorts", c)
    _, churn = _world_window("btyd_cohorts", pd.Timestamp(c), X)
    stacker = BTYDStacker(model="paretonbd", seasonal="last_year").fit(X)
    assert stacker.last_year_[91]["btyd_expected_value"] == pytest.approx(1.0, abs=0.03)
    assert stacker.transform(X, 91)["btyd_p_no_purchase"].mean() == pytest.approx(churn, abs=0.02)
    # the churn log-odds alone (the churn reasons' fast path) are the transform's, level included
    np.testing.assert_array_equal(stacker.churn_log_odds(X, 91), stacker.churn_offset(stacker.transform(X, 91)))
    assert season_indices(X, "all")[91] > 1.1
    assert not BTYDStacker(model="paretonbd", seasonal="last_year").fit(X.assign(tenure_days=200.0)).last_year_


def test_ratio_log_se_by_hand():
    # totals 6 and 4: ratio 1.5; residuals 2 - 1.5, 0 - 1.5, 4 - 3; sqrt(0.25 + 2.25 + 1) / 6
    assert ratio_log_se(np.array([2.0, 0.0, 4.0]), np.array([1.0, 1.0, 2.0])) == pytest.approx(np.sqrt(3.5) / 6)
    assert ratio_log_se(np.zeros(3), np.ones(3)) == np.inf  # nobody bought: no factor to know
    assert ratio_log_se(np.ones(2), np.ones(2)) == 0.0


def test_last_year_level_is_left_out_when_read_from_too_few_customers():
    """Last year's factor from two dozen customers is noise (its standard error above MAX_LEVEL_SE): the stacker
    holds no last-year level then, and its outputs are the plain model's; from the whole world it holds one."""
    X = _season_rows("seasonal", "2022-10-01")
    assert 91 in BTYDStacker(model="paretonbd", seasonal="last_year").fit(X).last_year_
    few = X.sample(n=25, random_state=0)
    stacker = BTYDStacker(model="paretonbd", seasonal="last_year").fit(few)
    inputs, value, _ = year_ago_rows(few, 91)
    predicted = stacker.btyd_.transform(btyd_inputs(inputs), 91.0)["btyd_expected_value"].to_numpy()
    assert ratio_log_se(value, predicted) > MAX_LEVEL_SE
    assert 91 not in stacker.last_year_
    plain = BTYDStacker(model="paretonbd", seasonal=False).fit(few)
    pd.testing.assert_frame_equal(stacker.transform(few, 91), plain.transform(few, 91))
