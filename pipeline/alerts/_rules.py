"""Alert rules in YAML, validated with pydantic. Each rule is one Elasticsearch query over ``vigil-videos`` (the same
query the equivalent Kibana ``.es-query`` rule runs) plus the Python predicate it stands for (`Rule.matches`).

Rule kinds (thresholds inclusive; times like ``90m``, ``2h``, ``7d``):

- ``risk``: manipulation score ≥ ``min_score``, views per hour ≥ ``min_views_per_hour`` and risk (score × views per
  hour) ≥ ``min_risk``, for videos whose spread was updated within ``window``.
- ``cluster_member``: a re-upload (``cluster.original: false``) first seen within ``window``, in a cluster of at
  least two whose highest manipulation score is ≥ ``min_score``.
- ``acceleration``: a video with manipulation score ≥ ``min_score`` whose views per hour grow by at least
  ``min_acceleration`` an hour (views/h²) while at ≥ ``min_views_per_hour``, spread updated within ``window``.
- ``watched_person``: a video scored within ``window`` with manipulation score ≥ ``min_score`` on which an enrolled
  person of interest was seen (``persons.name``), optionally only the named ``persons`` or the given ``roles``.

An alert is not raised again for the same rule and video within ``cooldown``.

An analyst's verdict (``analyst.verdict``, recorded in the console) outranks the models: a video judged
``authentic`` raises no alert, and one judged ``manipulated`` counts as manipulation score 1 (and its risk as
1 × views per hour).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .._exceptions import ConfigError
from .._yaml import load_yaml
from .._documents import get_field
from .._time import parse_moment as _parse_time

__all__ = ["Rule", "RiskRule", "ClusterMemberRule", "AccelerationRule", "WatchedPersonRule", "RuleSet", "load_rules", "parse_rules",
           "parse_duration", "format_duration", "default_rules_path", "get_field"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> timedelta:
    """``90m``, ``2h``, ``7d`` (or seconds as a number) as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 30m, 2h, 7d)")
    return timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])


