"""Parse stage: the input files' bytes in, one deduplicated papers table and per-file reports out."""

from __future__ import annotations

from typing import Any

from pipeline.config import RunConfig
from pipeline.errors import InputError
from pipeline.files import json_to_bytes, table_to_bytes
from pipeline.stage import Stage, StageContext, StageResult
from pipeline.store import ArtifactStore


def _settings(config: RunConfig) -> dict[str, Any]:
    return {"inputs": [spec.model_dump() for spec in config.inputs], **config.parse.model_dump()}


def _input_files(context: StageContext) -> list[str]:
    from pipeline.parse import date_key_parts

    # The files' bytes, and what dates pages without a year: the run's day and each file's modification day.
    return [f"{source.path}:{source.sha256}" for source in context.sources] + date_key_parts(
        context.sources, context.today
    )


def run(context: StageContext) -> StageResult:
    from pipeline.parse import parse

    # Each file's records are kept between runs: a run over grown inputs reads only the new files.
    # With engine kind dask, the files not kept yet are read on the workers, one task per file.
    result = parse(
        context.sources, context.config.parse, today=context.today, memo=context.store.cache, engine=context.engine
    )
    if result.papers.empty:
        details = "; ".join(
            f"{report.path}: {report.read} read, {report.skipped} skipped" for report in result.file_reports
        )
        raise InputError(f"no usable paper in the inputs ({details})")
    reports = [report.to_dict() for report in result.file_reports]
    counts = {
        "read": sum(report["read"] for report in reports),
        "papers": len(result.papers),
        "duplicates": sum(report["duplicates"] for report in reports),
        "skipped": sum(report["skipped"] for report in reports),
        "truncated": sum(sum(report["truncated"].values()) for report in reports),
    }
    # One canonical order, whatever the order of the files and rows: UMAP, HDBSCAN's ties and every
    # later stage see the same corpus the same way (BERTopic issue #2276: shuffled rows, other
    # topics). paper_ids are unique after parse and derived from the papers, not their position.
    papers = result.papers.sort_values("paper_id", kind="stable", ignore_index=True)
    del result  # the table in read order (1.75 GB of strings at 1M papers) goes before the sorted one is written
    return {"papers.parquet": table_to_bytes(papers), "file_reports.json": json_to_bytes(reports)}, counts


def _file_reports(store: ArtifactStore) -> dict[str, Any]:
    # Per input file: records read, kept, merged, skipped (per reason, with the first place) and cut.
    return {"file_reports": store.read_json("parse", "file_reports.json")}


STAGE = Stage(
    name="parse",
    inputs=(),
    outputs=("papers.parquet", "file_reports.json"),
    config_slice=_settings,
    run=run,
    module=__name__,
    extra_key=_input_files,
    manifest_entries=_file_reports,
    reads_sources=True,
    uses_engine=True,
)
