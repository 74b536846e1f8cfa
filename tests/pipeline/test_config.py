from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from tiercast.pipeline.config import (
    TIER_PRESETS,
    Config,
    ConfigError,
    deep_merge,
    load_config,
    preset_names,
    preset_path,
)
from tiercast.pipeline.config_files import parse_yaml

CONFIGS = sorted(Path("configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_repository_config_validates(path):
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    assert cfg.horizon_days > 0


def test_presets_ship_inside_the_package():
    assert set(preset_names()) >= {"default", "online_retail_ii", "cdnow", "olist"}
    for name in preset_names():
        path = preset_path(name)
        assert path.parent.name == "presets" and path.parent.parent.name == "pipeline"
        if name != "default":
            assert load_config(path).playbook.rules, name


@pytest.mark.parametrize("base", ["online_retail_ii", "online_retail_ii.yaml"])
def test_a_preset_resolves_by_name_from_any_folder(tmp_path, monkeypatch, base):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text(f"base: {base}\nhorizon_days: 30\n", encoding="utf-8")
    cfg = load_config("mine.yaml")
    assert cfg.horizon_days == 30
    assert cfg.data.transactions.columns.customer_id == "Customer ID"
    assert cfg.playbook.rules == load_config(preset_path("default").parent / "online_retail_ii.yaml").playbook.rules


def test_a_base_file_next_to_the_config_wins_over_the_preset_of_that_name(tmp_path):
    (tmp_path / "default.yaml").write_text(f"base: {preset_path('default')}\nhorizon_days: 45\n", encoding="utf-8")
    (tmp_path / "mine.yaml").write_text(
        "base: default.yaml\ndata: {transactions: {path: x.csv, columns: {customer_id: c, timestamp: t, amount: a}}}\n",
        encoding="utf-8",
    )
    assert load_config(tmp_path / "mine.yaml").horizon_days == 45


def test_unknown_preset_names_the_known_ones(tmp_path):
    (tmp_path / "mine.yaml").write_text("base: online_retail\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown preset 'online_retail'.*online_retail_ii"):
        load_config(tmp_path / "mine.yaml")


def test_base_cycle_is_a_config_error(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")


def test_a_config_without_a_playbook_is_an_error_not_an_empty_playbook(tmp_path):
    (tmp_path / "mine.yaml").write_text(
        "data: {transactions: {path: x.csv, columns: {customer_id: c, timestamp: t, amount: a}}}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="no `playbook:` section.*base: default"):
        load_config(tmp_path / "mine.yaml")
    (tmp_path / "empty.yaml").write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="no `data:` and no `playbook:` section"):
        load_config(tmp_path / "empty.yaml")


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
    with pytest.raises(ConfigError, match=r"bad\.yaml: horizon_dayz"):
        load_config(cfg)


@pytest.mark.parametrize("value", ["yearly", 1, "null"])
def test_a_seasonal_setting_outside_the_choices_is_named_in_one_line(tmp_path, value):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"base: {Path('configs/demo.yaml').resolve()}\nmodels:\n  seasonal: {value}\n", encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"bad\.yaml: models\.seasonal: .*must be true, false, all, alive, year or last_year"
    ) as e:
        load_config(cfg)
    assert "\n" not in str(e.value)
    assert load_config("configs/demo.yaml").models.seasonal == "last_year"
    assert load_config("configs/demo.yaml", overrides={"models": {"seasonal": False}}).models.seasonal is False


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
        "base: default\ndata:\n  transactions:\n    path: x.csv\n"
        "    columns: {customer_id: c, timestamp: t, quantity: q}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"bad\.yaml: data\.transactions.*unit_price"):
        load_config(cfg)


def test_default_playbook_is_valid_and_covers_the_pyramid():
    from tiercast.pipeline.config import build_playbook

    pb = build_playbook(load_config("configs/demo.yaml"))
    assert set(pb.table_["action"]) >= {"VIP retention call", "automated service"}


def test_playbook_naming_tiers_of_another_preset_is_a_config_error():
    from tiercast.pipeline.config import ConfigError

    with pytest.raises(ConfigError, match="unknown current_tiers"):
        load_config("configs/demo.yaml", overrides={"tiers": {"preset": "abc"}, "outputs": {"at_risk_tiers": None}})


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


def test_a_misspelt_at_risk_tier_is_a_config_error_not_a_shorter_list():
    with pytest.raises(ConfigError, match=r"outputs\.at_risk_tiers: unknown tier\(s\) \['platnum'\]; known: \[") as e:
        load_config("configs/demo.yaml", overrides={"outputs": {"at_risk_tiers": ["platnum", "gold"]}})
    assert "Value error" not in str(e.value)
    assert load_config("configs/demo.yaml", overrides={"outputs": {"at_risk_tiers": ["gold"]}}).outputs.at_risk_tiers


@pytest.mark.parametrize(
    ("names", "listed"),
    [
        (("platinum", "lead"), ("platinum",)),
        (("platinum", "gold", "lead"), ("platinum", "gold")),
        (("platinum", "gold", "iron", "lead"), ("platinum", "gold")),
        (("A", "C"), ("A",)),
    ],
)
def test_at_risk_default_is_the_two_top_tiers_but_never_the_lowest(names, listed):
    """With k=2 the lowest tier holds every customer without spend: listing it put the whole base on the list."""
    from tiercast.pipeline.config import OutputConfig

    assert OutputConfig().tiers_listed(names) == listed
    assert OutputConfig(at_risk_tiers=("lead",)).tiers_listed(names) == ("lead",)  # set explicitly: as given


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ({"preset": None, "names": None}, r"tiers: give a preset \(pyramid, abc, three_level\) or names"),
        ({"names": ["gold", "gold", "lead"]}, r"tiers\.names: \['gold'\] given more than once"),
        ({"names": []}, r"tiers\.names: give at least 2 tier names"),
        ({"names": ["only"]}, r"tiers\.names: give at least 2 tier names, best first \(got \['only'\]\)"),
    ],
)
def test_tier_names_that_cannot_name_tiers_are_config_errors(tiers, message):
    """None of these may fall back to a preset or fail later, after the data is read."""
    with pytest.raises(ConfigError, match=message):
        load_config("configs/demo.yaml", overrides={"tiers": tiers, "playbook": {"rules": []}})


