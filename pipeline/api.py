"""The library interface: run papertopics from Python and open a finished run's tables.

``run`` runs a config (a YAML path, a mapping, a ``RunConfig``, or input files with every
default) and returns a ``Run``; ``open_run`` opens the folder of a run that finished
earlier. A ``Run`` reads every table
through the run's ``ArtifactStore``, never by a stage folder's path, and reads each one
once, when it is first asked for: it is a view of the run as it was when opened (open it
again, or call ``update``, after another run wrote the folder).
"""

from __future__ import annotations

import functools
import html
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.config import RunConfig, load_config, parse_config
from pipeline.errors import ConfigError, RunFolderError
from pipeline.preflight import check_inputs
from pipeline.stages import STAGE_NAMES
from pipeline.store import ArtifactStore
from pipeline.yaml_read import read_yaml

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

ConfigLike = str | Path | Mapping[str, Any] | RunConfig | list[str]
# Topics listed in a run's summary table in a notebook, largest first.
SUMMARY_TOPICS = 10


def run(config: ConfigLike, /, **overrides: Any) -> Run:
    """Run the pipeline for ``config`` and return the finished run.

    Stages whose inputs and settings are unchanged since the last run in the same output
    folder are reused, exactly as ``papertopics run CONFIG`` does.

    Args:
        config: the path of a YAML config, a mapping with the same keys, a ``RunConfig``, or
            input files (a path or glob that is not a ``.yaml`` file, or a list of them) to
            run with every default, as ``papertopics run FILES...`` does.
        **overrides: top-level config keys that replace the config's, e.g.
            ``output_dir="/tmp/out"`` or ``cluster={"min_cluster_size": 5}`` (a mapping is
            merged into the config's section, key by key).

    Returns:
        The finished run, its tables read on first use.

    Raises:
        ConfigError: the config or an override is invalid (one line naming the key).
        PapertopicsError: any other problem with the inputs or the output folder.
    """
    resolved, source = resolve_config(config, overrides)
    from pipeline.runner import run_pipeline

    result = run_pipeline(resolved, config_path=source)
    return Run(result.run_dir, resolved)


def open_run(path: str | Path) -> Run:
    """Open the folder of a finished run, e.g. ``open_run("outputs/default")``.

    Raises:
        RunFolderError: the folder holds no finished run (no ``manifest.json``).
    """
    return Run(Path(path))


def resolve_config(config: ConfigLike, overrides: Mapping[str, Any]) -> tuple[RunConfig, str | None]:
    """The validated config (its inputs checked to exist) and the path it came from, if any."""
    from pipeline.zeroconfig import decide, is_config_path

    if isinstance(config, list) or (isinstance(config, str | Path) and not is_config_path(str(config))):
        files = [str(item) for item in config] if isinstance(config, list) else [str(config)]
        config, overrides = decide(files).config, dict(overrides)
    if isinstance(config, RunConfig):
        if not overrides:
            return check_inputs(config, "<config>"), None
        raw, source = config.model_dump(mode="json"), "<config>"
    elif isinstance(config, str | Path):
        if not overrides:
            return load_config(config), str(config)
        if not Path(config).is_file():
            raise ConfigError(f"{config}: config file not found")
        raw, source = read_yaml(Path(config)), str(config)
    elif isinstance(config, Mapping):
        raw, source = dict(config), "<dict>"
    else:
        raise ConfigError(f"a config is a YAML path, a mapping, a RunConfig or files, not {type(config).__name__}")
    merged = _merged(raw, overrides) if isinstance(raw, dict) else raw
    return check_inputs(parse_config(merged, source=source), source), (
        source if isinstance(config, str | Path) else None
    )


