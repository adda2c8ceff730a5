"""The run's history (pipeline.state): it survives every failure, and a damaged file is never a silent reset.

A small feed made from the seed pages: their 64 papers split into 8 daily pages in the seed
format (``2026-02-01.txt`` ... with a "Feb 1" date line). The base run reads days 1-7; the
update adds day 8. Each scenario starts from a copy of the base run's output folder, so a
run costs seconds (its vectors are cached there).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config import load_config
from pipeline.errors import StateDamagedError
from pipeline.parse.hf_pages import looks_like_title
from pipeline.runner import run_pipeline
from pipeline.stages import STAGE_NAMES
from pipeline.state import CURRENT, MANIFEST, generation_numbers, load_state, state_dir
from tests.conftest import SAMPLES
from tests.test_pipeline import make_config

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("parse", "embed", "cluster", "label", "report")
DAYS = 8
# The update path, whatever share of the new day's papers fits no topic: the tests compare runs, not rules.
FEED = {"cluster": {"incremental_max_share": 5.0, "update_drift": 1.0}}
CHROME = (
    "new\n\nGet trending papers in your email inbox!\n\nSubscribe\n\nDaily Papers\n\nbyAK and the research community"
)

pytestmark = pytest.mark.slow


def seed_papers() -> list[str]:
    """The seed pages' papers, each as its page's blocks (title, then abstract paragraphs)."""
    papers: list[str] = []
    for page in sorted(SAMPLES.glob("*.txt")):
        blocks = [block.strip() for block in page.read_text(encoding="utf-8").split("\n\n") if block.strip()]
        start = next(index for index, block in enumerate(blocks) if block in ("Aug 12", "Mar 11")) + 1
        for block in blocks[start:]:
            if looks_like_title(block) or not papers:
                papers.append(block)
            else:
                papers[-1] += "\n\n" + block
    return papers


def daily_pages(folder: Path) -> list[Path]:
    """The seed papers as DAYS daily pages in the seed format, dated 2026-02-01 onwards."""
    folder.mkdir(parents=True, exist_ok=True)
    papers = seed_papers()
    per_day = -(-len(papers) // DAYS)
    pages = []
    for day in range(1, DAYS + 1):
        page = folder / f"2026-02-{day:02d}.txt"
        chunk = papers[(day - 1) * per_day : day * per_day]
        page.write_text(f"{CHROME}\n\nFeb {day}\n\n" + "\n\n".join(chunk) + "\n", encoding="utf-8")
        pages.append(page)
    return pages


def feed_config(out: Path, pages: list[Path], **sections):
    """The feed's config, writing to ``out`` (its yaml beside it)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    path = make_config(out.parent, [str(page) for page in pages], name="feed", **{**FEED, **sections})
    raw = yaml.safe_load(path.read_text())
    raw["output_dir"] = str(out)
    path.write_text(yaml.safe_dump(raw))
    return load_config(path), path


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path: what "byte-identical" compares."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def results(run_dir: Path) -> dict[str, object]:
    """What an update gives: the report's tables and metrics, and the history it committed.

    feed.json's "created" (the wall clock of each run) is left out; everything else is compared whole.
    """
    state = load_state(run_dir, "stop")
    assert state is not None
    carried: dict[str, object] = dict(state.data)
    feed = json.loads(state.data["label/feed.json"])
    for run in feed["runs"]:
        run.pop("created")
    carried["label/feed.json"] = feed
    report = {name: (run_dir / name).read_bytes() for name in ("papers.csv", "topics.csv", "metrics.json")}
    return {**report, **carried, "generation": state.generation.number}


@pytest.fixture(scope="module")
def feed(tmp_path_factory):
    """The base run (days 1-7: generation 1) and an uninterrupted update (day 8: generation 2)."""
    root = tmp_path_factory.mktemp("feed")
    pages = daily_pages(root / "pages")
    base_config, _ = feed_config(root / "base" / "out", pages[:-1])
    run_pipeline(base_config)
    twin = root / "twin" / "out"
    shutil.copytree(root / "base" / "out", twin)
    twin_config, _ = feed_config(twin, pages)
    result = run_pipeline(twin_config)
    counts = {outcome.stage: outcome.counts for outcome in result.outcomes}
    base = load_state(base_config.run_dir, "stop")
    assert base is not None
    assert counts["cluster"]["incremental"] == counts["cluster"]["papers"] - len(
        base.read_table("label", "assignments.parquet")
    )
    return {"pages": pages, "base": root / "base" / "out", "twin": twin, "twin_run": twin_config.run_dir}


