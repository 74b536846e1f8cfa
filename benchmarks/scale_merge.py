"""A partial scale run merged into the full result: ``python -m tiercast.benchmarks.bench_scale --merge`` measures
one size or one command again (a full run at 30M takes long) and keeps every other figure of ``scale.json``.

A size measured again replaces the figures it measured (the query is always measured again with it, so a
command's ratio to the query stays a same-run ratio) and keeps the commands it did not measure; other sizes stay
as they were. The result's ``uptime`` and ``git_commit`` are the new run's; ``merged`` lists, per size, the commands
that each run measured, with its commit and start; ``base_started`` is the start of the full run.
"""

from __future__ import annotations

import json
from pathlib import Path

from tiercast.benchmarks.bench_scale import COMMANDS, QUERY, label


def merge(old: dict, new: dict) -> dict:
    """``new`` (a partial run) merged into ``old`` (the full result); neither is modified."""
    sizes = {s["transactions"]: dict(s) for s in old.get("sizes", [])}
    for s in new["sizes"]:
        sizes[s["transactions"]] = {**sizes.get(s["transactions"], {}), **s}
    measured = [c for c in COMMANDS if c in set(old.get("commands", [])) | set(new.get("commands", []))]
    history = list(old.get("merged", []))
    history.append(
        {
            "git_commit": new.get("git_commit"),
            "started": new.get("started"),
            "uptime": new.get("uptime"),
            "measured": {label(s["transactions"]): [QUERY, *new.get("commands", [])] for s in new["sizes"]},
        }
    )
    base = old.get("base_started", old.get("started"))  # when the full run, whose other figures stay, started
    merged = {**old, **new, "sizes": [sizes[n] for n in sorted(sizes)], "commands": measured, "merged": history}
    return {**merged, "base_started": base}


def merge_into(path: Path, new: dict) -> dict:
    """``new`` merged into the result at ``path`` when there is one, else ``new`` itself."""
    return merge(json.loads(path.read_text()), new) if path.is_file() else new
