import numpy as np
import pandas as pd

from tiercast.models.reasons import phrase_for, top_reasons

NAMES = ["recency_days", "overdue_ratio", "spend_90d", "spend_trend"]


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "recency_days": [95.0, 3.0, 40.0],
            "overdue_ratio": [3.04, np.nan, 0.5],
            "spend_90d": [0.0, 1234.4, 50.0],
            "spend_trend": [-0.6, 1.0, -1.0],
        },
        index=[10, 11, 12],
    )


def test_phrases_use_the_customers_own_values():
    f = _frame()
    assert phrase_for("recency_days")(f).tolist()[0] == "95 days since the last purchase"
    assert phrase_for("overdue_ratio")(f.iloc[[0]]).tolist() == ["95 days since the last purchase"]
    assert phrase_for("overdue_ratio")(f[["overdue_ratio"]].iloc[[0]]).tolist() == [
        "3.0x the usual gap between purchases"
    ]
    assert phrase_for("spend_90d")(f).tolist()[1] == "spent 1,234 in the last 90 days"
    # t = -0.6: recent/previous - 1 = 2t/(1-t) = -1.2/1.6 = -75%.
    assert phrase_for("spend_trend")(f).tolist()[0] == "spend down 75% vs the previous period"
    assert phrase_for("spend_trend")(f).tolist()[2].startswith("no spend in the latest period")
    assert phrase_for("mystery")(pd.DataFrame({"mystery": [0.12345]})).tolist() == ["mystery = 0.123"]


def test_top_reasons_rank_positive_contributions_per_row():
    f = _frame()
    contrib = np.array(
        [
            # recency, overdue, spend_90d, trend, bias
            [0.9, 0.5, -0.2, 0.1, -1.0],  # recency > overdue > trend
            [-0.3, 0.4, -0.1, -0.2, 0.0],  # only overdue (NaN -> single purchase phrase)
            [-0.1, -0.1, -0.1, -0.1, 2.0],  # nothing pushes up
        ]
    )
    out = top_reasons(contrib, f, NAMES, top=3)
    assert out.index.tolist() == [10, 11, 12]
    assert out.iloc[0] == (
        "95 days since the last purchase; spend down 75% vs the previous period"
    )  # overdue_ratio tells the same fact as recency here: once
    assert out.iloc[1] == "a single purchase day so far"
    assert out.iloc[2] == ""


def _history_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "repeat_purchase_days": [12.0, 1.0, 0.0],
            "tenure_days": [400.0, 30.0, 10.0],
            "recency_days": [95.0, 3.0, 10.0],
            "repeat_spend_mean": [80.4, 20.0, 0.0],
            "btyd_p_no_purchase": [0.7, 0.2, 0.5],
            "btyd_p_alive": [0.3, 0.9, 0.6],
            "btyd_expected_value": [100.0, 50.0, 1.0],
        }
    )


def test_btyd_outputs_read_as_the_purchase_history_they_summarize():
    f = _history_frame()
    assert phrase_for("btyd_p_no_purchase")(f).tolist() == [
        "12 repeat purchase days in 400 days as a customer, the last purchase 95 days ago",
        "1 repeat purchase day in 30 days as a customer, the last purchase 3 days ago",
        "no repeat purchase in 10 days as a customer, the last purchase 10 days ago",
    ]
    assert phrase_for("btyd_expected_value")(f.iloc[[0]]).tolist() == [
        "12 repeat purchase days in 400 days as a customer, the last purchase 95 days ago"
    ]
    assert phrase_for("btyd_expected_avg_spend")(f.iloc[[0]]).tolist() == ["average repeat-day spend 80"]


def test_features_that_read_the_same_count_once():
    f = _history_frame()
    names = ["btyd_p_no_purchase", "btyd_p_alive", "recency_days", "tenure_days"]
    contrib = np.array([[0.9, 0.8, 0.5, 0.1, 0.0], [0.9, 0.8, 0.0, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4, 0.0]])
    out = top_reasons(contrib, f, names, top=2)
    history = "12 repeat purchase days in 400 days as a customer, the last purchase 95 days ago"
    assert out.iloc[0] == f"{history}; 95 days since the last purchase"  # p_alive reads as p_no_purchase: skipped
    assert out.iloc[1] == "1 repeat purchase day in 30 days as a customer, the last purchase 3 days ago"
    assert out.iloc[2] == "customer for 10 days; 10 days since the last purchase"