def with_run(stage: str, run) -> tuple:
    """The pipeline's stages with ``stage``'s run function replaced by ``run``."""
    import pipeline.runner as runner

    return tuple(dataclasses.replace(item, run=run) if item.name == stage else item for item in runner.STAGES)


def scenario(feed, tmp_path: Path, source: str = "base", **sections):
    """A copy of the base run's output folder (or the twin's) to break, and the config of the update."""
    out = tmp_path / "out"
    shutil.copytree(feed[source], out)
    return feed_config(out, feed["pages"], **sections)


def test_the_update_is_an_update_and_commits_a_second_generation(feed):
    assert generation_numbers(feed["twin_run"]) == [1, 2]
    state = load_state(feed["twin_run"], "stop")
    assert state is not None and state.generation.parent == 1
    runs = state.read_json("label", "feed.json")["runs"]
    assert [run["run"] for run in runs] == [1, 2]
    assert runs[-1]["new_papers"] == runs[-1]["papers"] - runs[0]["papers"] > 0
    assert state.generation.summary["run"] == 2


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_that_fails_leaves_the_history_as_it_was_and_the_next_run_updates_it(
    feed, tmp_path, stage, monkeypatch
):
    import pipeline.runner as runner

    config, _ = scenario(feed, tmp_path)
    before = snapshot(state_dir(config.run_dir))

    def fail(context):
        raise RuntimeError(f"{stage} failed")

    broken = with_run(stage, fail)
    with monkeypatch.context() as patch:
        patch.setattr(runner, "STAGES", broken)
        with pytest.raises(RuntimeError, match=f"{stage} failed"):
            run_pipeline(config)
    assert snapshot(state_dir(config.run_dir)) == before
    run_pipeline(config)
    assert results(config.run_dir) == results(feed["twin_run"])


@pytest.mark.parametrize(("stage", "when"), [*((stage, "start") for stage in STAGES), ("report", "end")])
def test_a_stage_killed_by_sigkill_leaves_the_history_as_it_was_and_the_next_run_updates_it(
    feed, tmp_path, stage, when
):
    config, path = scenario(feed, tmp_path)
    before = snapshot(state_dir(config.run_dir))
    killed = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "stage_hook.py"), stage, when, str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert snapshot(state_dir(config.run_dir)) == before
    if (stage, when) == ("report", "end"):  # the new report was published, the history not yet moved
        assert (config.run_dir / "index.html").is_file()
    run_pipeline(config)
    assert results(config.run_dir) == results(feed["twin_run"])


def test_force_and_a_changed_setting_never_touch_the_history(feed, tmp_path):
    config, _ = scenario(feed, tmp_path, source="twin")
    before = snapshot(state_dir(config.run_dir))
    changed = config.model_copy(update={"label": config.label.model_copy(update={"n_keywords": 7})})
    run_pipeline(changed, until="label", force_from="parse")  # stops before the report: commits nothing
    assert snapshot(state_dir(config.run_dir)) == before


# -- damaged history ---------------------------------------------------------------------------

CARRIED = (
    "cluster/labels.npy", "cluster/reduced.npy", "cluster/layout.npy", "cluster/paper_ids.parquet",
    "cluster/cluster.json", "cluster/pool.npy", "cluster/guide.npy", "label/assignments.parquet",
    "label/topics.parquet", "label/hierarchy.parquet", "label/topics_registry.parquet",
    "label/topic_history.parquet", "label/feed.json", MANIFEST,
)  # fmt: skip


def damage(path: Path, how: str) -> None:
    if how == "missing":
        path.unlink()
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(b"\x93NUMPY garbage \x00\xff" * 7)


def test_every_file_the_stages_declare_is_in_the_history(feed):
    state = load_state(feed["twin_run"], "stop")
    assert state is not None
    assert sorted(state.generation.files) == sorted(name for name in CARRIED if name != MANIFEST)


