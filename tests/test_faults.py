"""Faults (issue 4): runs killed with SIGKILL, two runs on one folder, a full disk or an unwritable output folder.

The kill tests run the CLI in child processes on the 23-paper seed page and compare the
resumed run's CSVs byte for byte with an uninterrupted run's. The children share a copy
of that run's embedding cache and label without MMR, so none of them loads the model.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from conftest import block_network

from pipeline.cli import main
from pipeline.stages import STAGE_NAMES
from pipeline.store import STAGE_MARKER, ArtifactStore

ROOT = Path(__file__).resolve().parents[1]
SEED_PAGE = ROOT / "data" / "samples" / "000_6472a1053a30b6b0.txt"
CHILD_TIMEOUT = 300

# Loaded by every child process (-c): the network is off there too.
NO_NETWORK = """
import socket
def _refuse(*_args, **_kwargs):
    raise OSError("network access is switched off in the tests")
socket.socket.connect = socket.socket.connect_ex = _refuse
socket.getaddrinfo = socket.create_connection = _refuse
"""

# Runs the CLI and SIGKILLs itself right after the N-th file is renamed into a folder: inside
# a stage's save (outputs written, marker not yet), in the embedding cache, or halfway
# through swapping in the report's files.
KILL_AT_RENAME = NO_NETWORK + textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path

    folder, count, config = Path(sys.argv[1]).resolve(), int(sys.argv[2]), sys.argv[3]
    real_replace, seen = os.replace, []

    def replace(source, target, *args, **kwargs):
        real_replace(source, target, *args, **kwargs)
        if Path(target).resolve().parent == folder:
            seen.append(target)
            if len(seen) == count:
                os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace
    from pipeline.cli import main
    sys.exit(main(["run", config]))
    """
)


@pytest.fixture(autouse=True)
def no_network(network_off):
    """Tests run with the network off (conftest.block_network)."""


def write_config(folder: Path, name: str, output_dir: Path) -> Path:
    # Keywords without MMR: the label stage then needs no model, so each child process starts faster.
    raw = {"name": name, "output_dir": str(output_dir), "inputs": [str(SEED_PAGE)], "label": {"representation": "none"}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def report_csvs(run_dir: Path) -> dict[str, bytes]:
    """papers.csv, topics.csv and every per-topic CSV of a run, by relative path."""
    return {path.relative_to(run_dir).as_posix(): path.read_bytes() for path in sorted(run_dir.rglob("*.csv"))
            if not any(part.startswith(".") for part in path.relative_to(run_dir).parts)}  # fmt: skip


def report_files(run_dir: Path) -> dict[str, bytes]:
    """Every file of the published report (pages, CSVs, assets), by relative path."""
    listing = ArtifactStore(run_dir, run_dir.parent / ".cache", STAGE_NAMES).read_json("report", "published.json")
    return {name: (run_dir / name).read_bytes() for name in listing}


def stage_dir(run_dir: Path, stage: str) -> Path:
    """A stage's folder, as the store names it."""
    return ArtifactStore(run_dir, run_dir.parent / ".cache", STAGE_NAMES).stage_dir(stage)


def finished_stages(run_dir: Path) -> set[str]:
    store = ArtifactStore(run_dir, run_dir.parent / ".cache", STAGE_NAMES)
    return {stage for stage in STAGE_NAMES if (store.stage_dir(stage) / STAGE_MARKER).is_file()}


def leftovers(run_dir: Path) -> list[str]:
    """Temporary files and staging or retired folders that a finished run must not leave behind."""
    return sorted(
        path.relative_to(run_dir).as_posix()
        for path in run_dir.rglob(".*")
        if path.name.endswith(".tmp") or path.name.startswith(".report-staging-") or ".old-" in path.name
    )


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


# -- two runs at once --------------------------------------------------------------------------
HOLD_LOCK = NO_NETWORK + textwrap.dedent(
    """
    import sys, time
    from pipeline.store import ArtifactStore
    from pipeline.stages import STAGE_NAMES
    with ArtifactStore(sys.argv[1], sys.argv[1] + "/.cache", STAGE_NAMES).lock():
        print("locked", flush=True)
        time.sleep(120)
    """
)


def test_second_run_is_refused_while_the_first_is_alive_and_a_dead_ones_lock_does_not_block(tmp_path, capsys):
    config = write_config(tmp_path, "busy", tmp_path / "out")
    run_dir = tmp_path / "out" / "busy"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(run_dir)], stdout=subprocess.PIPE, text=True, env=child_env()
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["run", str(config), "--until", "parse"]) == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert lines == [
            f"error: {run_dir}: another papertopics run (pid {holder.pid}) is writing here; "
            "wait for it to finish or use another output folder"
        ]
        assert "Traceback" not in err
        assert not stage_dir(run_dir, "parse").exists()  # the refused run did no work
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    # The killed holder could not clean up: its lock file, with its pid, is still there. It blocks nothing.
    assert (run_dir / ".lock").read_text() == str(holder.pid)
    assert main(["run", str(config), "--until", "parse"]) == 0
    assert finished_stages(run_dir) == {"parse"}
    assert not (run_dir / ".lock").exists()


