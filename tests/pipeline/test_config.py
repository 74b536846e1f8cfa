from pathlib import Path

import pytest
from pydantic import ValidationError

from tiercast.pipeline.config import TIER_PRESETS, Config, load_config

CONFIGS = sorted(Path("configs").glob("*.yaml"))


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.name != "default.yaml"], ids=lambda p: p.name)
def test_every_shipped_preset_validates(path):
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    assert cfg.horizon_days > 0


def test_demo_inherits_defaults_and_overrides():
    cfg = load_config("configs/demo.yaml")
    assert cfg.horizon_days == 90
    assert cfg.tiers.tier_names() == TIER_PRESETS["pyramid"]
    assert cfg.outputs.at_risk_tiers == ("platinum", "gold")
    assert cfg.data.transactions.columns.customer_id == "Customer ID"


def test_unknown_keys_are_rejected(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        f"base: {Path('configs/demo.yaml').resolve()}\nhorizon_dayz: 30\n",
        encoding="utf-8",
    )
    with pytest.raises(ValidationError, match="horizon_dayz"):
        load_config(cfg)


def test_cli_overrides_merge_deeply():
    cfg = load_config("configs/demo.yaml", overrides={"tiers": {"k": 3}, "horizon_days": 30})
    assert cfg.tiers.k == 3
    assert cfg.tiers.tier_names() == TIER_PRESETS["pyramid"]  # untouched sibling key kept
    assert cfg.horizon_days == 30


def test_config_is_frozen():
    cfg = load_config("configs/demo.yaml")
    with pytest.raises(ValidationError):
        cfg.horizon_days = 10


def test_amount_or_quantity_and_price_required(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "data:\n  transactions:\n    path: x.csv\n    columns: {customer_id: c, timestamp: t, quantity: q}\n",
        encoding="utf-8",
    )
    with pytest.raises(ValidationError, match="unit_price"):
        load_config(cfg)


def test_default_playbook_is_valid_and_covers_the_pyramid():
    from tiercast.pipeline.config import build_playbook

    pb = build_playbook(load_config("configs/demo.yaml"))
    assert set(pb.table_["action"]) >= {"VIP retention call", "automated service"}


def test_playbook_naming_tiers_of_another_preset_is_a_config_error():
    from tiercast.pipeline.config import ConfigError

    with pytest.raises(ConfigError, match="unknown current_tiers"):
        load_config("configs/demo.yaml", overrides={"tiers": {"preset": "abc"}})


def test_segment_rules_resolve_on_segment_keys():
    import pandas as pd

    from tiercast.pipeline.config import build_playbook

    pb = build_playbook(load_config("configs/demo.yaml"))
    scores = pd.DataFrame(
        {"current_tier": ["iron", "iron"], "predicted_tier": ["iron", "iron"], "churn_probability": [0.1, 0.1]}
    )
    out = pb.apply(scores, segment=["growing", "lapsing"])
    assert out["action"].tolist() == ["upsell / cross-sell", "automated service"]


def test_unknown_segment_in_a_rule_is_a_config_error():
    from tiercast.pipeline.config import ConfigError

    rules = [{"action": "call", "current_tiers": ["platinum"], "segments": ["sparkling"]}]
    with pytest.raises(ConfigError, match="unknown segments"):
        load_config("configs/demo.yaml", overrides={"playbook": {"rules": rules}})
