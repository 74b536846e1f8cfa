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
    assert phrase_for("recency_days")(f).tolist()[0] == "no purchase for 95 days"
    assert phrase_for("overdue_ratio")(f.iloc[[0]]).tolist() == ["3.0x the usual gap between purchases"]
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
        "no purchase for 95 days; 3.0x the usual gap between purchases; spend down 75% vs the previous period"
    )
    assert out.iloc[1] == "a single purchase day so far"
    assert out.iloc[2] == ""
