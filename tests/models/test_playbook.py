import numpy as np
import pandas as pd
import pytest

from tiercast.models.playbook import ChurnBands, Playbook, PlaybookError, Rule

TIERS = ("platinum", "gold", "iron", "lead")
RULES = (
    Rule("VIP retention call", "phone", current_tiers=("platinum", "gold"), churn_bands=("high", "medium")),
    Rule("referral ask", "email", current_tiers=("platinum",), churn_bands=("low",)),
    Rule("tier upgrade offer", "email", current_tiers=("iron", "lead"), movement=("up",), churn_bands=("low",)),
)


def test_rules_resolve_per_customer_and_default_covers_the_rest():
    pb = Playbook(RULES, TIERS, default_action="automated service")
    scores = pd.DataFrame(
        {
            "current_tier": ["platinum", "gold", "platinum", "lead", "lead", "iron"],
            "predicted_tier": ["platinum", "iron", "gold", "iron", "lead", "gold"],
            "churn_probability": [0.8, 0.45, 0.1, 0.2, 0.2, 0.9],
        },
        index=[5, 6, 7, 8, 9, 10],
    )
    out = pb.apply(scores)
    assert out.index.tolist() == [5, 6, 7, 8, 9, 10]
    assert out["churn_band"].tolist() == ["high", "medium", "low", "low", "low", "high"]
    assert out["action"].tolist() == [
        "VIP retention call",
        "VIP retention call",
        "referral ask",
        "tier upgrade offer",  # lead -> iron is a move up
        "automated service",  # lead stays lead
        "automated service",  # iron moving up but high risk: no rule
    ]
    assert out["channel"].tolist()[:3] == ["phone", "phone", "email"]


def test_overlapping_rules_are_an_error():
    overlap = (*RULES, Rule("upsell", "email", current_tiers=("platinum",), movement=("same",)))
    expected = r"rules 2 .* and 4 .* both match current=platinum, predicted=platinum, churn=low"
    with pytest.raises(PlaybookError, match=expected):
        Playbook(overlap, TIERS)


def test_unknown_names_are_an_error():
    with pytest.raises(PlaybookError, match="unknown current_tiers"):
        Playbook((Rule("call", "phone", current_tiers=("diamond",)),), TIERS)
    with pytest.raises(PlaybookError, match="unknown churn_bands"):
        Playbook((Rule("call", "phone", churn_bands=("extreme",)),), TIERS)


def test_churn_bands_by_lower_bound():
    bands = ChurnBands(("low", "medium", "high"), (0.0, 0.4, 0.7))
    assert bands.assign(np.array([0.0, 0.39, 0.4, 0.69, 0.7, 1.0])).tolist() == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
    ]