def test_lock_file_with_garbage_or_a_live_stranger_pid_does_not_block(tmp_path):
    store = ArtifactStore(tmp_path / "run", tmp_path / ".cache", STAGE_NAMES)
    store.run_dir.mkdir()
    # Only a process holding the lock blocks: a pid written by someone else (here pid 1, alive) does not.
    for content in ("", "not a pid", "1"):
        (store.run_dir / ".lock").write_text(content)
        with store.lock():
            assert (store.run_dir / ".lock").read_text() == str(os.getpid())


# -- a full disk or an unwritable output folder -------------------------------------------------
def test_output_folder_that_cannot_be_created_is_one_line(tmp_path, capsys):
    (tmp_path / "out").write_text("a file where the output folder should be")
    config = write_config(tmp_path, "blocked", tmp_path / "out")
    assert main(["run", str(config)]) == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: {tmp_path}/out/blocked: cannot write the output (Not a directory)"
    ]
    assert "Traceback" not in err


def write_to_dev_full(patch: pytest.MonkeyPatch, where: str) -> None:
    """Every file the store writes whose path contains ``where`` goes to /dev/full: ENOSPC from the kernel."""
    real_open = os.open

    # The store opens its temporary files with os.open (O_EXCL | O_NOFOLLOW), then writes through the descriptor.
    def fake_open(path, flags, *args, **kwargs):
        if where in str(path) and flags & (os.O_WRONLY | os.O_RDWR):
            return real_open("/dev/full", os.O_WRONLY)
        return real_open(path, flags, *args, **kwargs)

    patch.setattr(os, "open", fake_open)


# -- runs on the seed page: uninterrupted, disk full, killed --------------------------------------
@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    """An uninterrupted CLI run of the seed page, in its own output folder."""
    tmp_path = tmp_path_factory.mktemp("baseline")
    config = write_config(tmp_path, "page", tmp_path / "out")
    with pytest.MonkeyPatch.context() as patch:  # the autouse fixture is function-scoped
        block_network(patch)
        assert main(["run", str(config)]) == 0
    run_dir = tmp_path / "out" / "page"
    assert leftovers(run_dir) == []
    return run_dir


@pytest.mark.slow
def test_same_config_twice_gives_byte_identical_csvs(baseline, tmp_path):
    """The baseline's config again, every stage recomputed (--force), in a copy of its folder: the same bytes."""
    out = tmp_path / "out"
    shutil.copytree(baseline.parent / ".cache", out / ".cache")
    shutil.copytree(baseline, out / "page")
    for name in report_csvs(out / "page"):  # so that every CSV compared below was written by this run
        (out / "page" / name).unlink()
    config = write_config(tmp_path, "page", out)
    assert main(["run", str(config), "--force"]) == 0
    manifest = json.loads((out / "page" / "manifest.json").read_text())
    assert {record["status"] for record in manifest["stages"].values()} == {"computed"}
    again = report_csvs(out / "page")
    assert again == report_csvs(baseline)
    assert {"papers.csv", "topics.csv"} < set(again) and any(name.startswith("topics/") for name in again)