def test_refund_features_at_zero_read_once():
    f = pd.DataFrame({"refund_count": [0.0, 2.0], "refund_share": [0.0, 0.25], "refund_amount": [0.0, 30.0]})
    names = ["refund_count", "refund_share", "refund_amount"]
    out = top_reasons(np.array([[0.3, 0.2, 0.1, 0.0], [0.3, 0.2, 0.1, 0.0]]), f, names, top=3)
    assert out.iloc[0] == "no refunds so far"
    assert out.iloc[1] == "2 refunds; 25% of spend refunded; refunded 30 so far"


def test_btyd_spend_without_repeat_purchases_reads_as_such():
    f = pd.DataFrame({"btyd_expected_avg_spend": [35.0, 20.0], "repeat_spend_mean": [np.nan, 20.4]})
    assert phrase_for("btyd_expected_avg_spend")(f).tolist() == [
        "no repeat purchase yet",
        "average repeat-day spend 20",
    ]


def test_btyd_spend_of_every_purchase_day_reads_as_such():
    """The stacked spend model reads every purchase day (``day_spend_mean``), so its reason says that spend."""
    f = pd.DataFrame({"btyd_expected_avg_spend": [35.0, 20.0], "day_spend_mean": [0.0, 54.6]})
    f["repeat_spend_mean"] = [np.nan, 20.4]
    assert phrase_for("btyd_expected_avg_spend")(f).tolist() == ["no purchase yet", "average spend per purchase day 55"]
    assert phrase_for("day_spend_mean")(f).tolist() == ["no purchase yet", "average spend per purchase day 55"]


def test_churn_reasons_say_what_they_raise_and_skip_values_pointing_the_other_way():
    f = pd.DataFrame(
        {
            "recency_days": [80.0, 5.0, 0.0],
            "gap_mean_days": [21.0, 21.0, np.nan],
            "overdue_ratio": [80 / 21, 5 / 21, np.nan],
            "refund_count": [0.0, 0.0, 0.0],
            "orders_30d": [0.0, 2.0, 1.0],
            "repeat_spend_mean": [0.0, 15.0, np.nan],
        }
    )
    names = list(f.columns)
    contrib = np.array([[0.9, 0.0, 0.5, 0.4, 0.3, 0.1, 0.0]] * 3)
    churn = top_reasons(contrib, f, names, top=3, target="churn")
    # no refunds never raises churn risk; recency within the usual gap (row 1) or zero (row 2) is no churn reason
    assert churn.tolist() == [
        "raises churn risk: 80 days since the last purchase, usually every 21; no orders in the last 30 days; "
        "no net spend on repeat days",
        "raises churn risk: 2 orders in the last 30 days; average repeat-day spend 15",
        "raises churn risk: a single purchase day so far; 1 order in the last 30 days; no repeat purchase yet",
    ]
    value = top_reasons(contrib, f, names, top=3, target="value")
    # zero spend or orders never raise predicted value
    assert value.tolist() == [
        "raises predicted value: 80 days since the last purchase, usually every 21; no refunds so far",
        "raises predicted value: 5 days since the last purchase, usually every 21; no refunds so far; "
        "2 orders in the last 30 days",
        "raises predicted value: 0 days since the last purchase; a single purchase day so far; no refunds so far",
    ]
    nothing = top_reasons(np.zeros((3, len(names) + 1)), f, names, target="churn")
    assert nothing.tolist() == ["", "", ""]


def test_the_usual_gap_is_told_once_beside_recency():
    f = pd.DataFrame(
        {
            "recency_days": [64.0, 45.0, 30.0],
            "gap_mean_days": [23.0, 63.0, np.nan],
            "overdue_ratio": [64 / 23, 45 / 63, np.nan],
            "refund_count": [2.0, 2.0, 2.0],
        }
    )
    names = ["gap_mean_days", "recency_days", "refund_count"]
    # row 0: gap and recency both raise churn: told once, in the recency phrase, ranked by their sum (0.5) above
    # the refunds' 0.4; row 1: recency within the usual gap is no reason, so the gap stands alone; row 2: no gap
    contrib = np.array([[0.3, 0.2, 0.4, 0.0]] * 3)
    out = top_reasons(contrib, f, names, top=2, target="churn")
    assert out.tolist() == [
        "raises churn risk: 64 days since the last purchase, usually every 23; 2 refunds",
        "raises churn risk: 2 refunds; usually buys every 63 days",
        "raises churn risk: 2 refunds; a single purchase day so far",
    ]