@pytest.mark.parametrize(("key", "value"), [("horizon_days", True), ("horizon_days", "90"), ("seed", "x")])
def test_a_number_setting_takes_a_number_not_a_bool_or_text(key, value):
    """pydantic alone would read `true` as 1 and "90" as 90."""
    with pytest.raises(ConfigError, match=rf"{key}: expected a number, got {value!r}"):
        load_config("configs/demo.yaml", overrides={key: value})
    with pytest.raises(ConfigError, match=r"tiers\.min_share: expected a number, got '0\.1'"):
        load_config("configs/demo.yaml", overrides={"tiers": {"min_share": "0.1"}})
    assert load_config("configs/demo.yaml", overrides={"horizon_days": 60.0}).horizon_days == 60


def test_churn_bands_given_replace_the_bases_bands_instead_of_merging(tmp_path):
    """Merged, {low, high} over the default {low, medium, high} would keep medium: a band could never be dropped."""
    cfg = tmp_path / "two.yaml"
    cfg.write_text(
        f"base: {Path('configs/demo.yaml').resolve()}\nplaybook:\n  churn_bands: {{low: 0.0, high: 0.5}}\n"
        "  rules: [{action: call, current_tiers: [platinum], churn_bands: [high]}]\n",
        encoding="utf-8",
    )
    loaded = load_config(cfg)
    assert loaded.playbook.churn_bands == {"low": 0.0, "high": 0.5}
    assert loaded.outputs.churn_bands(loaded.playbook) == ("high",)
    assert loaded.playbook.default_action == "automated service"  # the rest of the section still merges
    bands = {"low": 0.0, "top": 0.8}  # a command-line override replaces them too
    overridden = load_config("configs/demo.yaml", overrides={"playbook": {"churn_bands": bands, "rules": []}})
    assert overridden.playbook.churn_bands == bands


def test_dropped_bands_that_inherited_rules_name_point_at_the_rules_file(tmp_path):
    cfg = tmp_path / "two.yaml"
    cfg.write_text(
        f"base: {Path('configs/demo.yaml').resolve()}\nplaybook: {{churn_bands: {{low: 0.0, high: 0.5}}}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"unknown churn_bands \['medium'\].*the rules come from .*default\.yaml"):
        load_config(cfg)


def test_deep_merge_merges_sections_and_replaces_set_mappings():
    base = {"models": {"a": 1, "b": 2}, "playbook": {"churn_bands": {"low": 0.0, "medium": 0.4}, "x": 1}}
    merged = deep_merge(base, {"models": {"b": 3}, "playbook": {"churn_bands": {"low": 0.0}}})
    assert merged == {"models": {"a": 1, "b": 3}, "playbook": {"churn_bands": {"low": 0.0}, "x": 1}}


@pytest.mark.parametrize("value", ["none", "bg/nbd", 3])
def test_a_btyd_setting_outside_the_choices_names_null(tmp_path, value):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"base: {Path('configs/demo.yaml').resolve()}\nmodels:\n  btyd: {value}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml: models\.btyd: must be auto, bgnbd, paretonbd or null \(plain"):
        load_config(cfg)
    cfg.write_text(f"base: {Path('configs/demo.yaml').resolve()}\nmodels:\n  btyd: null\n", encoding="utf-8")
    assert load_config(cfg).models.btyd is None


@pytest.mark.parametrize(
    "text",
    [
        "a: &a {x: 1, y: 2}\nb: {<<: *a, y: 3}\nc: {<<: [*a, {z: 4}], x: 9}\n",
        # a merged mapping that itself merges and overrides, flattened by a later mapping before it is constructed
        "root:\n  x:\n    a: &a {<<: {k: 1}, k: 2}\n  c: {<<: *a, k: 3}\n",
        "d: 2023-10-01\nt: 2023-10-01 06:30:00\nn: ~\nlist: [1, {k: v}]\n",
    ],
)
def test_strict_yaml_reads_what_pyyaml_reads_merge_keys_included(text):
    assert parse_yaml(text, Path("c.yaml")) == yaml.safe_load(text)


def test_every_packaged_preset_reads_strictly():
    for name in preset_names():
        path = preset_path(name)
        text = path.read_text(encoding="utf-8")
        assert parse_yaml(text, path) == yaml.safe_load(text)
