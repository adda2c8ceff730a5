"""Hostile input and machine faults of issue 14.

Planted links, out-of-range and coerced settings, unbounded messages, late checks, empty
days, odd parse details and report publishing.
"""

from __future__ import annotations

import uuid

import pytest

from pipeline.errors import OutputError
from pipeline.store import ArtifactStore, atomic_write_bytes


@pytest.fixture
def store(tmp_path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "run", tmp_path / "cache")


# -- item 5: links planted where the store writes ------------------------------------------------
def test_lock_that_is_a_link_is_refused_and_its_target_left_alone(store, tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("do not touch")
    store.run_dir.mkdir(parents=True)
    (store.run_dir / ".lock").symlink_to(victim)
    with pytest.raises(OutputError, match=r"\.lock: is a symbolic link; the run lock must be a plain file"):
        with store.lock():
            pass
    assert victim.read_text() == "do not touch"
    assert (store.run_dir / ".lock").is_symlink()  # left for the user to look at


def test_temporary_name_taken_by_a_link_is_refused_and_its_target_left_alone(tmp_path, monkeypatch):
    victim = tmp_path / "precious.txt"
    victim.write_text("do not touch")
    folder = tmp_path / "run"
    folder.mkdir()
    fixed = uuid.UUID("12345678123456781234567812345678")
    monkeypatch.setattr("pipeline.store.uuid.uuid4", lambda: fixed)
    (folder / ".papers.csv.12345678.tmp").symlink_to(victim)
    with pytest.raises(OutputError, match=r"\.papers\.csv\.12345678\.tmp: something already has this temporary name"):
        atomic_write_bytes(folder / "papers.csv", b"new")
    assert victim.read_text() == "do not touch"
    assert not (folder / "papers.csv").exists()
