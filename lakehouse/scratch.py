"""Scratch directories in the system's temporary directory, swept when their process is gone.

A job killed by SIGKILL or the OOM killer cannot remove its scratch: DuckDB's spill files (possibly gigabytes),
downloaded manifests. Each scratch directory is named ``lakehouse-<purpose>-<pid>-<random>``; opening one first
removes those whose process no longer exists, so the next job of any kind cleans up after a dead one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

PREFIX = "lakehouse-"


def sweep(root: str | None = None) -> list[str]:
    """Remove the scratch directories under ``root`` (default: the temporary directory) whose process is gone.

    A directory of a living process, of another user, or not named ``lakehouse-<purpose>-<pid>-...`` is left
    alone (a reused pid keeps a dead job's directory until that process ends too: never a living one's removed).
    Returns the directories removed."""
    root = root or tempfile.gettempdir()
    removed: list[str] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        parts = entry.name.split("-")
        if not entry.name.startswith(PREFIX) or len(parts) < 4 or not parts[2].isdigit():
            continue
        pid = int(parts[2])
        try:
            if pid <= 0 or pid == os.getpid() or not entry.is_dir(follow_symlinks=False):
                continue
            if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
            os.kill(pid, 0)  # raises ProcessLookupError when no such process exists
        except ProcessLookupError:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
        except OSError:
            continue  # alive but not ours to signal, or gone from under us
    return removed


def make_scratch(purpose: str) -> str:
    """A new scratch directory for ``purpose`` (letters only), after sweeping dead jobs' ones; the caller removes it."""
    if not purpose.isalpha():
        raise ValueError(f"a scratch purpose is letters only, not {purpose!r}")
    sweep()
    return tempfile.mkdtemp(prefix=f"{PREFIX}{purpose}-{os.getpid()}-")


@contextlib.contextmanager
def scratch_directory(purpose: str) -> Iterator[str]:
    """A scratch directory for the block, removed after it (see :func:`make_scratch`)."""
    path = make_scratch(purpose)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
