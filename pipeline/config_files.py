"""Config files as plain mappings: strict YAML reading (no key given twice, no impossible date), ``base:`` chains (a
file next to the config or a packaged preset), key-by-key merging, and which file set each key, so a validation error
can name the file that holds the key; and the checks of single settings that plain types do not cover (dates, LightGBM
parameters, MLflow names)."""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import inspect
import math
from collections.abc import Callable, Hashable, Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, get_args

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo, field_validator


class ConfigError(ValueError):
    """A config file that cannot be used: unreadable, not a mapping, or inconsistent (e.g. playbook rules)."""


#: Mappings that are one set of named values (the churn bands and their thresholds): a config that gives one replaces
#: its base's whole mapping instead of merging into it, so a band can be dropped or renamed.
REPLACED_MAPPINGS: frozenset[tuple[str, ...]] = frozenset({("playbook", "churn_bands")})


def deep_merge(base: dict[str, Any], override: dict[str, Any], at: tuple[str, ...] = ()) -> dict[str, Any]:
    """``override`` over ``base`` key by key, nested mappings merged, except those of :data:`REPLACED_MAPPINGS`."""
    out = dict(base)
    for key, value in override.items():
        path = (*at, str(key))
        if isinstance(value, dict) and isinstance(out.get(key), dict) and path not in REPLACED_MAPPINGS:
            out[key] = deep_merge(out[key], value, path)
        else:
            out[key] = value
    return out


def replaced_sources(sources: dict[tuple[str, ...], Path], by: dict[str, Any]) -> dict[tuple[str, ...], Path]:
    """``sources`` without the keys inside a mapping of :data:`REPLACED_MAPPINGS` that ``by`` gives anew."""
    given = {p for p in REPLACED_MAPPINGS if isinstance(_get(by, p), dict)}
    return {k: v for k, v in sources.items() if not any(len(k) > len(p) and k[: len(p)] == p for p in given)}


def _get(mapping: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


PRESETS_PACKAGE = "tiercast.pipeline"
# Sections a usable config must have after merging its bases; every preset gets them from ``default``.
REQUIRED_SECTIONS: tuple[str, ...] = ("data", "playbook")


def _presets_dir() -> Path:
    return Path(str(resources.files(PRESETS_PACKAGE) / "presets"))


def preset_names() -> tuple[str, ...]:
    """The presets shipped with the package (``default``, the bundled data layouts), by name."""
    return tuple(sorted(p.stem for p in _presets_dir().glob("*.yaml")))


def preset_path(name: str) -> Path:
    """The packaged preset file for ``name`` (with or without ``.yaml``); ConfigError when there is none."""
    stem = name.removesuffix(".yaml").removesuffix(".yml")
    path = _presets_dir() / f"{stem}.yaml"
    if "/" in stem or "\\" in stem or not path.is_file():
        known = ", ".join(preset_names())
        raise ConfigError(f"unknown preset {name!r}: not a file next to the config and not one of {known}")
    return path.resolve()


def _resolve_base(base: str, parent: Path) -> Path:
    """A ``base:`` file relative to the config that names it if it exists, else a packaged preset by name."""
    candidate = (parent / base).expanduser()
    if candidate.is_file():
        return candidate.resolve()
    if Path(base).suffix in ("", ".yaml", ".yml") and len(Path(base).parts) == 1:
        return preset_path(base)
    raise ConfigError(f"{parent / base}: base config not found")


class _NodeProblem(yaml.YAMLError):
    """A value :class:`StrictLoader` refuses, with the node it sits at (its key path is looked up afterwards)."""

    def __init__(self, node: yaml.Node, message: str, key: Any = None, line: int | None = None) -> None:
        super().__init__(message)
        self.node, self.message, self.key, self.line = node, message, key, line


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, strict: a key given twice in one mapping is refused (PyYAML keeps the last silently),
    and a date that does not exist is a problem with its node (PyYAML's timestamp constructor raises a bare
    ValueError). ``<<`` merge keys keep their meaning: a key may override one it merges."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._checked: set[yaml.Node] = set()

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        """Check a mapping's own keys before PyYAML merges ``<<`` keys into it (merged keys may repeat them)."""
        if node not in self._checked:
            self._checked.add(node)
            first: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                if key_node.tag == "tag:yaml.org,2002:value":
                    key_node.tag = "tag:yaml.org,2002:str"  # as PyYAML's flatten_mapping reads a bare "="
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, Hashable):
                    continue  # PyYAML refuses it itself
                if key in first:
                    one, two = first[key].start_mark, key_node.start_mark
                    lines = (
                        f"lines {one.line + 1} and {two.line + 1}"
                        if one.line != two.line
                        else f"line {one.line + 1}, columns {one.column + 1} and {two.column + 1}"
                    )
                    message = f"the key is given twice ({lines}); the second would silently replace the first: keep one"
                    raise _NodeProblem(node, message, key_node.value)
                first[key] = key_node
        super().flatten_mapping(node)

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> dt.date | dt.datetime:
        """A YAML date or datetime; one that does not exist (2023-02-30) is a problem naming it."""
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as exc:
            message = f"{node.value} is not a date that exists ({exc}); write YYYY-MM-DD, e.g. 2023-10-01"
            raise _NodeProblem(node, message, line=node.start_mark.line + 1) from None


StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", StrictLoader.construct_yaml_timestamp)


def _node_path(root: yaml.Node, target: yaml.Node) -> tuple[str, ...] | None:
    """The first key path from ``root`` to ``target`` (sequence items by index), or None when it is not a value."""
    stack: list[tuple[yaml.Node, tuple[str, ...]]] = [(root, ())]
    seen: set[yaml.Node] = set()
    while stack:
        node, at = stack.pop()
        if node is target:
            return at
        if node in seen:
            continue
        seen.add(node)
        if isinstance(node, yaml.MappingNode):
            stack.extend((value, (*at, str(key.value))) for key, value in reversed(node.value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*at, str(i))) for i, item in reversed(list(enumerate(node.value))))
    return None


def parse_yaml(text: str, path: Path) -> Any:
    """The data of one YAML document read by :class:`StrictLoader`; a refused key or value is a ConfigError naming
    ``path``, the key path and the line."""
    loader = StrictLoader(text)
    try:
        root = loader.get_single_node()
        try:
            return None if root is None else loader.construct_document(root)
        except _NodeProblem as problem:
            found = _node_path(root, problem.node)
            keys = (*(found or ()), str(problem.key)) if problem.key is not None else found
            where = ".".join(keys) if keys else ""
            if problem.line:
                where = f"{where} (line {problem.line})" if where else f"line {problem.line}"
            raise ConfigError(f"{path}: {where}: {problem.message}") from None
    finally:
        loader.dispose()