@pytest.mark.slow
def test_disk_full_keeps_the_previous_report_and_the_next_run_completes(baseline, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(baseline.parent / ".cache", out / ".cache")
    shutil.copytree(baseline, out / "page")
    run_dir = out / "page"
    config = write_config(tmp_path, "page", out)
    before = report_files(run_dir)

    # The disk fills up while the label stage saves its outputs.
    with pytest.MonkeyPatch.context() as fault:
        write_to_dev_full(fault, stage_dir(run_dir, "label").name)
        assert main(["run", str(config), "--force", "label"]) == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: {stage_dir(run_dir, 'label')}/assignments.parquet: cannot write the output (No space left on device); "
        "free some space and run again"
    ]
    assert report_files(run_dir) == before
    assert "label" not in finished_stages(run_dir)

    # Then while the new report is written beside the old one.
    with pytest.MonkeyPatch.context() as fault:
        write_to_dev_full(fault, ".report-staging-")
        # The label outputs came out the same, so the report would be reused: force it.
        assert main(["run", str(config), "--force", "report"]) == 2
    line = next(line for line in capsys.readouterr().err.splitlines() if line.startswith("error:"))
    assert line.startswith(f"error: {run_dir}: cannot write the new report (No space left on device at ")
    assert line.endswith("; free some space and run again; the previous report is left as it was")
    assert report_files(run_dir) == before
    assert leftovers(run_dir) == []

    # With space again the run completes, reusing what was finished, with the same CSVs.
    assert main(["run", str(config)]) == 0
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert {stage: record["status"] for stage, record in manifest["stages"].items()} == {
        "parse": "reused",
        "embed": "reused",
        "cluster": "reused",
        "label": "reused",
        "report": "computed",
    }
    assert report_csvs(run_dir) == report_csvs(baseline)


# Where each child is killed: (stage, whose folder's renames are counted (the stage's, or "." for the
# run folder), kill after the N-th rename). The cluster child is killed from outside instead, as soon
# as the stage has started.
KILL_POINTS = [
    ("parse", "parse", 1),  # papers.parquet written, file_reports.json and the marker not
    ("embed", "embed", 1),  # embeddings.npy written, the marker not
    ("cluster", None, 0),  # SIGKILL from the test process while UMAP runs
    ("label", "label", 2),  # assignments and topics written, not the rest
    ("report", ".", 3),  # three of the report's top-level files swapped in, the rest still in staging
]


@pytest.mark.slow
def test_run_killed_during_each_stage_resumes_to_the_same_outputs(baseline, tmp_path):
    """One child per stage, each SIGKILLed inside that stage; each resumes the last one's work.

    The embedding cache is the baseline's, so no child loads the model; the resumed run must
    give the uninterrupted run's CSVs byte for byte.
    """
    out = tmp_path / "out"
    shutil.copytree(baseline.parent / ".cache", out / ".cache")
    config = write_config(tmp_path, "page", out)
    run_dir = out / "page"
    for stage, folder, count in KILL_POINTS:
        if folder is None:
            _kill_from_outside(config, run_dir, started=stage_dir(run_dir, "embed") / STAGE_MARKER)
        else:
            target = run_dir if folder == "." else stage_dir(run_dir, folder)
            child = subprocess.run(
                [sys.executable, "-c", KILL_AT_RENAME, str(target), str(count), str(config)],
                env=child_env(), capture_output=True, text=True, timeout=CHILD_TIMEOUT, cwd=tmp_path,
            )  # fmt: skip
            assert child.returncode == -signal.SIGKILL, (stage, child.returncode, child.stderr[-2000:])
        assert stage not in finished_stages(run_dir), stage  # killed before its marker: never trusted
        assert not (run_dir / "manifest.json").exists()
    assert leftovers(run_dir)  # the report child left its staging folder behind
    assert main(["run", str(config)]) == 0
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert {name: record["status"] for name, record in manifest["stages"].items()} == {
        "parse": "reused",
        "embed": "reused",
        "cluster": "reused",
        "label": "reused",  # the report child finished label before it died
        "report": "computed",
    }
    assert report_csvs(run_dir) == report_csvs(baseline)
    assert set(report_files(run_dir)) == set(report_files(baseline))
    assert leftovers(run_dir) == []


def _kill_from_outside(config: Path, run_dir: Path, started: Path) -> None:
    """Start ``python -m pipeline run`` and SIGKILL it as soon as ``started`` exists."""
    child = subprocess.Popen(
        [sys.executable, "-c", NO_NETWORK + f"from pipeline.cli import main; main(['run', {str(config)!r}])"],
        env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=config.parent,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + CHILD_TIMEOUT
        while not started.exists() and child.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL  # killed, not finished or failed on its own
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
