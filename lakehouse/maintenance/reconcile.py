"""Storage reconciliation: every byte under a table's location, accounted for.

One listing of the location, set against what the table's metadata references, sorts each object into exactly
one class, so that the classes add up to the bytes on storage (the identity tests check):

==============  =========================================================================  =====================
class           what                                                                       removed by
==============  =========================================================================  =====================
current         data files of the current version                                          (never)
retained        data files only older versions still readable reference                     vacuum, once expired
expired         data files only versions retention expired reference (still on storage)     vacuum
metadata        the format's metadata the table needs: Delta's log and checkpoints,          vacuum trims it to
                Iceberg's metadata files, manifest lists and manifests of readable versions  the retention window
unaccounted     everything else: orphans of failed or killed jobs, leaked files, stale       orphans (when older
                metadata (manifests of expired snapshots, metadata files the log dropped)    than the orphan age)
==============  =========================================================================  =====================

``unaccounted`` is split further: ``removable`` (files the format's garbage rule allows removing, older than the
orphan age: what ``lakehouse orphans`` deletes), ``young`` (the same, younger: possibly a write in flight) and
``kept`` (files no rule of ours removes: hidden directories such as ``_change_data``, deletion vectors, other
tables nested inside the location). Files a table references outside its location (Iceberg's ``add_files``)
are not on this listing and are reported apart, as ``external``.

After ``vacuum --retain 0s --apply`` and ``orphans --older-than 0s --apply`` the bytes on storage are the
current version's plus its metadata, on both formats.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakehouse.units import format_duration, parse_duration

if TYPE_CHECKING:
    from lakehouse.storage import ObjectInfo
    from lakehouse.workspace import Workspace

CLASSES = ("current", "retained", "expired", "metadata", "unaccounted")
UNACCOUNTED = ("removable", "young", "kept")


@dataclass
class Tally:
    files: int = 0
    bytes: int = 0

    def add(self, o: ObjectInfo) -> None:
        self.files += 1
        self.bytes += o.size

    def as_dict(self) -> dict[str, int]:
        return {"files": self.files, "bytes": self.bytes}


@dataclass
class Reconciliation:
    table: str
    format: str
    location: str
    orphan_age: str
    classes: dict[str, Tally] = field(default_factory=lambda: {c: Tally() for c in CLASSES})
    unaccounted: dict[str, Tally] = field(default_factory=lambda: {c: Tally() for c in UNACCOUNTED})
    external: Tally = field(default_factory=Tally)
    examples: dict[str, list[str]] = field(default_factory=dict)
    """Up to five paths per unaccounted kind, to look at."""

    @property
    def on_storage(self) -> Tally:
        return Tally(sum(t.files for t in self.classes.values()), sum(t.bytes for t in self.classes.values()))

    @property
    def reclaimable_bytes(self) -> int:
        """What vacuum and orphans would remove now (expired files and old unaccounted files)."""
        return self.classes["expired"].bytes + self.unaccounted["removable"].bytes

    def as_dict(self) -> dict[str, Any]:
        total = self.on_storage
        return {
            "table": self.table,
            "format": self.format,
            "location": self.location,
            "on_storage": total.as_dict(),
            **{name: t.as_dict() for name, t in self.classes.items()},
            "unaccounted_detail": {name: t.as_dict() for name, t in self.unaccounted.items()},
            "unaccounted_examples": self.examples,
            "external": self.external.as_dict(),
            "reclaimable_bytes": self.reclaimable_bytes,
            "orphan_age": self.orphan_age,
        }


def reconcile(lh: Workspace, name: str, *, orphan_age: str | None = None) -> Reconciliation:
    """Account for every object under ``name``'s location (one listing, the metadata read once; on S3 the listing
    is made while the metadata is read)."""
    from lakehouse.storage import shared_listings

    with shared_listings():
        return _reconcile(lh, name, orphan_age=orphan_age)


def _reconcile(lh: Workspace, name: str, *, orphan_age: str | None, every_version: bool = False) -> Reconciliation:
    """``every_version``: read what every version names even where the current version's files and the
    table's metadata account for every object listed (the tests compare both ways)."""
    from lakehouse.maintenance.retention import _checked_listing, _nested_locations
    from lakehouse.storage import prefetch_listing

    table = lh.table(name)
    age = parse_duration(orphan_age or lh.policy(table.name).retention.orphan_age)
    out = Reconciliation(str(table.name), table.format, table.location, format_duration(age))
    root = table.location.rstrip("/") + "/"
    current = {f.path: f.size_bytes for f in table.files()}  # none for a table without versions
    # listed after the current files were read (a commit meanwhile is no disagreement), in the background while
    # the versions' metadata is read (S3: thousands of manifest or log reads overlap the listing's pages)
    prefetch_listing(table.location, table.ctx, known=list(current))
    snaps = table.snapshots()
    expired_versions = table.expired.versions if table.expired else frozenset()
    readable = {s.version for s in snaps if s.version not in expired_versions}
    head = table.snapshot().version if snaps else None
    # the current version's own files besides its data files: Iceberg's delete files, Delta's deletion vectors
    live = table.version_paths({head}) if head is not None else set()
    # A history of appends only (Iceberg: each snapshot an append onto the one before) names no data file the
    # current version does not: the versions' manifest lists (named by the table's metadata) and the current
    # version's files account for everything but a manifest an older version alone kept. Every version's
    # manifests (1,000 versions of fast appends: 1,000 manifest lists of 500,500 entries) are then read only
    # when the listing holds an object nothing read so far accounts for and that some version could name.
    lazy = not every_version and head in readable and table.appends_only()
    roots: set[str] = set()
    if lazy:
        roots = table.version_roots(readable)
        retained = tracked = live | roots
    else:
        retained = table.version_paths(readable) if readable else set()
        tracked = table.version_paths(None) if snaps else set()
    metadata = table.metadata_paths()
    listing = _checked_listing(lh, table)
    accounted = (current, metadata, retained)
    listed = {o.path for o in listing}
    if lazy and (
        any(all(o.path not in k for k in accounted) and table.may_be_version_path(o.path) for o in listing)
        # a version's manifest list gone from storage: reading every version says which version cannot be read
        or any(p.startswith(root) and p not in listed for p in roots)
    ):
        retained = table.version_paths(readable)
        tracked = table.version_paths(None)
    nested = _nested_locations(lh, table, listing)
    now = time.time()
    for o in listing:
        if o.path in current:
            kind = "current"
        elif o.path in metadata or (o.path in retained and table.is_metadata(o.path)):
            kind = "metadata"
        elif o.path in live:
            kind = "current"
        elif o.path in retained:
            kind = "retained"
        elif o.path in tracked and not table.is_metadata(o.path):
            kind = "expired"
        else:
            kind = "unaccounted"
            if any(o.path.startswith(n) for n in nested) or not table.garbage_candidate(o.path):
                sub = "kept"
            elif o.mtime_s is not None and now - o.mtime_s >= age.total_seconds():
                sub = "removable"
            else:
                sub = "young"
            out.unaccounted[sub].add(o)
            examples = out.examples.setdefault(sub, [])
            if len(examples) < 5:
                examples.append(o.path)
        out.classes[kind].add(o)
    for path, size in current.items():
        if not path.startswith(root):
            out.external.files += 1
            out.external.bytes += size
    return out
