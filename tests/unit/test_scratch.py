"""Scratch directories of dead processes are swept; those of living ones, other names and other users are not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lakehouse.scratch import make_scratch, scratch_directory, sweep


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # reaped: no process of that pid exists (until the kernel reuses it)


def test_sweep_removes_only_the_scratch_of_processes_that_are_gone(tmp_path: Path) -> None:
    dead = _dead_pid()
    gone = tmp_path / f"lakehouse-spill-{dead}-abc"
    (gone / "nested").mkdir(parents=True)
    (gone / "nested" / "spill.tmp").write_bytes(b"x" * 1024)
    kept = {
        tmp_path / f"lakehouse-spill-{os.getppid()}-abc": "a living process (this one's parent)",
        tmp_path / f"lakehouse-spill-{os.getpid()}-abc": "this process",
        tmp_path / "lakehouse-spill-notapid-abc": "no pid in the name",
        tmp_path / f"other-spill-{dead}-abc": "not lakehouse's",
        tmp_path / f"lakehouse-spill-{dead}": "no random part: not a name lakehouse makes",
    }
    for path in kept:
        path.mkdir()
    (tmp_path / f"lakehouse-avro-{dead}-file").write_text("a file, not a directory")

    assert sweep(str(tmp_path)) == [str(gone)]
    assert not gone.exists()
    for path, why in kept.items():
        assert path.exists(), why
    assert (tmp_path / f"lakehouse-avro-{dead}-file").exists()


def test_a_scratch_directory_is_named_after_its_process_and_removed_after_its_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / f"lakehouse-dedup-{_dead_pid()}-xyz"
    stale.mkdir()
    with scratch_directory("spill") as path:
        assert Path(path).parent == tmp_path and Path(path).name.startswith(f"lakehouse-spill-{os.getpid()}-")
        assert not stale.exists(), "opening a scratch directory swept the dead job's"
        Path(path, "f").write_text("x")
    assert not Path(path).exists()
    with pytest.raises(ValueError, match="letters only"):
        make_scratch("spill-1")
