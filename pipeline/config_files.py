"""Config files as plain mappings: YAML reading, ``base:`` chains (a file next to the config or a packaged preset),
key-by-key merging, and which file set each key, so a validation error can name the file that holds the key."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file that cannot be used: unreadable, not a mapping, or inconsistent (e.g. playbook rules)."""


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


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


def read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The merged mapping of ``path`` and its ``base:`` chain."""
    return read_with_sources(path, seen)[0]


def read_with_sources(path: Path, seen: tuple[Path, ...] = ()) -> tuple[dict[str, Any], dict[tuple[str, ...], Path]]:
    """The merged mapping of ``path`` and its ``base:`` chain, and for every key path the file that sets it."""
    if path in seen:
        raise ConfigError(f"{path}: base configs form a cycle ({' -> '.join(str(p) for p in (*seen, path))})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
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
        raw = deep_merge(merged, raw)
        sources = {**base_sources, **sources}
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
