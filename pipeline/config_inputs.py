"""The files a config reads, registered as inputs no output may replace (before, a ``quarantine_path`` or ``--out``
naming the transactions file or the config replaced it)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tiercast.pipeline.config_files import ConfigError
from tiercast.pipeline.writers.files import OutputIsInputError, check_not_input, protect_inputs


def protect_inputs_of(path: Path, sources: Mapping[Any, Path], files: Mapping[Path, str], quarantine: Path) -> None:
    """Register the config's files and the data files it names as inputs no output of this process may replace
    (:func:`tiercast.pipeline.writers.files.protect_inputs`), and refuse a ``data.quarantine_path`` that names one
    of them, before anything is read."""
    configs = {p for p in sources.values() if Path(p).is_file()} | {path}
    protect_inputs({**dict.fromkeys(configs, "a config file"), **files})
    for out in (quarantine, quarantine.with_name(f"{quarantine.stem}_satisfaction{quarantine.suffix}")):
        try:
            check_not_input(out)
        except OutputIsInputError as exc:
            raise ConfigError(f"{path}: data.quarantine_path: {exc}") from None
