"""The ``playbook:`` section of a config (churn bands and rules) and the validated
:class:`~tiercast.models.playbook.Playbook` it builds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from tiercast.models.playbook import ChurnBands, Playbook, Rule
from tiercast.models.segment_keys import SEGMENT_KEYS
from tiercast.pipeline.config_files import Frozen

if TYPE_CHECKING:
    from tiercast.pipeline.config import Config


class PlaybookRuleConfig(Frozen):
    """One playbook rule; an omitted condition matches anything."""

    action: str
    channel: str = "email"
    current_tiers: tuple[str, ...] = ()
    predicted_tiers: tuple[str, ...] = ()
    movement: tuple[Literal["up", "same", "down"], ...] = ()
    churn_bands: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()


class PlaybookConfig(Frozen):
    """Churn bands (name -> lower bound of churn probability) and disjoint rules; the rest gets the default."""

    churn_bands: dict[str, float] = Field(default_factory=lambda: {"low": 0.0, "medium": 0.4, "high": 0.7})
    default_action: str = "automated service"
    default_channel: str = "email"
    rules: tuple[PlaybookRuleConfig, ...] = ()

    @field_validator("churn_bands")
    @classmethod
    def _bands_start_at_zero(cls, v: dict[str, float]) -> dict[str, float]:
        bounds = sorted(v.values())
        if not v or bounds[0] != 0.0 or any(not 0.0 <= b < 1.0 for b in bounds) or len(set(bounds)) != len(bounds):
            raise ValueError("churn_bands: distinct lower bounds in [0, 1), the lowest 0.0")
        return dict(sorted(v.items(), key=lambda kv: kv[1]))


def build_playbook(config: Config) -> Playbook:
    """The validated playbook of a config (unknown tier or band names and overlapping rules raise)."""
    pb = config.playbook
    bands = ChurnBands(names=tuple(pb.churn_bands), lower_bounds=tuple(pb.churn_bands.values()))
    rules = tuple(Rule(**r.model_dump()) for r in pb.rules)
    segments = SEGMENT_KEYS if any(r.segments for r in pb.rules) else ("any",)
    return Playbook(
        rules=rules,
        tiers=config.tiers.tier_names(),
        bands=bands,
        segments=segments,
        default_action=pb.default_action,
        default_channel=pb.default_channel,
    )
