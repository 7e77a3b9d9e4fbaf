"""Atomic result writes (``interp.report.atomic_write``): a crash mid-write never leaves a
half-written file, and the data reach the disk before the rename."""

from __future__ import annotations

import os

import pytest

from interp import report


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "result.json"
    report.write_json({"a": 1}, path)

    def crash(tmp):
        with open(tmp, "w") as f:
            f.write('{"a": 2, "half')
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        report.atomic_write(path, crash)
    assert path.read_text() == '{\n  "a": 1\n}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_the_file_and_its_folder_are_fsynced_around_the_rename(tmp_path, monkeypatch):
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync " + ("dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file"))
        real_fsync(fd)

    def replace(a, b):
        events.append("rename")
        real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    report.write_text("hello", tmp_path / "x.txt")
    assert events == ["fsync file", "rename", "fsync dir"]
    assert (tmp_path / "x.txt").read_text() == "hello"
