"""Per-table maintenance policies: retention, orphan age, data expiry and hot/warm/cold tiering.

Where a value comes from, lowest first: built-in defaults < ``[policy]`` in lakehouse.toml (every table) <
``[tables."ns.t"]`` in lakehouse.toml < what ``lakehouse policy set`` stored in the catalog < options of the
command being run.

    >>> p = TablePolicy.model_validate({"tiering": {"warm_after": "30d"}})
    >>> p.tiering.warm_after, p.tiering.cold_after
    ('30d', '90d')
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from lakehouse.errors import ConfigError, InvalidInputError
from lakehouse.units import parse_age, parse_duration, parse_size

TIERS = ("hot", "warm", "cold")
"""Tiers from the most to the least expensive."""

READABLE_CLASSES = frozenset(
    {"STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "REDUCED_REDUNDANCY"}
)
"""S3 storage classes that serve reads immediately. Archive classes (GLACIER, DEEP_ARCHIVE) need a restore
first, so lakehouse does not tier table files into them."""


def _names(v: Any) -> Any:
    """A list of column names also from ``"a,b"`` (``policy set t compaction.zorder=a,b``, or the environment)."""
    if isinstance(v, str):
        return [p.strip() for p in v.split(",") if p.strip()]
    return v


def _duration(v: str | None) -> str | None:
    if v is None:
        return None
    parse_duration(v)  # raises InvalidInputError with a hint
    return v


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RetentionPolicy(_Model):
    """How long old versions, stray files and old rows stay."""

    retain: str = Field(default="7d", description="Versions younger than this stay readable (vacuum).")
    orphan_age: str = Field(default="3d", description="Unreferenced files younger than this are never deleted.")
    expire_after: str | None = Field(default=None, description="Rows older than this are deleted (expire-data).")
    expire_column: str | None = Field(default=None, description="Time column for expire-data (default: partition).")

    @field_validator("retain", "orphan_age", "expire_after")
    @classmethod
    def _age(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None:
            parse_age(v, f"retention.{info.field_name}")  # deletes by it: a bare number needs its unit
        return v


class TierPolicy(_Model):
    """When partitions move from hot to warm to cold, and what moving means."""

    column: str | None = Field(
        default=None, description="Time column whose age decides the tier (default: the time partition's source)."
    )
    warm_after: str = Field(default="7d", description="Partitions older than this are warm.")
    cold_after: str = Field(default="90d", description="Partitions older than this are cold.")
    method: Literal["auto", "storage-class", "prefix"] = Field(
        default="auto",
        description=(
            "storage-class: set each file's S3 storage class in place (paths unchanged); prefix: rewrite the "
            "files under <table>/tier-<tier>/ and commit (for stores without storage classes, or prefix-based "
            "lifecycle rules); auto: storage-class on S3, prefix on local storage."
        ),
    )
    storage_classes: dict[str, str] = Field(
        default_factory=lambda: {"hot": "STANDARD", "warm": "STANDARD_IA", "cold": "GLACIER_IR"},
        description="S3 storage class per tier (also the price used for local storage in the cost report).",
    )
    recompress: dict[str, int] = Field(
        default_factory=lambda: {"cold": 9},
        description="zstd level for files rewritten into a tier; a storage-class move rewrites only tiers listed.",
    )
    target_file_size: str = Field(default="512MB", description="File size of rewrites into warm/cold tiers.")
    keep_read_hot: str | None = Field(
        default="7d",
        description="Partitions that queries asked for within this window stay hot (from the access log).",
    )

    _check = field_validator("warm_after", "cold_after", "keep_read_hot")(_duration)

    @field_validator("target_file_size")
    @classmethod
    def _size(cls, v: str) -> str:
        if parse_size(v) < 1024:  # the rewrite's own minimum: the tier job would refuse it on every pass
            raise ValueError("target_file_size must be at least 1KB")
        return v

    @field_validator("storage_classes")
    @classmethod
    def _classes(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = set(v) - set(TIERS)
        if unknown:
            raise ValueError(f"unknown tier(s) {', '.join(sorted(unknown))}; tiers are {', '.join(TIERS)}")
        merged = {
            "hot": "STANDARD",
            "warm": "STANDARD_IA",
            "cold": "GLACIER_IR",
            **{k: c.upper() for k, c in v.items()},
        }
        for tier, cls_ in merged.items():
            if cls_ not in READABLE_CLASSES:
                raise ValueError(
                    f"storage class {cls_} for tier {tier} needs a restore before every read; lakehouse tiers only "
                    f"into classes that serve reads at once ({', '.join(sorted(READABLE_CLASSES))})"
                )
        return merged

    @field_validator("recompress")
    @classmethod
    def _levels(cls, v: dict[str, int]) -> dict[str, int]:
        for tier, level in v.items():
            if tier not in TIERS:
                raise ValueError(f"unknown tier {tier!r} in recompress")
            if not 1 <= level <= 22:
                raise ValueError(f"zstd level {level} for tier {tier} must be 1..22")
        return v

    @model_validator(mode="after")
    def _order(self) -> TierPolicy:
        if parse_duration(self.cold_after) <= parse_duration(self.warm_after):
            raise ValueError(f"cold_after ({self.cold_after}) must be longer than warm_after ({self.warm_after})")
        return self

    def tier_for(self, age: dt.timedelta) -> str:
        """The tier a partition of this age belongs in."""
        if age >= parse_duration(self.cold_after):
            return "cold"
        if age >= parse_duration(self.warm_after):
            return "warm"
        return "hot"


class CompactionPolicy(_Model):
    """When files are small and how they are rewritten."""

    target_file_size: str = Field(default="128MB", description="Size compaction aims for.")
    small_file_fraction: float = Field(default=0.75, gt=0, le=1, description="Small below this share of target.")
    min_input_files: int = Field(default=2, ge=1, description="Compact a partition from this many small files.")
    zorder: list[str] = Field(default_factory=list, max_length=4, description="Z-order columns (empty: none).")
    curve: Literal["hilbert", "morton"] = Field(default="hilbert", description="Clustering curve of the Z-order.")
    adopt_zorder: bool = Field(
        default=False,
        description="Without zorder set, Z-order by the columns queries filter on most (from the access log).",
    )

    _zorder = field_validator("zorder", mode="before")(_names)

    @field_validator("target_file_size")
    @classmethod
    def _size(cls, v: str) -> str:
        if parse_size(v) < 1024:
            raise ValueError("target_file_size must be at least 1KB")
        return v


class DedupPolicy(_Model):
    """Which rows are duplicates, and whether ingestion prevents them."""

    keys: list[str] = Field(default_factory=list, description="Key columns (default: the table's declared keys).")
    order: str | None = Field(default=None, description="Keep the row with the latest value of this column.")
    on_ingest: Literal["auto", "upsert", "append"] = Field(
        default="auto",
        description="upsert: ingestion replaces rows by key (no duplicates land); auto: upsert when keys exist.",
    )

    _keys = field_validator("keys", mode="before")(_names)


class AutopilotPolicy(_Model):
    """What the autopilot does with a table."""

    enabled: bool = Field(default=True, description="The autopilot maintains this table.")
    interval: str | None = Field(
        default=None, description="Maintain this table at most this often (unset: every autopilot pass)."
    )
    window: str | None = Field(
        default=None, description='Maintenance window in UTC, "HH:MM-HH:MM" (may wrap midnight; unset: any time).'
    )
    skip_unread_after: str | None = Field(
        default=None, description="Skip the table when no query read it for this long (unset: never skip)."
    )

    _check = field_validator("skip_unread_after", "interval")(_duration)

    @field_validator("window")
    @classmethod
    def _window(cls, v: str | None) -> str | None:
        if v is not None:
            window_bounds(v)
        return v

    def in_window(self, at: dt.datetime) -> bool:
        """True when ``at`` (UTC) lies in the maintenance window (always without one).

        >>> AutopilotPolicy(window="22:00-04:00").in_window(dt.datetime(2026, 1, 1, 23, 30))
        True
        """
        if self.window is None:
            return True
        start, end = window_bounds(self.window)
        now = at.hour * 60 + at.minute
        return start <= now < end if start <= end else now >= start or now < end


def window_bounds(text: str) -> tuple[int, int]:
    """``"01:00-05:30"`` -> minutes of the day (60, 330)."""
    import re

    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
    if not m or int(m[1]) > 23 or int(m[3]) > 23 or int(m[2]) > 59 or int(m[4]) > 59:
        raise ValueError(f"window {text!r}: write HH:MM-HH:MM in UTC, e.g. 01:00-05:00")
    start, end = int(m[1]) * 60 + int(m[2]), int(m[3]) * 60 + int(m[4])
    if start == end:  # no minute of the day would be in it: the table would never be maintained
        raise ValueError(f"window {text!r} is empty: its start and end are the same minute; unset it for any time")
    return start, end


class TablePolicy(_Model):
    """Everything maintenance needs to know about one table."""

    compaction: CompactionPolicy = Field(default_factory=CompactionPolicy)
    retention: RetentionPolicy = Field(default_factory=RetentionPolicy)
    tiering: TierPolicy = Field(default_factory=TierPolicy)
    dedup: DedupPolicy = Field(default_factory=DedupPolicy)
    autopilot: AutopilotPolicy = Field(default_factory=AutopilotPolicy)
    masking: dict[str, str] = Field(
        default_factory=dict,
        description="column -> masking policy (hash, redact, partial[:N], null, generalize[:G]); applied at "
        "ingestion, by `pii mask` in place, and on reads without the PII-read permission.",
    )

    @field_validator("masking")
    @classmethod
    def _masks(cls, v: dict[str, str]) -> dict[str, str]:
        from lakehouse.masking import parse_mask

        return {column: str(parse_mask(spec)) for column, spec in v.items() if spec is not None}


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge dictionaries, later layers winning.

    >>> merge({"a": {"x": 1, "y": 2}}, {"a": {"y": 3}})
    {'a': {'x': 1, 'y': 3}}
    """
    out: dict[str, Any] = {}
    for layer in layers:
        for k, v in layer.items():
            if isinstance(v, Mapping) and isinstance(out.get(k), dict):
                out[k] = merge(out[k], v)
            else:
                out[k] = dict(v) if isinstance(v, Mapping) else v
    return out