def format_duration(value: timedelta) -> tuple[int, str]:
    """(size, unit) in the largest whole unit, as Kibana's time windows take them."""
    seconds = int(value.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds % _UNIT_S[unit] == 0:
            return seconds // _UNIT_S[unit], unit
    return seconds, "s"


Duration = Annotated[timedelta, Field(description="30m, 2h, 7d")]


class _RuleBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="stable id: part of alert ids and Kibana ids")
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    enabled: bool = True
    severity: Literal["low", "medium", "high", "critical"] = "high"
    window: Duration = Field(timedelta(hours=2))
    cooldown: Duration = Field(timedelta(hours=24))
    check_every: Duration = Field(timedelta(minutes=15), description="how often Kibana runs the equivalent rule")
    min_score: float = Field(0.5, ge=0, le=1, description="manipulation score that counts as flagged")

    _time_field: str = "spread.updated"

    @field_validator("window", "cooldown", "check_every", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        return parse_duration(value)

    @field_validator("window", "cooldown", "check_every")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() < 60:
            raise ValueError("must be at least 1m")
        return value

    @property
    def time_field(self) -> str:
        return self._time_field

    # -- the query (Elasticsearch and Kibana) and the predicate (Python) say the same thing
    def filters(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def conditions(self, doc: Mapping[str, Any]) -> bool:
        raise NotImplementedError

    def query(self, now: datetime) -> dict[str, Any]:
        """The Elasticsearch query: the rule's filters within its time window ending at ``now``."""
        since = now - self.window
        return {"bool": {"filter": [*self.filters(),
                                    {"range": {self.time_field: {"gte": since.isoformat(), "lte": now.isoformat()}}}]}}

    def matches(self, doc: Mapping[str, Any], now: datetime) -> bool:
        if analyst_verdict(doc) == "authentic":
            return False
        moment = _parse_time(get_field(doc, self.time_field))
        if moment is None or not (now - self.window <= moment <= now):
            return False
        return self.conditions(doc)

    def subject(self, doc: Mapping[str, Any]) -> str:
        """What an alert is about, for deduplication: the video."""
        return str(doc["video_uid"])

    def reasons(self, doc: Mapping[str, Any]) -> list[str]:
        raise NotImplementedError


def _at_least(doc: Mapping[str, Any], field: str, threshold: float) -> bool:
    value = get_field(doc, field)
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= threshold


# -- the analyst's verdict outranks the models (kept in filters(), so Kibana's equivalent rules say it too)
_JUDGED_MANIPULATED = {"term": {"analyst.verdict": "manipulated"}}
NOT_JUDGED_AUTHENTIC = {"bool": {"must_not": [{"term": {"analyst.verdict": "authentic"}}]}}


def analyst_verdict(doc: Mapping[str, Any]) -> str | None:
    return get_field(doc, "analyst.verdict")


def score_filter(min_score: float) -> dict[str, Any]:
    """Manipulation score ≥ min_score, where an analyst's `manipulated` counts as 1."""
    return {"bool": {"should": [{"range": {"fused.score": {"gte": min_score}}}, _JUDGED_MANIPULATED],
                     "minimum_should_match": 1}}


def risk_filter(min_risk: float) -> dict[str, Any]:
    """Risk ≥ min_risk, where an analyst's `manipulated` makes the risk the views per hour."""
    return {"bool": {"should": [{"range": {"risk": {"gte": min_risk}}},
                                {"bool": {"filter": [_JUDGED_MANIPULATED,
                                                     {"range": {"spread.views_per_hour": {"gte": min_risk}}}]}}],
                     "minimum_should_match": 1}}


def _score_at_least(doc: Mapping[str, Any], threshold: float) -> bool:
    return analyst_verdict(doc) == "manipulated" or _at_least(doc, "fused.score", threshold)


def _risk_at_least(doc: Mapping[str, Any], threshold: float) -> bool:
    if analyst_verdict(doc) == "manipulated":
        return _at_least(doc, "spread.views_per_hour", threshold)
    return _at_least(doc, "risk", threshold)


def _fmt(value: Any, digits: int = 0) -> str:
    return "unknown" if value is None else f"{value:,.{digits}f}"


def _analyst_reason(doc: Mapping[str, Any]) -> list[str]:
    if analyst_verdict(doc) != "manipulated":
        return []
    return [f"judged manipulated by analyst {get_field(doc, 'analyst.analyst') or 'unknown'}"]


class RiskRule(_RuleBase):
    """Manipulated and spreading: risk = manipulation score × views per hour."""

    kind: Literal["risk"] = "risk"
    min_views_per_hour: float = Field(0.0, ge=0)
    min_risk: float = Field(gt=0)

    def filters(self) -> list[dict[str, Any]]:
        return [NOT_JUDGED_AUTHENTIC, score_filter(self.min_score),
                {"range": {"spread.views_per_hour": {"gte": self.min_views_per_hour}}},
                risk_filter(self.min_risk)]

    def conditions(self, doc: Mapping[str, Any]) -> bool:
        return (_score_at_least(doc, self.min_score)
                and _at_least(doc, "spread.views_per_hour", self.min_views_per_hour)
                and _risk_at_least(doc, self.min_risk))

    def reasons(self, doc: Mapping[str, Any]) -> list[str]:
        return [*_analyst_reason(doc),
                f"manipulation score {_fmt(get_field(doc, 'fused.score'), 2)} "
                f"({get_field(doc, 'fused.verdict') or 'no verdict'})",
                f"{_fmt(get_field(doc, 'spread.views_per_hour'))} views/hour, risk {_fmt(get_field(doc, 'risk'))} "
                f"≥ {_fmt(self.min_risk)}",
                *[str(r) for r in (get_field(doc, "fused.reasons") or [])[:3]]]


class ClusterMemberRule(_RuleBase):
    """A new re-upload of a flagged video."""

    kind: Literal["cluster_member"] = "cluster_member"
    min_cluster_size: int = Field(2, ge=2)
    _time_field: str = "first_seen"

    def filters(self) -> list[dict[str, Any]]:
        return [NOT_JUDGED_AUTHENTIC, {"term": {"cluster.original": False}},
                {"range": {"cluster.size": {"gte": self.min_cluster_size}}},
                {"range": {"cluster.max_score": {"gte": self.min_score}}}]

    def conditions(self, doc: Mapping[str, Any]) -> bool:
        return (get_field(doc, "cluster.original") is False
                and _at_least(doc, "cluster.size", self.min_cluster_size)
                and _at_least(doc, "cluster.max_score", self.min_score))

    def reasons(self, doc: Mapping[str, Any]) -> list[str]:
        return [f"re-upload of a flagged video (cluster max score {_fmt(get_field(doc, 'cluster.max_score'), 2)})",
                f"cluster of {get_field(doc, 'cluster.size')} videos, reach {_fmt(get_field(doc, 'cluster.reach'))} "
                f"views, first uploaded by {get_field(doc, 'cluster.first_uploader') or 'unknown'}",
                f"this copy: {get_field(doc, 'channel.name') or get_field(doc, 'channel.id') or 'unknown channel'} "
                f"on {get_field(doc, 'platform') or 'unknown platform'}"]


class AccelerationRule(_RuleBase):
    """A flagged video whose growth is speeding up."""

    kind: Literal["acceleration"] = "acceleration"
    min_acceleration: float = Field(gt=0, description="views per hour gained per hour")
    min_views_per_hour: float = Field(0.0, ge=0)

    def filters(self) -> list[dict[str, Any]]:
        return [NOT_JUDGED_AUTHENTIC, score_filter(self.min_score),
                {"range": {"spread.acceleration": {"gte": self.min_acceleration}}},
                {"range": {"spread.views_per_hour": {"gte": self.min_views_per_hour}}}]

    def conditions(self, doc: Mapping[str, Any]) -> bool:
        return (_score_at_least(doc, self.min_score)
                and _at_least(doc, "spread.acceleration", self.min_acceleration)
                and _at_least(doc, "spread.views_per_hour", self.min_views_per_hour))

    def reasons(self, doc: Mapping[str, Any]) -> list[str]:
        return [*_analyst_reason(doc), f"manipulation score {_fmt(get_field(doc, 'fused.score'), 2)}",
                f"accelerating: +{_fmt(get_field(doc, 'spread.acceleration'))} views/hour per hour, now "
                f"{_fmt(get_field(doc, 'spread.views_per_hour'))} views/hour"]


class WatchedPersonRule(_RuleBase):
    """A flagged video of a watched person (an enrolled person of interest seen on screen)."""

    kind: Literal["watched_person"] = "watched_person"
    persons: list[str] = Field(default_factory=list, description="only these enrolled names; empty = anyone enrolled")
    roles: list[str] = Field(default_factory=list, description="only persons with these roles (candidate, official …)")
    _time_field: str = "scored_at"

    def filters(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = [{"exists": {"field": "persons.name"}},
                                       {"range": {"fused.score": {"gte": self.min_score}}}]
        if self.persons:
            found.append({"terms": {"persons.name": list(self.persons)}})
        if self.roles:
            found.append({"terms": {"persons.role": list(self.roles)}})
        return found

    def _watched(self, doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        seen = get_field(doc, "persons") or []
        if isinstance(seen, Mapping):
            seen = [seen]
        return [p for p in seen if isinstance(p, Mapping) and p.get("name")
                and (not self.persons or p.get("name") in self.persons)
                and (not self.roles or p.get("role") in self.roles)]

    def conditions(self, doc: Mapping[str, Any]) -> bool:
        return _at_least(doc, "fused.score", self.min_score) and bool(self._watched(doc))

    def reasons(self, doc: Mapping[str, Any]) -> list[str]:
        def one(p: Mapping[str, Any]) -> str:
            face, voice = p.get("face_similarity"), p.get("voice_similarity")
            said = f"{p.get('name')} ({p.get('role') or 'no role'}) on screen, face similarity {_fmt(face, 2)}"
            if voice is not None:
                said += f", voice similarity {_fmt(voice, 2)} ({'matches' if p.get('voice_match') else 'does not match'})"
            return said
        return [f"manipulation score {_fmt(get_field(doc, 'fused.score'), 2)} "
                f"({get_field(doc, 'fused.verdict') or 'no verdict'})",
                *[one(p) for p in self._watched(doc)],
                *[str(r) for r in (get_field(doc, "fused.reasons") or [])[:2]]]


Rule = Annotated[RiskRule | ClusterMemberRule | AccelerationRule | WatchedPersonRule, Field(discriminator="kind")]
_KINDS = ("risk", "cluster_member", "acceleration", "watched_person")


class RuleSet(BaseModel):
    """A rules file: ``rules:`` a list of rules with unique ids."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[Rule] = Field(default_factory=list)

    @field_validator("rules")
    @classmethod
    def _unique(cls, rules: list[Any]) -> list[Any]:
        seen: set[str] = set()
        for rule in rules:
            if rule.id in seen:
                raise ValueError(f"rule id {rule.id!r} is used twice")
            seen.add(rule.id)
        return rules

    @property
    def enabled(self) -> list[Any]:
        return [r for r in self.rules if r.enabled]


def parse_rules(text: str, *, source: str = "<rules>") -> RuleSet:
    """Validate a rules document; ConfigError names the file and the rule."""
    try:
        data = load_yaml(text, what="alert rules") or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = list(err["loc"])
            where = ".".join(str(p) for p in loc)
            if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
                rules = data.get("rules") if isinstance(data, dict) else None
                if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], dict):
                    rest = loc[3:] if len(loc) > 2 and loc[2] in _KINDS else loc[2:]  # drop the union's tag
                    where = f"rule {rules[loc[1]].get('id', loc[1])!s}: " + ".".join(str(p) for p in rest)
            problems.append(f"{where}: {err['msg']}")
        raise ConfigError(f"{source}: invalid alert rules: " + "; ".join(problems)) from exc


def default_rules_path() -> Path:
    """``infra/alerts/rules.yaml`` of a source checkout, or its copy inside an installed wheel."""
    here = Path(__file__).resolve().parents[1]
    for candidate in (here / "_data" / "alerts" / "rules.yaml", here.parent / "infra" / "alerts" / "rules.yaml"):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"no alert rules found next to {here}; set VIGIL_ALERT_RULES")


def load_rules(path: str | Path | None = None) -> RuleSet:
    chosen = Path(path) if path else default_rules_path()
    if not chosen.is_file():
        raise ConfigError(f"alert rules file {chosen} does not exist (VIGIL_ALERT_RULES)")
    return parse_rules(chosen.read_text(encoding="utf-8"), source=str(chosen))
