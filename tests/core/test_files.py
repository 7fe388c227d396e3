"""Atomic writes: the target holds the old content or the new one, never part of either."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devis_core.toolkit.files import atomic_directory, atomic_path, atomic_write_text


class Boom(Exception):
    pass


def test_the_written_content_is_complete_and_nothing_else_is_left(tmp_path: Path) -> None:
    target = tmp_path / "table.json"
    target.write_text("old")
    text = "".join(f"line {i}\n" for i in range(10_000))
    atomic_write_text(target, text)
    assert target.read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["table.json"]


def test_the_target_keeps_its_old_content_until_the_block_succeeds(tmp_path: Path) -> None:
    target = tmp_path / "scores.json"
    target.write_text("old")
    with atomic_path(target) as staging:
        staging.write_text("half of the new")
        assert target.read_text() == "old"  # a reader meanwhile sees the old file whole
    assert target.read_text() == "half of the new"


def test_an_exception_inside_the_block_keeps_the_old_file_and_removes_the_staging_one(
    tmp_path: Path,
) -> None:
    target = tmp_path / "scores.json"
    target.write_text("old")
    with pytest.raises(Boom), atomic_path(target) as staging:
        staging.write_text("half")
        raise Boom
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.json"]


def test_a_failure_before_anything_was_written_leaves_no_target(tmp_path: Path) -> None:
    target = tmp_path / "new.txt"
    with pytest.raises(Boom), atomic_path(target):
        raise Boom
    assert list(tmp_path.iterdir()) == []


def test_the_staging_file_lives_beside_the_target_with_its_suffix(tmp_path: Path) -> None:
    target = tmp_path / "plots" / "psnr.png"
    target.parent.mkdir()
    with atomic_path(target) as staging, atomic_path(target) as other:
        assert staging.parent == target.parent  # same filesystem: the rename is atomic
        assert staging.suffix == ".png"  # writers that pick the format from it still can
        assert staging.name.startswith(".")
        assert staging != other  # concurrent writers of one target do not share a file
        staging.write_text("one")
        other.write_text("two")
    assert target.read_text() == "one"  # the outer block finished last


def test_the_file_is_synced_before_the_rename_and_the_directory_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, int]] = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(descriptor: int) -> None:
        events.append(("fsync", os.fstat(descriptor).st_ino))
        fsync(descriptor)

    def recording_replace(source: Path, destination: Path) -> None:
        events.append(("replace", os.stat(source).st_ino))
        replace(source, destination)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    target = tmp_path / "latest"
    atomic_write_text(target, "round-00002")
    file = target.stat().st_ino  # a rename keeps the inode
    expected = [("fsync", file), ("replace", file)]
    if os.name == "posix":
        expected.append(("fsync", tmp_path.stat().st_ino))
    assert events == expected


def test_a_directory_replaces_the_old_one_whole(tmp_path: Path) -> None:
    target = tmp_path / "round-00002"
    target.mkdir()
    (target / "stale.bin").write_text("from an earlier save")
    with atomic_directory(target) as staging:
        assert staging.parent == tmp_path
        (staging / "state.pt").write_text("state")
        (staging / "lora.safetensors").write_text("lora")
        assert (target / "stale.bin").exists()  # the old directory stays until the end
    assert sorted(p.name for p in target.iterdir()) == ["lora.safetensors", "state.pt"]
    assert [p.name for p in tmp_path.iterdir()] == ["round-00002"]


def test_a_failed_directory_write_keeps_the_old_one_and_leaves_no_staging(tmp_path: Path) -> None:
    target = tmp_path / "round-00002"
    target.mkdir()
    (target / "state.pt").write_text("old")
    with pytest.raises(Boom), atomic_directory(target) as staging:
        (staging / "state.pt").write_text("half")
        raise Boom
    assert (target / "state.pt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["round-00002"]


def test_the_leftover_of_a_killed_directory_write_is_cleared_by_the_next(tmp_path: Path) -> None:
    target = tmp_path / "round-00003"
    with atomic_directory(target) as staging:
        leftover = staging
    leftover.mkdir()  # what a save killed mid-way leaves behind
    (leftover / "lora.safetensors").write_text("half")
    with atomic_directory(target) as staging:
        assert staging == leftover
        assert list(staging.iterdir()) == []
        (staging / "state.pt").write_text("state")
    assert [p.name for p in target.iterdir()] == ["state.pt"]
    assert [p.name for p in tmp_path.iterdir()] == ["round-00003"]