@pytest.mark.parametrize("how", ["truncated", "garbage", "missing"])
@pytest.mark.parametrize("name", CARRIED)
def test_a_damaged_history_file_stops_the_run_naming_it_and_the_last_good_generation(feed, tmp_path, capsys, name, how):
    """One line, exit 2, before any stage: never a silent restart at run 1."""
    from pipeline.cli import main

    config, path = scenario(feed, tmp_path, source="twin")
    broken = state_dir(config.run_dir) / "000002" / name
    damage(broken, how)
    before = snapshot(config.run_dir)
    assert main(["run", str(path)]) == 2
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(error) == 1
    assert error[0].startswith(f"error: {broken}: ")
    assert "the last good generation is 1" in error[0] and "rollback" in error[0]
    after = snapshot(config.run_dir)
    assert {key: value for key, value in after.items() if key != "run.log"} == {
        key: value for key, value in before.items() if key != "run.log"
    }


@pytest.mark.parametrize("how", ["missing", "garbage"])
def test_a_damaged_current_pointer_stops_the_run(feed, tmp_path, how):
    config, _ = scenario(feed, tmp_path, source="twin")
    pointer = state_dir(config.run_dir) / CURRENT
    damage(pointer, how)
    with pytest.raises(StateDamagedError, match=f"{pointer}: .*the last good generation is 2"):
        run_pipeline(config)


def test_a_damaged_first_generation_stops_even_when_going_on_is_allowed(feed, tmp_path):
    config, _ = scenario(feed, tmp_path, history={"on_damage": "previous"})
    damage(state_dir(config.run_dir) / "000001" / "label" / "topic_history.parquet", "truncated")
    with pytest.raises(StateDamagedError, match="no earlier generation of the run's history is intact"):
        run_pipeline(config)


def test_on_damage_previous_goes_on_from_the_last_good_generation_with_a_warning(feed, tmp_path, caplog):
    """The update of generation 1 again: the same results as the uninterrupted update, and a warning everywhere."""
    config, _ = scenario(feed, tmp_path, source="twin", history={"on_damage": "previous"})
    broken = state_dir(config.run_dir) / "000002" / "label" / "topics_registry.parquet"
    damage(broken, "truncated")
    result = run_pipeline(config)
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert any(str(broken) in message and "generation 1" in message for message in warnings)
    assert result.manifest["state"]["from"] == 1 and str(broken) in result.manifest["state"]["notes"][0]
    assert str(broken) in (config.run_dir / "index.html").read_text(encoding="utf-8")
    got, expected = results(config.run_dir), results(feed["twin_run"])
    assert got.pop("generation") == 3 and expected.pop("generation") == 2
    assert got == expected


# -- history, rollback, keep -----------------------------------------------------------------------


def test_history_lists_generations_and_rollback_makes_the_next_run_an_update_of_the_one_chosen(feed, tmp_path, capsys):
    from pipeline.cli import main

    config, path = scenario(feed, tmp_path, source="twin", history={"keep": 2})
    assert main(["history", str(config.run_dir)]) == 0
    listing = capsys.readouterr().out
    rows = [line for line in listing.splitlines() if line.startswith("│")]
    assert len(rows) == 2 and "current" in rows[1] and "current" not in rows[0]
    papers = load_state(config.run_dir, "stop").read_json("label", "feed.json")["runs"]  # type: ignore[union-attr]
    assert [str(run["papers"]) in row for run, row in zip(papers, rows, strict=True)] == [True, True]

    assert main(["rollback", str(config.run_dir), "--to", "1"]) == 0
    assert load_state(config.run_dir, "stop").generation.number == 1  # type: ignore[union-attr]
    assert main(["run", str(path)]) == 0
    got, expected = results(config.run_dir), results(feed["twin_run"])
    assert got.pop("generation") == 3 and expected.pop("generation") == 2
    assert got == expected  # run 2 again, from generation 1
    assert generation_numbers(config.run_dir) == [2, 3]  # history.keep: 2
    assert main(["rollback", str(config.run_dir), "--to", "1"]) == 2
    assert "no generation 1 (kept: 2, 3)" in capsys.readouterr().err


def test_run_from_run_restores_a_generation_first(feed, tmp_path):
    from pipeline.cli import main

    config, path = scenario(feed, tmp_path, source="twin")
    assert main(["run", str(path), "--from-run", "1"]) == 0
    state = load_state(config.run_dir, "stop")
    assert state is not None and state.generation.number == 3 and state.generation.parent == 1
    assert os.path.isdir(state_dir(config.run_dir) / "000002")