def _merged(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` written over it; a mapping over a mapping is merged key by key."""
    merged = dict(base)
    for key, value in changes.items():
        old = merged.get(key)
        merged[key] = _merged(old, value) if isinstance(old, Mapping) and isinstance(value, Mapping) else value
    return merged


def topic_history(store: ArtifactStore) -> pd.DataFrame:
    """The feed's topic history (one row per topic event of every run) of the run in ``store``.

    The one place that knows where the history is kept: it moves to the store's state area
    with the run-history issue, and only this function changes.
    """
    return store.read_table("label", "topic_history.parquet")


@dataclass(frozen=True, eq=False)  # eq=False: it holds a DataFrame, which has no plain ==
class Topic:
    """One topic of a run: what ``Run.topic(id)`` returns."""

    id: int
    name: str
    size: int
    keywords: list[str]
    papers: pd.DataFrame  # its rows of ``Run.papers``, best first
    csv: Path | None  # its CSV in the report (``topics/NN-slug.csv``), None before the report
    page: Path | None  # its page in the report (``topics/NN-slug.html``), None before the report


class Run:
    """A finished run: its tables, metrics and report files.

    Attributes:
        run_dir: the run's folder (``<output_dir>/<name>``).
        config: the validated config the run was made with.
        manifest: the run's ``manifest.json`` (config, package versions, input hashes, timings).
    """

    def __init__(self, run_dir: Path, config: RunConfig | None = None):
        self.run_dir = Path(run_dir)
        # The cache is the run's output folder's (``RunConfig.cache_dir``); reading needs none of it.
        self._store = ArtifactStore(self.run_dir, self.run_dir.parent / ".cache", STAGE_NAMES)
        manifest = self._store.read_manifest()
        if manifest is None:
            raise RunFolderError(f"{self.run_dir}: no finished run here (no manifest.json); run a config first")
        from pipeline.runner import MANIFEST_FORMAT_VERSION

        if manifest.get("format_version") != MANIFEST_FORMAT_VERSION:
            raise RunFolderError(
                f"{self.run_dir}: the run was written by another papertopics (manifest format "
                f"{manifest.get('format_version')!r}, this one reads {MANIFEST_FORMAT_VERSION}); run its config again"
            )
        self.manifest: dict[str, Any] = manifest
        self.config = config if config is not None else parse_config(manifest.get("config"), f"{self.run_dir} manifest")

    def _finished(self, stage: str) -> ArtifactStore:
        if self._store.finished(stage) is None:
            raise RunFolderError(f"{self.run_dir}: the {stage} stage has not finished here; run the config to the end")
        return self._store

    @functools.cached_property
    def papers(self) -> pd.DataFrame:
        """Every paper with its topic: the table of ``papers.csv``, in its row and column order.

        Columns topic, topic_name, score, paper_id, title, authors, date, url, links, label,
        source, abstract; rows by topic, then score (best first), then paper id.
        """
        from pipeline.report.csv_export import PAPER_CSV_COLUMNS, paper_order
        from pipeline.report.tables import join_tables

        store = self._finished("label")
        joined = join_tables(store.read_table("parse", "papers.parquet"), self.assignments, self.topics)
        return joined.iloc[paper_order(joined)].loc[:, list(PAPER_CSV_COLUMNS)].reset_index(drop=True)

    @functools.cached_property
    def topics(self) -> pd.DataFrame:
        """One row per topic (outliers: topic -1): name, size, keywords, map position, coarse group, name audit."""
        return self._finished("label").read_table("label", "topics.parquet")

    @functools.cached_property
    def assignments(self) -> pd.DataFrame:
        """One row per paper: paper_id, topic, score (its fit to the topic) and its map position x, y."""
        return self._finished("label").read_table("label", "assignments.parquet")

    @functools.cached_property
    def history(self) -> pd.DataFrame:
        """The feed's topic history: run, topic, event (born, kept, merged, ...), from_topic, similarity, papers."""
        return topic_history(self._finished("label"))

    @functools.cached_property
    def metrics(self) -> dict[str, Any]:
        """Topic quality of the run (``metrics.json``): NPMI, diversity, outlier share, NMI, name audit."""
        metrics: dict[str, Any] = self._finished("label").read_json("label", "metrics.json")
        return metrics

    @functools.cached_property
    def paths(self) -> dict[str, Path]:
        """The report's files at the top of the run folder by name (``index.html``, ``map.html``, ...).

        Also ``manifest.json``; the per-topic files are in ``Run.topic(id)``.
        """
        listing = self._finished("report").read_json("report", "published.json")
        top = {name: self._store.report_path(name) for name in sorted(listing) if "/" not in name}
        return {**top, "manifest.json": self.run_dir / "manifest.json"}

    def topic(self, topic_id: int) -> Topic:
        """One topic: its name, size, keywords, papers and report files.

        Raises:
            RunFolderError: the run has no topic ``topic_id``.
        """
        rows = self.topics[self.topics["topic"] == topic_id]
        if rows.empty:
            known = ", ".join(str(t) for t in sorted(self.topics["topic"].astype(int)))
            raise RunFolderError(f"{self.run_dir}: no topic {topic_id!r} (topics: {known})")
        row = rows.iloc[0]
        csv, page = self._topic_files(int(row["topic"]), str(row["slug"]))
        papers = self.papers[self.papers["topic"] == topic_id].reset_index(drop=True)
        keywords = [str(word) for word in row["keywords"]]
        return Topic(int(row["topic"]), str(row["name"]), int(row["size"]), keywords, papers, csv, page)

    def _topic_files(self, topic_id: int, slug: str) -> tuple[Path | None, Path | None]:
        from pipeline.report.csv_export import topic_csv_path, topic_number_width

        if self._store.finished("report") is None:
            return None, None
        listing = self._store.read_json("report", "published.json")
        csv = topic_csv_path(topic_id, slug, topic_number_width(self.topics["topic"].astype(int).tolist()))
        page = str(Path(csv).with_suffix(".html"))
        return (
            self._store.report_path(csv) if csv in listing else None,
            self._store.report_path(page) if page in listing else None,
        )

    def update(self) -> Run:
        """Run the same config again (the feed's daily step) and return the new run.

        New input files that the config's globs match are added; what did not change is
        reused. This ``Run`` keeps showing the run as it was.
        """
        from pipeline.runner import run_pipeline

        check_inputs(self.config, str(self.run_dir))
        result = run_pipeline(self.config, config_path=self.manifest.get("config_path"))
        return Run(result.run_dir, self.config)

    def map(self) -> go.Figure:
        """The document map as a plotly figure, shown inline when a notebook cell ends with it.

        Every paper at its map position, coloured by topic, its title on hover. The full map
        with search and date filters is ``paths["map.html"]``, to open in a browser.
        """
        from pipeline.report.figures import document_map, topic_colors

        names = dict(zip(self.topics["topic"].astype(int), self.topics["name"].astype(str), strict=True))
        return document_map(self.papers.join(self._positions(), on="paper_id"), names, topic_colors(list(names)))

    def _positions(self) -> pd.DataFrame:
        return self.assignments.set_index("paper_id")[["x", "y"]]

    def summary(self) -> dict[str, Any]:
        """The numbers of ``_repr_html_``: name, folder, papers, topics, outlier share, NPMI."""
        topics = self.topics
        real = topics[topics["topic"] >= 0]
        outliers = int(topics.loc[topics["topic"] < 0, "size"].sum())
        papers = int(topics["size"].sum())
        return {
            "name": self.config.name,
            "folder": str(self.run_dir),
            "papers": papers,
            "topics": len(real),
            "outlier share": round(outliers / papers, 3) if papers else 0.0,
            "NPMI": self.metrics.get("npmi"),
            "created": self.manifest.get("created"),
        }

    def _repr_html_(self) -> str:
        """A compact summary table for Jupyter: the run's numbers, then its largest topics."""
        cells = "".join(
            f"<tr><th style='text-align:left'>{html.escape(key)}</th><td style='text-align:left'>"
            f"{html.escape('n/a' if value is None else str(value))}</td></tr>"
            for key, value in self.summary().items()
        )
        largest = self.topics[self.topics["topic"] >= 0].sort_values(["size", "topic"], ascending=[False, True])
        rows = "".join(
            f"<tr><td>{int(row.topic)}</td><td style='text-align:left'>{html.escape(str(row.name))}</td>"
            f"<td>{int(row.size)}</td></tr>"
            for row in largest.head(SUMMARY_TOPICS).itertuples()
        )
        return (
            f"<table><caption>papertopics run</caption>{cells}</table>"
            f"<table><caption>largest topics</caption><tr><th>topic</th><th>name</th><th>papers</th></tr>{rows}</table>"
        )

    def __repr__(self) -> str:
        return f"Run({str(self.run_dir)!r})"