def read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The merged mapping of ``path`` and its ``base:`` chain."""
    return read_with_sources(path, seen)[0]


def read_with_sources(path: Path, seen: tuple[Path, ...] = ()) -> tuple[dict[str, Any], dict[tuple[str, ...], Path]]:
    """The merged mapping of ``path`` and its ``base:`` chain, and for every key path the file that sets it."""
    if path in seen:
        raise ConfigError(f"{path}: base configs form a cycle ({' -> '.join(str(p) for p in (*seen, path))})")
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8"), path) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a folder, not a config file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied; make the config file readable") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte at offset {exc.start}); save the file as UTF-8") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping at top level")
    base = raw.pop("base", None)
    sources = {key: path for key in key_paths(raw)}
    if base is not None:
        if not isinstance(base, str) or not base:
            raise ConfigError(f"{path}: base must be a file name or a preset name, got {base!r}")
        merged, base_sources = read_with_sources(_resolve_base(base, path.parent), (*seen, path))
        sources = {**replaced_sources(base_sources, raw), **sources}
        raw = deep_merge(merged, raw)
    return raw, sources


def key_paths(mapping: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for key, value in mapping.items():
        out.append((*prefix, str(key)))
        if isinstance(value, dict):
            out.extend(key_paths(value, (*prefix, str(key))))
    return out


def holder_of(loc: tuple[Any, ...], sources: dict[tuple[str, ...], Path], default: Path) -> Path:
    """The file that sets the longest prefix of ``loc`` (the file given when no file sets it)."""
    parts = tuple(str(p) for p in loc)
    for n in range(len(parts), 0, -1):
        if parts[:n] in sources:
            return sources[parts[:n]]
    return default


def error_message(error: dict[str, Any]) -> str:
    """One pydantic error's message without the "Value error, " pydantic puts before a validator's own text."""
    return str(error["msg"]).removeprefix("Value error, ")


def _config_date(value: Any) -> str | None:
    """A date setting as ``YYYY-MM-DD``: a YAML date, a datetime at midnight or an ISO text of a date that exists."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a date that exists; write YYYY-MM-DD, e.g. 2023-10-01") from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            raise ValueError(f"{value.isoformat()} carries a time zone; write a plain date YYYY-MM-DD (its midnight)")
        if value.time() != dt.time():
            raise ValueError(f"{value.isoformat()} has a time of day; a cutoff is a date YYYY-MM-DD (its midnight)")
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    raise ValueError(f"expected a date YYYY-MM-DD, got {value!r}")


#: A date setting: checked when the config is loaded, kept as its ``YYYY-MM-DD`` text (None: unset).
ConfigDate = Annotated[str | None, BeforeValidator(_config_date)]


# LightGBM parameters tiercast sets itself (by LightGBM's main name): one given in a config would be ignored or
# break the settings search.
LGBM_SET_BY_TIERCAST: dict[str, str] = {
    "num_iterations": "set models.n_estimators (the cap; early stopping picks the count)",
    "early_stopping_round": "set models.early_stopping_rounds",
    "objective": "the value model is Tweedie and the churn model binary",
    "metric": "early stopping reads the objective's own loss",
    "seed": "set the top-level seed",
}


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _fraction(v: Any) -> bool:
    return _number(v) and 0 < v <= 1


#: Values LightGBM refuses at fit time (or that cannot mean anything), by main name: (accepted, what to give).
LGBM_VALUES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "num_leaves": (lambda v: _integer(v) and 2 <= v <= 131_072, "an integer from 2 to 131072"),
    "learning_rate": (lambda v: _number(v) and v > 0, "a number above 0"),
    "max_depth": (_integer, "an integer (0 or less: no limit)"),
    "min_data_in_leaf": (lambda v: _integer(v) and v >= 0, "an integer of at least 0"),
    "min_sum_hessian_in_leaf": (lambda v: _number(v) and v >= 0, "a number of at least 0"),
    "bagging_fraction": (_fraction, "a number above 0 and at most 1"),
    "bagging_freq": (lambda v: _integer(v) and v >= 0, "an integer of at least 0"),
    "feature_fraction": (_fraction, "a number above 0 and at most 1"),
    "feature_fraction_bynode": (_fraction, "a number above 0 and at most 1"),
    "lambda_l1": (lambda v: _number(v) and v >= 0, "a number of at least 0"),
    "lambda_l2": (lambda v: _number(v) and v >= 0, "a number of at least 0"),
    "min_gain_to_split": (lambda v: _number(v) and v >= 0, "a number of at least 0"),
    "max_bin": (lambda v: _integer(v) and v >= 2, "an integer of at least 2"),
    "tweedie_variance_power": (lambda v: _number(v) and 1 <= v < 2, "a number from 1 to below 2"),
}

# Without LightGBM's own list (a private helper of its Python package): the names tiercast's defaults and grid use,
# the estimators' keywords (read from their signature) and the settings the config reference mentions. Narrower than
# LightGBM's list, so a name missing here is refused rather than silently ignored.
_LGBM_FALLBACK = (*LGBM_VALUES, *LGBM_SET_BY_TIERCAST, "verbosity", "deterministic", "force_row_wise", "extra_trees")


