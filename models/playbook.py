"""The playbook: rules that map (current tier, predicted tier, churn risk band, segment) to an action and channel.

Rules are checked exhaustively against the finite grid of conditions when the playbook is built: a rule naming an
unknown tier, band or segment, or two rules matching the same combination, is an error rather than an order-
dependent surprise. Combinations that no rule covers get the default action.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tiercast.features.contract import (
    ACTION,
    CHANNEL,
    CHURN_BAND,
    CHURN_PROBABILITY,
    CURRENT_TIER,
    PREDICTED_TIER,
    SEGMENT,
)

ANY = "any"
MOVES = ("up", "same", "down")


class PlaybookError(ValueError):
    """A playbook rule is unknown or overlaps another rule."""


@dataclass(frozen=True)
class Rule:
    """One rule; an empty tuple means "any" for that condition."""

    action: str
    channel: str
    current_tiers: tuple[str, ...] = ()
    predicted_tiers: tuple[str, ...] = ()
    movement: tuple[str, ...] = ()
    churn_bands: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChurnBands:
    """Named churn-probability bands by lower bound, e.g. low >= 0, medium >= 0.4, high >= 0.7."""

    names: tuple[str, ...] = ("low", "medium", "high")
    lower_bounds: tuple[float, ...] = (0.0, 0.4, 0.7)

    def assign(self, p: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(np.asarray(self.lower_bounds), np.asarray(p, dtype=float), side="right") - 1
        return np.asarray(self.names, dtype=object)[np.clip(idx, 0, len(self.names) - 1)]


@dataclass(frozen=True)
class Playbook:
    """Validated rules over the given tiers (best first), churn bands and segments."""

    rules: tuple[Rule, ...]
    tiers: tuple[str, ...]
    bands: ChurnBands = ChurnBands()
    segments: tuple[str, ...] = (ANY,)
    default_action: str = "no action"
    default_channel: str = "none"
    table_: pd.DataFrame = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check_names()
        rows = []
        for cur, pred, band, seg in itertools.product(self.tiers, self.tiers, self.bands.names, self.segments):
            move = _movement(self.tiers, cur, pred)
            hits = [i for i, r in enumerate(self.rules) if _matches(r, cur, pred, move, band, seg)]
            if len(hits) > 1:
                a, b = (self.rules[i].action for i in hits[:2])
                raise PlaybookError(
                    f"playbook rules {hits[0] + 1} ({a!r}) and {hits[1] + 1} ({b!r}) both match "
                    f"current={cur}, predicted={pred}, churn={band}, segment={seg}"
                )
            rule = self.rules[hits[0]] if hits else None
            rows.append(
                {
                    CURRENT_TIER: cur,
                    PREDICTED_TIER: pred,
                    CHURN_BAND: band,
                    SEGMENT: seg,
                    ACTION: rule.action if rule else self.default_action,
                    CHANNEL: rule.channel if rule else self.default_channel,
                }
            )
        object.__setattr__(self, "table_", pd.DataFrame(rows))

    def _check_names(self) -> None:
        known = {
            "current_tiers": set(self.tiers),
            "predicted_tiers": set(self.tiers),
            "movement": set(MOVES),
            "churn_bands": set(self.bands.names),
            "segments": set(self.segments),
        }
        for i, rule in enumerate(self.rules, start=1):
            for attr, allowed in known.items():
                unknown = sorted(set(getattr(rule, attr)) - allowed)
                if unknown:
                    raise PlaybookError(
                        f"playbook rule {i} ({rule.action!r}): unknown {attr} {unknown}; known: {sorted(allowed)}"
                    )

    def apply(self, scores: pd.DataFrame, segment: Sequence[str] | None = None) -> pd.DataFrame:
        """``churn_band``, ``action`` and ``channel`` for each row of ``scores`` (same index)."""
        keys = pd.DataFrame(
            {
                CURRENT_TIER: scores[CURRENT_TIER].to_numpy(),
                PREDICTED_TIER: scores[PREDICTED_TIER].to_numpy(),
                CHURN_BAND: self.bands.assign(scores[CHURN_PROBABILITY].to_numpy()),
                SEGMENT: np.asarray(segment, dtype=object) if segment is not None else ANY,
            }
        )
        out = keys.merge(self.table_, how="left", on=[CURRENT_TIER, PREDICTED_TIER, CHURN_BAND, SEGMENT])
        out[ACTION] = out[ACTION].fillna(self.default_action)
        out[CHANNEL] = out[CHANNEL].fillna(self.default_channel)
        out.index = scores.index
        return out[[CHURN_BAND, ACTION, CHANNEL]]


def _movement(tiers: tuple[str, ...], current: str, predicted: str) -> str:
    a, b = tiers.index(current), tiers.index(predicted)
    return "same" if a == b else ("up" if b < a else "down")


def _matches(rule: Rule, cur: str, pred: str, move: str, band: str, seg: str) -> bool:
    return (
        (not rule.current_tiers or cur in rule.current_tiers)
        and (not rule.predicted_tiers or pred in rule.predicted_tiers)
        and (not rule.movement or move in rule.movement)
        and (not rule.churn_bands or band in rule.churn_bands)
        and (not rule.segments or seg in rule.segments)
    )