def build_policy(*layers: Mapping[str, Any], source: str = "policy") -> TablePolicy:
    """Validate merged layers into a policy; a bad value is a :class:`ConfigError` naming the field."""
    try:
        return TablePolicy.model_validate(merge(*layers))
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'policy'}: {err['msg'].removeprefix('Value error, ')}"
            for err in e.errors()
        )
        raise ConfigError(f"invalid {source}: {problems}") from None
    except InvalidInputError as e:
        raise ConfigError(f"invalid {source}: {e}") from None


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``["tiering.warm_after=30d", "tiering.recompress.cold=12"]`` -> a nested dict (``none`` or nothing after
    ``=`` means unset; ``null`` is a value, the masking policy).

    >>> parse_assignments(["retention.retain=14d", "tiering.storage_classes.cold=STANDARD_IA"])
    {'retention': {'retain': '14d'}, 'tiering': {'storage_classes': {'cold': 'STANDARD_IA'}}}
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"{item!r} must be KEY=VALUE, e.g. tiering.warm_after=30d")
        parts = [p.strip() for p in key.strip().split(".")]
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise InvalidInputError(f"{key} sets a value inside {p}, which is not a section")
        node[parts[-1]] = None if value.strip().lower() in ("", "none") else value.strip()
    return out


def resolve_unsets(stored: Mapping[str, Any], changes: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(``stored`` without the keys ``changes`` unsets, ``changes`` without them): a None in ``changes``
    (``key=none``, ``key=``) for a setting that cannot be None (``retention.retain``, ``compaction.zorder``) or
    an entry of a mapping (``tiering.storage_classes.cold``) means: drop the stored value, so the layers below
    (the operator's settings, the defaults) apply. A None for a setting that may be None (``dedup.order``,
    ``autopilot.window``) stays a value: explicitly none.

    >>> resolve_unsets({"retention": {"retain": "3d", "orphan_age": "1d"}}, {"retention": {"retain": None}})
    ({'retention': {'orphan_age': '1d'}}, {})
    >>> resolve_unsets({}, {"dedup": {"order": None}})
    ({}, {'dedup': {'order': None}})
    """
    import copy
    import typing

    kept = copy.deepcopy(dict(stored))
    rest: dict[str, Any] = {}
    for section, values in changes.items():
        model = TablePolicy.model_fields.get(section)
        if not isinstance(values, Mapping) or model is None:
            rest[section] = values
            continue
        sub = typing.get_args(model.annotation) or (model.annotation,)
        fields = getattr(sub[0], "model_fields", None)
        for key, value in values.items():
            field = fields.get(key) if fields else None
            nullable = field is not None and type(None) in typing.get_args(field.annotation)
            if value is None and not nullable:
                with contextlib.suppress(InvalidInputError):  # not stored: nothing to drop
                    unset(kept, f"{section}.{key}")
                continue
            if isinstance(value, Mapping) and field is not None and typing.get_origin(field.annotation) is dict:
                for entry, v in value.items():
                    if v is None:
                        with contextlib.suppress(InvalidInputError):
                            unset(kept, f"{section}.{key}.{entry}")
                    else:
                        rest.setdefault(section, {}).setdefault(key, {})[entry] = v
                continue
            rest.setdefault(section, {})[key] = value
    return kept, rest


def unset(policy: dict[str, Any], key: str) -> dict[str, Any]:
    """Remove a dotted key from a stored policy (and sections it leaves empty)."""
    parts = key.split(".")
    node: Any = policy
    trail = []
    for p in parts[:-1]:
        if not isinstance(node, dict) or p not in node:
            raise InvalidInputError(f"the stored policy sets no {key}")
        trail.append((node, p))
        node = node[p]
    if not isinstance(node, dict) or parts[-1] not in node:
        raise InvalidInputError(f"the stored policy sets no {key}")
    del node[parts[-1]]
    for parent, p in reversed(trail):
        if not parent[p]:
            del parent[p]
    return policy