def test_a_run_folder_from_before_the_history_keeps_its_last_complete_run_as_generation_1(feed, tmp_path):
    config, _ = scenario(feed, tmp_path, source="twin")
    expected = load_state(config.run_dir, "stop")
    shutil.rmtree(state_dir(config.run_dir))  # as a run folder made before runs kept a history
    result = run_pipeline(config)
    assert {outcome.status for outcome in result.outcomes} == {"reused"}
    state = load_state(config.run_dir, "stop")
    assert generation_numbers(config.run_dir) == [1]
    assert state is not None and expected is not None and state.generation.files == expected.generation.files


@pytest.mark.parametrize("interruption", ["full disk", "Ctrl-C"])
def test_a_commit_cut_short_leaves_the_history_as_it_was(feed, tmp_path, monkeypatch, interruption):
    """The disk fills up (or Ctrl-C comes) while the new generation is written: the last one stays current."""
    import errno

    import pipeline.state as state_module
    from pipeline.errors import OutputError
    from pipeline.files import output_error

    config, _ = scenario(feed, tmp_path)
    before = snapshot(state_dir(config.run_dir))
    real, calls = state_module.atomic_write_bytes, []

    def failing(path, data):
        calls.append(path)
        if len(calls) == 5:
            if interruption == "Ctrl-C":
                raise KeyboardInterrupt
            raise output_error(path, OSError(errno.ENOSPC, "No space left on device"))
        real(path, data)

    with monkeypatch.context() as patch:
        patch.setattr(state_module, "atomic_write_bytes", failing)
        with pytest.raises(KeyboardInterrupt if interruption == "Ctrl-C" else OutputError):
            run_pipeline(config)
    assert len(calls) == 5
    assert snapshot(state_dir(config.run_dir)) == before  # no half-written generation left either
    run_pipeline(config)
    assert results(config.run_dir) == results(feed["twin_run"])


@pytest.mark.parametrize("source", ["twin", "failed"])
def test_a_carried_file_damaged_in_its_stage_folder_is_never_reused(feed, tmp_path, monkeypatch, source):
    """Truncated by hand in the label stage's folder: restored from the history, or the stage is recomputed."""
    import pipeline.runner as runner
    from pipeline.store import ArtifactStore

    config, _ = scenario(feed, tmp_path, source="twin" if source == "twin" else "base")
    if source == "failed":  # the label stage finished from generation 1, the report failed: nothing committed
        broken = with_run("report", lambda context: 1 / 0)
        with monkeypatch.context() as patch:
            patch.setattr(runner, "STAGES", broken)
            with pytest.raises(ZeroDivisionError):
                run_pipeline(config)
    store = ArtifactStore(config.run_dir, config.cache_dir, STAGE_NAMES)
    damage(store.stage_dir("label") / "topics_registry.parquet", "truncated")
    result = run_pipeline(config)
    statuses = {outcome.stage: outcome.status for outcome in result.outcomes}
    assert statuses["label"] == ("reused" if source == "twin" else "computed")
    assert results(config.run_dir) == results(feed["twin_run"])


def test_a_stage_interrupted_by_ctrl_c_leaves_the_history_as_it_was(feed, tmp_path, monkeypatch):
    import pipeline.runner as runner

    config, _ = scenario(feed, tmp_path)
    before = snapshot(state_dir(config.run_dir))

    def interrupted(context):
        raise KeyboardInterrupt

    broken = with_run("label", interrupted)
    with monkeypatch.context() as patch:
        patch.setattr(runner, "STAGES", broken)
        with pytest.raises(KeyboardInterrupt):
            run_pipeline(config)
    assert snapshot(state_dir(config.run_dir)) == before
    run_pipeline(config)
    assert results(config.run_dir) == results(feed["twin_run"])


def test_history_shows_a_damaged_generation_and_rollback_refuses_it(feed, tmp_path, capsys):
    from pipeline.cli import main

    config, _ = scenario(feed, tmp_path, source="twin")
    broken = state_dir(config.run_dir) / "000001" / "cluster" / "pool.npy"
    damage(broken, "garbage")
    assert main(["history", str(config.run_dir)]) == 0
    listing = capsys.readouterr().out
    assert "damaged" in listing and "current" in listing
    before = snapshot(state_dir(config.run_dir))
    assert main(["rollback", str(config.run_dir), "--to", "1"]) == 2
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and error[0].startswith(f"error: {broken}: damaged") and "cannot be restored" in error[0]
    assert snapshot(state_dir(config.run_dir)) == before
