"""Report stage: the tables of the earlier stages in, the pages and CSVs at the top of the run folder out.

Its own folder holds only ``published.json``, the list of files it put in the run folder:
the stage counts as finished only while all of them are still there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pipeline.config import RunConfig
from pipeline.files import hash_json, json_to_bytes
from pipeline.stage import Stage, StageContext, StageResult
from pipeline.stage_store import StageStore

if TYPE_CHECKING:
    from pipeline.memo import Codec
    from pipeline.report.kept import ReportMemo

T = TypeVar("T")


def _settings(config: RunConfig) -> dict[str, Any]:
    return config.report.model_dump()


def _published_files_present(context: StageContext) -> bool:
    """The published report's files are all still in the run folder."""
    try:
        listing = context.store.read_json("report", "published.json")
    except (FileNotFoundError, ValueError):
        return False
    return all((context.store.run_dir / path).is_file() for path in listing)


def _state_notes(context: StageContext) -> list[str]:
    """Warnings about the run's history (a damaged generation skipped) are part of the report."""
    return list(context.state_notes)


def _stability_card(store: StageStore) -> dict[str, str] | None:
    """The card of ``evaluate --stability`` when it measured the clustering this report shows."""
    from pipeline.report.stability_card import STABILITY_FILE, stability_card

    return stability_card(store.read_evaluation(STABILITY_FILE), store.input_hash("cluster", "labels.npy"))


def _key_parts(context: StageContext) -> list[str]:
    """The history's warnings and any stability result computed after the run.

    A stability result is shown by the next run, which redoes only the report.
    """
    from pipeline.report.stability_card import STABILITY_FILE

    return [*_state_notes(context), hash_json(context.store.read_evaluation(STABILITY_FILE))]


# Up to this many papers the report keeps its largest parts between runs (``pipeline.report.kept``):
# storing them copies them (the CSVs: about 1.6 KB a paper), which a million papers cannot spare.
KEPT_PARTS_MAX_PAPERS = 300_000


def _kept_parts(context: StageContext, n_papers: int) -> ReportMemo:
    """The report's parts kept in the cache, keyed by the papers' and assignments' hashes and the report's code."""
    from pipeline.code_hash import code_hash
    from pipeline.report.kept import computed

    store = context.store
    tables = [store.input_hash("parse", "papers.parquet"), store.input_hash("label", "assignments.parquet")]
    if n_papers > KEPT_PARTS_MAX_PAPERS or not all(tables):
        return computed
    common = {"tables": tables, "code": code_hash(__name__)}

    def memo(part: str, key: Mapping[str, Any], compute: Callable[[], T], codec: Codec[T]) -> T:
        return store.cache.memo(f"report-{part}", hash_json({**common, "part": part, **key}), compute, codec)

    return memo


def run(context: StageContext) -> StageResult:
    from pipeline.report import build_report
    from pipeline.report.whats_new import FeedTables

    store, config = context.store, context.config
    papers = store.read_table("parse", "papers.parquet")
    reports = store.read_json("parse", "file_reports.json")
    clustering = store.read_json("cluster", "cluster.json")
    notes = clustering["notes"] + store.read_json("label", "label.json")["notes"]
    notes += list(context.state_notes)  # the run's history was damaged: said on the report's first page
    summary = {
        "name": config.name,
        "inputs": reports,
        "n_read": sum(report["read"] for report in reports),
        "n_papers": len(papers),
        "n_duplicates": sum(report["duplicates"] for report in reports),
        "n_skipped": sum(report["skipped"] for report in reports),
        "stage_seconds": dict(context.stage_seconds),
        "settings": config.model_dump(mode="json"),
        "seed": config.seed,
        "has_labels": bool((papers["label"] != "").any()),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "notes": notes,
        "recluster": clustering.get("recluster"),  # why all papers were clustered again (None: an update)
    }
    metrics = store.read_json("label", "metrics.json")
    files = build_report(
        papers, store.read_table("label", "assignments.parquet"), store.read_table("label", "topics.parquet"),
        summary, config.report,
        hierarchy=store.read_table("label", "hierarchy.parquet"), metrics=metrics,
        feed=FeedTables(store.read_table("label", "topic_history.parquet"),
                        store.read_table("label", "topics_registry.parquet"), store.read_json("label", "feed.json")),
        stability=_stability_card(store), memo=_kept_parts(context, len(papers)),
    )  # fmt: skip
    files["metrics.json"] = json_to_bytes(metrics)
    store.publish_report(files)
    listing = {path: len(data) for path, data in sorted(files.items())}
    return {"published.json": json_to_bytes(listing)}, {"files": len(files)}


STAGE = Stage(
    name="report",
    inputs=(("parse", "papers.parquet"), ("parse", "file_reports.json"), ("cluster", "cluster.json"),
            ("cluster", "labels.npy"),
            ("label", "assignments.parquet"), ("label", "topics.parquet"), ("label", "hierarchy.parquet"),
            ("label", "label.json"), ("label", "metrics.json"), ("label", "topic_history.parquet"),
            ("label", "topics_registry.parquet"), ("label", "feed.json")),
    outputs=("published.json",),
    config_slice=_settings,
    run=run,
    module=__name__,
    intact=_published_files_present,
    extra_key=_key_parts,
)  # fmt: skip