@functools.cache
def lgbm_names() -> tuple[dict[str, str], frozenset[str]]:
    """LightGBM's parameter names: every name and alias -> its main name, and the scikit-learn estimators' keywords
    (accepted as given: the estimators pass them on)."""
    import lightgbm

    keywords = frozenset(inspect.signature(lightgbm.LGBMModel.__init__).parameters) - {"self", "kwargs"}
    try:
        from lightgbm.basic import _ConfigAliases

        groups: Mapping[str, Any] = _ConfigAliases._get_all_param_aliases()
    except (ImportError, AttributeError):
        groups = {name: [name] for name in _LGBM_FALLBACK}
    main_of = {alias: main for main, aliases in groups.items() for alias in (main, *aliases)}
    return main_of, keywords


def lgbm_params_problem(params: Mapping[str, Any]) -> str | None:
    """Why ``params`` cannot be given to tiercast's LightGBM models (unknown name, an alias that would lose to the
    name tiercast sets, a setting tiercast owns, a value out of range, one parameter twice), or None."""
    main_of, keywords = lgbm_names()
    seen: dict[str, str] = {}
    for key, value in params.items():
        main = main_of.get(key, key if key in keywords else None)
        if main is None:
            close = difflib.get_close_matches(key, [*main_of, *keywords], n=1)
            return f"unknown LightGBM parameter {key!r}" + (f" (did you mean {close[0]}?)" if close else "")
        if main in LGBM_SET_BY_TIERCAST:
            return f"{key} is set by tiercast: {LGBM_SET_BY_TIERCAST[main]}"
        if key != main and key not in keywords:
            # the estimators always pass their keywords (e.g. reg_lambda) and LightGBM reads a main name first: any
            # other alias would be silently ignored
            return f"{key} is LightGBM's alias of {main}, which tiercast's settings would override: write {main}"
        if main in seen:
            return f"{seen[main]} and {key} are the same LightGBM parameter ({main}): give one"
        seen[main] = key
        accepted, wanted = LGBM_VALUES.get(main, (None, ""))
        if accepted is not None and not accepted(value):
            return f"{key}: must be {wanted}, got {value!r}"
    return None


def _fallback_name_problem(setting: str, name: str) -> str | None:
    """MLflow's rules when its checks cannot be imported: a name is not blank, an experiment name has at most 500
    characters, and a model name has no '/' or ':' (a ``models:/NAME/VERSION`` address could not hold it)."""
    if not name.strip():
        return "MLflow needs a name that is not blank"
    if setting == "experiment" and len(name) > 500:
        return f"an MLflow experiment name has at most 500 characters, this one {len(name)}"
    if setting == "registered_model" and ("/" in name or ":" in name):
        return f"Invalid model name {name!r}. Names cannot contain '/' or ':'."
    return None


def mlflow_name_problem(setting: str, name: str) -> str | None:
    """Why MLflow would refuse ``name`` for ``mlflow.<setting>`` (experiment or registered_model), or None: checked
    when the config is read, so a bad name fails before training instead of at registration after it."""
    try:
        from mlflow.exceptions import MlflowException
        from mlflow.utils.validation import _validate_experiment_name, _validate_model_name
    except ImportError:
        return _fallback_name_problem(setting, name)
    try:
        (_validate_model_name if setting == "registered_model" else _validate_experiment_name)(name)
    except MlflowException as exc:
        return exc.message
    return None


class Frozen(BaseModel):
    """A config section: immutable, unknown keys refused, numbers only from YAML numbers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """A number field takes a YAML number: pydantic would read ``true`` as 1 and ``"90"`` as 90."""
        kinds = set(get_args(cls.model_fields[info.field_name].annotation)) or {
            cls.model_fields[info.field_name].annotation
        }
        numeric = kinds - {type(None)} <= {int, float} and bool(kinds & {int, float})
        if numeric and isinstance(value, bool | str):
            raise ValueError(f"expected a number, got {value!r}")
        return value
