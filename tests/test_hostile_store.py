"""Hostile machine states around the run folder (issue 28): planted links and a disk with 0 bytes free.

A link planted in the run folder must never be followed when the store sweeps, deletes or
writes; a full disk anywhere the store writes (the lock's pid included) is one line.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import pytest
import yaml

from pipeline.cli import main
from pipeline.errors import OutputError
from pipeline.stages import STAGE_NAMES
from pipeline.store import ArtifactStore


@pytest.fixture(autouse=True)
def no_network(network_off):
    """Tests run with the network off (conftest.block_network)."""


@pytest.fixture
def store(tmp_path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "run", tmp_path / "cache", STAGE_NAMES)


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder outside the run holding what looks like a run's leftovers and a stage marker."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / ".x.tmp").write_text("not the run's")
    (folder / "_stage.json").write_text("not the run's")
    (folder / "keep.txt").write_text("not the run's")
    return folder


def untouched(folder: Path) -> bool:
    return sorted(path.name for path in folder.iterdir()) == [".x.tmp", "_stage.json", "keep.txt"] and all(
        path.read_text() == "not the run's" for path in folder.iterdir()
    )


def write_config(tmp_path: Path) -> Path:
    (tmp_path / "papers.csv").write_text(
        "title,abstract\n"
        "Graph neural networks for molecules,We learn molecular properties with message passing\n"
        "Diffusion models for images,We denoise images step by step with a learned score\n"
    )
    raw = {"name": "run", "output_dir": str(tmp_path / "out"), "inputs": [str(tmp_path / "papers.csv")]}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


# -- item 1: links planted in the run folder ---------------------------------------------------------
def test_a_run_until_parse_leaves_a_linked_stage_folders_files_alone(tmp_path, outside, capsys):
    config = write_config(tmp_path)
    run_dir = tmp_path / "out" / "run"
    run_dir.mkdir(parents=True)
    embed_dir = ArtifactStore(run_dir, tmp_path / "out" / ".cache", STAGE_NAMES).stage_dir("embed")
    embed_dir.symlink_to(outside, target_is_directory=True)
    assert main(["run", str(config), "--until", "parse"]) == 0, capsys.readouterr().err
    assert untouched(outside)  # the sweep deleted .x.tmp through the link
    assert embed_dir.is_symlink()


def test_a_linked_stage_folder_is_never_trusted_written_or_cleared(store, outside):
    store.run_dir.mkdir(parents=True)
    embed_dir = store.stage_dir("embed")
    embed_dir.symlink_to(outside, target_is_directory=True)
    assert store.finished("embed") is None
    linked = re.escape(f"{embed_dir.name}: is a symbolic link")
    with pytest.raises(OutputError, match=linked + "; a stage folder must be a plain folder"):
        store.invalidate("embed")  # would delete outside/_stage.json
    with pytest.raises(OutputError, match=linked):
        store.save_stage("embed", "key", {"embeddings.npy": b"x"}, 0.1, {})
    assert untouched(outside)
    # A plain stage folder beside it is written as always.
    store.save_stage("parse", "key", {"papers.parquet": b"x"}, 0.1, {})
    assert store.finished("parse") is not None


def test_the_sweep_follows_no_link_to_a_folder_or_a_file(store, outside, tmp_path):
    store.run_dir.mkdir(parents=True)
    victim = tmp_path / "precious.tmp"
    victim.write_text("not the run's")
    (store.run_dir / ".report-staging-12345678").symlink_to(outside, target_is_directory=True)
    (store.run_dir / ".topics.old-12345678").symlink_to(outside, target_is_directory=True)
    (store.run_dir / ".papers.csv.12345678.tmp").symlink_to(victim)
    parse_dir = store.stage_dir("parse")
    parse_dir.mkdir()
    (parse_dir / ".papers.parquet.1234abcd.tmp").write_bytes(b"half")  # a real leftover
    (store.run_dir / ".report-staging-abcdef01").mkdir()  # and a real staging folder, with a link inside
    (store.run_dir / ".report-staging-abcdef01" / "out").symlink_to(outside, target_is_directory=True)
    with store.lock():
        pass
    assert untouched(outside) and victim.read_text() == "not the run's"
    assert not (parse_dir / ".papers.parquet.1234abcd.tmp").exists()
    assert not (store.run_dir / ".report-staging-abcdef01").exists()
    assert all((store.run_dir / name).is_symlink() for name in (".report-staging-12345678", ".topics.old-12345678"))


def test_a_report_folder_that_is_a_link_is_replaced_without_touching_its_target(store, outside):
    store.run_dir.mkdir(parents=True)
    (store.run_dir / "topics").symlink_to(outside, target_is_directory=True)
    store.publish_report({"index.html": b"new", "topics/01-a.html": b"new"})
    topics = store.run_dir / "topics"
    assert not topics.is_symlink() and (topics / "01-a.html").read_bytes() == b"new"
    assert untouched(outside)
    assert sorted(path.name for path in store.run_dir.iterdir() if path.name.startswith(".")) == []


def test_a_file_behind_a_linked_report_folder_is_never_linked_into_the_report(store, outside):
    # The old report's topics/ is a link to a folder outside the run holding the very bytes of a new
    # file: the new report gets its own copy, never a second name of the outside file.
    store.run_dir.mkdir(parents=True)
    (store.run_dir / "topics").symlink_to(outside, target_is_directory=True)
    store.publish_report({"topics/keep.txt": b"not the run's"})
    published = store.run_dir / "topics" / "keep.txt"
    assert published.read_bytes() == b"not the run's"
    assert published.stat().st_ino != (outside / "keep.txt").stat().st_ino and published.stat().st_nlink == 1
    assert untouched(outside)


def test_a_report_folder_that_is_a_dangling_link_is_replaced(store, tmp_path):
    store.run_dir.mkdir(parents=True)
    (store.run_dir / "topics").symlink_to(tmp_path / "gone", target_is_directory=True)
    store.publish_report({"topics/01-a.html": b"new"})
    assert (store.run_dir / "topics" / "01-a.html").read_bytes() == b"new"


# -- item 8: a disk with 0 bytes free -------------------------------------------------------------------
def no_space_for_the_lock(monkeypatch) -> None:
    """Writing the lock's pid fails as on a disk with 0 bytes free (creating the empty file still works)."""
    real_write = os.write

    def write(descriptor, data):
        if os.readlink(f"/proc/self/fd/{descriptor}").endswith("/.lock"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(descriptor, data)

    monkeypatch.setattr(os, "write", write)


def test_no_space_for_the_lock_is_the_full_disk_line(store, monkeypatch):
    no_space_for_the_lock(monkeypatch)
    with pytest.raises(OutputError) as caught:
        with store.lock():
            pass
    assert str(caught.value) == (
        f"{store.run_dir / '.lock'}: cannot write the output (No space left on device); free some space and run again"
    )
    assert not (store.run_dir / ".lock").exists()  # nothing left to block the next run
    monkeypatch.undo()
    with store.lock():
        assert (store.run_dir / ".lock").read_text() == str(os.getpid())


def test_a_run_on_a_disk_with_0_bytes_free_prints_one_line(tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path)
    no_space_for_the_lock(monkeypatch)
    assert main(["run", str(config)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.strip()] == [
        f"error: {tmp_path}/out/run/.lock: cannot write the output (No space left on device); "
        "free some space and run again"
    ]
