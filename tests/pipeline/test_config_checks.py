"""Settings are checked when the config is read, before any data or training: dates (written as YAML dates too), keys
given twice, MLflow names, LightGBM parameters; and a data set of refunds only is named as such when training refuses
it."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from tests.pipeline.cli_harness import invoke
from tiercast.features.contract import CHURNED, CUSTOMER_ID, CUTOFF, FUTURE_VALUE
from tiercast.features.errors import InsufficientDataError
from tiercast.pipeline.config import ConfigError, load_config

DEMO = Path("configs/demo.yaml")


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "shop.yaml"
    path.write_text(f"base: {DEMO.resolve()}\n{body}", encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    "written",
    ["2023-10-01", "'2023-10-01'", "2023-10-01 00:00:00", "'2023-10-01T00:00'"],
    ids=["yaml-date", "text", "yaml-datetime", "iso-text"],
)
def test_date_settings_take_yaml_dates_datetimes_and_iso_text(tmp_path, written):
    cfg = load_config(_config(tmp_path, f"cutoffs: {{test_cutoff: {written}}}\nscore: {{cutoff: {written}}}\n"))
    assert cfg.cutoffs.test_cutoff == cfg.score.cutoff == "2023-10-01"
    assert cfg.cutoff_rules().test_cutoff == pd.Timestamp("2023-10-01")
    assert load_config(DEMO, overrides={"score": {"cutoff": dt.date(2023, 10, 1)}}).score.cutoff == "2023-10-01"
    assert load_config(DEMO).score.cutoff is None


@pytest.mark.parametrize(
    ("key", "written", "message"),
    [
        ("score.cutoff", "tomorrow", "'tomorrow' is not a date that exists; write YYYY-MM-DD"),
        ("score.cutoff", "'2023-02-30'", "'2023-02-30' is not a date that exists"),
        ("cutoffs.test_cutoff", "'2023-13-01'", "'2023-13-01' is not a date that exists"),
        ("cutoffs.test_cutoff", "2023-10-01 06:30:00", "has a time of day"),
        ("cutoffs.test_cutoff", "'2023-10-01T00:00+02:00'", "carries a time zone"),
        ("score.cutoff", "20231001", "expected a date YYYY-MM-DD, got 20231001"),
        ("score.cutoff", "true", "expected a date YYYY-MM-DD, got True"),
    ],
)
def test_a_date_setting_that_is_not_a_date_is_refused_naming_file_and_key(tmp_path, key, written, message):
    section, name = key.split(".")
    path = _config(tmp_path, f"{section}: {{{name}: {written}}}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}: {key}: ") and message in str(e.value)
    assert "\n" not in str(e.value)


def test_the_command_line_refuses_a_bad_date_in_one_line_before_reading_data(tmp_path):
    _config(tmp_path, "score: {cutoff: tomorrow}\n")
    result = invoke("validate", "--config", "shop.yaml", cwd=tmp_path)
    assert result.code == 2
    assert result.error_lines == [
        f"error: {tmp_path / 'shop.yaml'}: score.cutoff: 'tomorrow' is not a date that exists; write YYYY-MM-DD, "
        "e.g. 2023-10-01"
    ]


@pytest.mark.parametrize(
    ("key", "written", "reason"),
    [
        ("score.cutoff", "2023-02-30", "day is out of range for month"),
        ("cutoffs.test_cutoff", "2023-13-01", "month must be in 1..12"),
        ("data.run_date", "2023-02-30", "day is out of range for month"),
        ("score.cutoff", "2023-10-01 25:00:00", "hour must be in 0..23"),
    ],
)
def test_an_impossible_yaml_date_is_refused_naming_file_key_line_and_value(tmp_path, key, written, reason):
    section, name = key.split(".")
    path = _config(tmp_path, f"{section}:\n  {name}: {written}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == (
        f"{path}: {key} (line 3): {written} is not a date that exists ({reason}); write YYYY-MM-DD, e.g. 2023-10-01"
    )


def test_the_command_line_refuses_an_impossible_yaml_date_in_one_line(tmp_path):
    _config(tmp_path, "score: {cutoff: 2023-02-30}\n")
    result = invoke("validate", "--config", "shop.yaml", cwd=tmp_path)
    assert result.code == 2
    assert result.error_lines == [
        f"error: {tmp_path / 'shop.yaml'}: score.cutoff (line 2): 2023-02-30 is not a date that exists "
        "(day is out of range for month); write YYYY-MM-DD, e.g. 2023-10-01"
    ]


def test_run_refuses_a_score_cutoff_before_the_data_before_training():
    from tiercast.pipeline.jobs.run import run_job

    cfg = load_config(DEMO, overrides={"score": {"cutoff": "2001-01-01"}})
    data = SimpleNamespace(data_start=pd.Timestamp("2009-12-01"), data_end=pd.Timestamp("2010-12-10"))
    with pytest.raises(ConfigError, match=r"score\.cutoff 2001-01-01: no purchase before it \(the data starts 2009"):
        run_job(cfg, data)  # a stand-in for the data: nothing past the check would accept it


# ----------------------------------------------------------------------------------------- keys given twice

TWICE = "the key is given twice ({}); the second would silently replace the first: keep one"


@pytest.mark.parametrize(
    ("body", "key", "lines"),
    [
        ("horizon_days: 60\noutputs: {dir: out}\nhorizon_days: 30\n", "horizon_days", "lines 2 and 4"),
        ("outputs:\n  dir: out\n  currency: EUR\n  dir: elsewhere\n", "outputs.dir", "lines 3 and 5"),
        ("outputs: {dir: out}\noutputs: {at_risk_top: 50}\n", "outputs", "lines 2 and 3"),
        (
            "models:\n  param_grid:\n    - {num_leaves: 7, num_leaves: 9}\n",
            "models.param_grid.0.num_leaves",
            "line 4, columns 8 and 23",
        ),
    ],
    ids=["top-level", "nested", "section", "same-line"],
)
def test_a_key_given_twice_is_refused_naming_file_key_and_both_lines(tmp_path, body, key, lines):
    path = _config(tmp_path, body)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == f"{path}: {key}: {TWICE.format(lines)}"


def test_a_key_given_twice_in_a_base_file_names_that_file(tmp_path):
    base = _config(tmp_path, "horizon_days: 60\nhorizon_days: 30\n")
    mine = tmp_path / "mine.yaml"
    mine.write_text(f"base: {base.name}\nseed: 7\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(mine)
    assert str(e.value) == f"{base}: horizon_days: {TWICE.format('lines 2 and 3')}"


def test_a_check_across_sections_names_the_file_and_key_it_reports(tmp_path):
    """A check of several keys together (at-risk tiers against a fixed k) names the file holding the key it
    reports, not the config that only inherits it."""
    base = _config(tmp_path, "tiers:\n  k: 2\noutputs:\n  at_risk_tiers: [gold]\n")
    mine = tmp_path / "mine.yaml"
    mine.write_text(f"base: {base.name}\nseed: 7\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(mine)
    assert str(e.value).startswith(f"{base}: outputs.at_risk_tiers: tier(s) ['gold'] never exist: tiers.k=2 makes")


def test_a_yaml_merge_key_may_be_overridden_and_bases_still_merge(tmp_path):
    body = (
        "models:\n  value_params: &p {num_leaves: 15, learning_rate: 0.1}\n  churn_params: {<<: *p, num_leaves: 31}\n"
    )
    cfg = load_config(_config(tmp_path, f"{body}horizon_days: 30\n"))
    assert cfg.models.value_params == {"num_leaves": 15, "learning_rate": 0.1}
    assert cfg.models.churn_params == {"num_leaves": 31, "learning_rate": 0.1}
    assert cfg.horizon_days == 30 and cfg.outputs.dir == load_config(DEMO).outputs.dir


# ------------------------------------------------------------------------------------------------ MLflow names


@pytest.mark.parametrize(
    ("key", "written", "message"),
    [
        ("registered_model", "shop/eu", "Invalid model name 'shop/eu'. Names cannot contain '/' or ':'."),
        ("registered_model", "shop:eu", "Invalid model name 'shop:eu'. Names cannot contain '/' or ':'."),
        ("registered_model", "' '", "Missing value for required parameter 'name'."),
        ("experiment", "''", "Invalid experiment name: ''"),
        ("experiment", "x" * 501, "'name' exceeds the maximum length of 500 characters"),
    ],
)
def test_an_mlflow_name_mlflow_refuses_is_refused_when_the_config_is_read(tmp_path, key, written, message):
    path = _config(tmp_path, f"mlflow: {{{key}: {written}}}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == f"{path}: mlflow.{key}: {message}"


def test_mlflow_names_mlflow_accepts_are_kept(tmp_path):
    cfg = load_config(_config(tmp_path, "mlflow: {registered_model: shop-eu v2.1, experiment: 'shop/eu: weekly'}\n"))
    assert (cfg.mlflow.registered_model, cfg.mlflow.experiment) == ("shop-eu v2.1", "shop/eu: weekly")


def test_mlflow_names_keep_their_rules_without_mlflows_checks(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow.utils.validation", None)  # importing it raises ImportError
    path = _config(tmp_path, "mlflow: {registered_model: shop/eu}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert (
        str(e.value)
        == f"{path}: mlflow.registered_model: Invalid model name 'shop/eu'. Names cannot contain '/' or ':'."
    )
    path = _config(tmp_path, "mlflow: {experiment: ''}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == f"{path}: mlflow.experiment: MLflow needs a name that is not blank"
    assert load_config(_config(tmp_path, "mlflow: {registered_model: shop-eu}\n")).mlflow.registered_model == "shop-eu"


# ------------------------------------------------------------------------------------------ LightGBM settings


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (
            "param_grid: [{num_leaves: -1}]",
            "models.param_grid: entry 1 ({num_leaves: -1}): num_leaves: must be an integer from 2 to 131072, got -1",
        ),
        (
            "param_grid: [{num_leaves: 7}, {num_leavs: 7}]",
            "models.param_grid: entry 2 ({num_leavs: 7}): unknown LightGBM parameter 'num_leavs' "
            "(did you mean num_leaves?)",
        ),
        ("param_grid: [{learning_rate: 0}]", "learning_rate: must be a number above 0, got 0"),
        ("param_grid: [{learning_rate: '0.1'}]", "learning_rate: must be a number above 0, got '0.1'"),
        ("param_grid: [{n_estimators: 10}]", "n_estimators is set by tiercast: set models.n_estimators"),
        ("param_grid: [{subsample: 1.5}]", "subsample: must be a number above 0 and at most 1, got 1.5"),
        ("value_params: {min_child_samples: -5}", "models.value_params: min_child_samples: must be an integer"),
        ("churn_params: {objective: regression}", "models.churn_params: objective is set by tiercast"),
        ("churn_params: {max_leaves: 7}", "max_leaves is LightGBM's alias of num_leaves, which tiercast's"),
        ("value_params: {num_leaves: 7, num_leaf: 9}", "num_leaf is LightGBM's alias of num_leaves"),
        (
            "value_params: {lambda_l2: 3}\n  param_grid: [{reg_lambda: 1}]",
            "models: param_grid entry 1 with value_params: lambda_l2 and reg_lambda are the same LightGBM parameter",
        ),
    ],
)
def test_lightgbm_settings_are_checked_when_the_config_is_read(tmp_path, models, message):
    path = _config(tmp_path, f"models:\n  {models}\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_lightgbm_main_names_and_estimator_keywords_are_accepted():
    grid = [
        {"num_leaves": 7, "min_child_samples": 10, "learning_rate": 0.1, "subsample": 0.7, "reg_lambda": 2},
        {"bagging_fraction": 0.5, "lambda_l1": 0.1, "max_depth": -1, "extra_trees": True, "min_data_in_leaf": 5},
    ]
    models = {"param_grid": grid, "value_params": {"n_jobs": 1, "tweedie_variance_power": 1.5}}
    cfg = load_config(DEMO, overrides={"models": models})
    assert cfg.models.param_grid == tuple(grid) and cfg.models.value_params["tweedie_variance_power"] == 1.5
    assert load_config(DEMO, overrides={"models": {"param_grid": "none"}}).models.param_grid == "none"


# ------------------------------------------------------------------------------------------------- refunds


def test_a_history_of_refunds_only_is_named_not_taken_for_one_time_buyers():
    from tiercast.pipeline.jobs.model_fit import check_trainable

    cfg = load_config(DEMO)
    validation = pd.Timestamp("2023-07-05")
    rows = pd.DataFrame(
        {
            CUSTOMER_ID: [f"c{i}" for i in range(40)],
            CUTOFF: validation,
            FUTURE_VALUE: -20.0,
            CHURNED: 1.0,
            "frequency_orders": 0.0,
            "refund_count": 11.0,
        }
    )
    with pytest.raises(InsufficientDataError) as e:
        check_trainable(rows, SimpleNamespace(validation=validation), cfg)
    assert str(e.value) == (
        "no purchases to learn from: before the validation cutoff 2023-07-05, 0 order(s) net above zero against 440 "
        "with refund lines, and 0 customer-cutoff(s) buy in the 90-day label windows: are the amounts' signs flipped "
        "(sales negative)?"
    )
    one_time = rows.assign(frequency_orders=1.0, refund_count=0.0)
    with pytest.raises(InsufficientDataError, match="too few repeat buyers"):
        check_trainable(one_time, SimpleNamespace(validation=validation), cfg)


def test_churn_label_notice_by_the_share_and_classes_of_the_label():
    from tiercast.pipeline.jobs.model_fit import churn_label_notice

    early, validation = pd.Timestamp("2023-06-05"), pd.Timestamp("2023-07-05")

    def rows(churned_early: list[int], churned_val: list[int]) -> pd.DataFrame:
        cuts = [early] * len(churned_early) + [validation] * len(churned_val)
        return pd.DataFrame({CUTOFF: cuts, CHURNED: [float(c) for c in churned_early + churned_val]})

    assert churn_label_notice(rows([0, 1] * 50, [1, 0] * 50), validation, 90) == (False, None)
    # 199 of 200 churn: nearly one class, both present everywhere: trained as usual, with the notice
    one_sided, notice = churn_label_notice(rows([1] * 99 + [0], [1] * 100), validation, 90)
    assert one_sided is True  # the validation cutoff holds one class: nothing to validate trees on
    one_sided, notice = churn_label_notice(rows([1] * 100, [1] * 99 + [0]), validation, 90)
    assert one_sided is False
    assert notice == (
        "99.5% of the training label windows' customers make no purchase within horizon_days=90: a churn label of "
        "nearly one class (1 customer-windows of the other); the validation decides whether trees add to the BTYD "
        "model, and churn metrics rest on few customers"
    )
    one_sided, notice = churn_label_notice(rows([0] * 100, [0] * 100), validation, 30)
    assert one_sided is True and notice == (
        "0.0% of the training label windows' customers make no purchase within horizon_days=30: a churn label of one "
        "class, so the value and churn models are the BTYD model alone"
    )
