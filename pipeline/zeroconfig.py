"""Runs without a YAML file: ``papertopics run FILES...`` and ``papertopics init FILES...``.

The inputs are read as a config with every default would read them (format "auto"); what
the parse stage will decide for each file is worked out here first and said, so a user
sees the formats, the table columns and the date rules before any work starts. Only the
first ``INSPECTED_FILES`` files are looked at (the run itself sniffs each one).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path, PurePath
from typing import Any

from pipeline.config import RunConfig, parse_config
from pipeline.parse.dates import RULE_FILE_NAME, RULE_MODIFIED, RULE_TODAY, RULE_YEAR, date_reference, utc_today
from pipeline.parse.sniff import sniff_format
from pipeline.parse.tables import read_rows, resolve_mapping, table_kind
from pipeline.preflight import check_inputs
from pipeline.sources import SourceFile, collect_sources

# Files looked at before a run without a config; a folder of 5,000 pages is not read twice.
INSPECTED_FILES = 20
SOURCE = "<command line>"
_NOT_NAME = re.compile(r"[^A-Za-z0-9._-]+")

# What each reader takes a paper's date from, for the formats whose dates need no rule.
DATES_BY_FORMAT = {
    "arxiv-snapshot": "dates from the 'update_date' field",
    "arxiv-daily": "dates from the file name's YYYY-MM-DD, else the arXiv id's month",
    "text-folder": "no dates (documents of a text folder carry none)",
}
DATES_BY_RULE = {
    RULE_YEAR: "yearless dates ('Aug 12') are of the year {year} (the input's year setting)",
    RULE_FILE_NAME: "yearless dates ('Aug 12') are dated by the date in the file name ({day})",
    RULE_MODIFIED: "yearless dates ('Aug 12') are dated by the file's modification day ({day}); set 'year' to pin it",
    RULE_TODAY: "yearless dates ('Aug 12') are dated by today ({day}); set 'year' to pin it",
}


@dataclass(frozen=True)
class FileDecision:
    """What the parse stage will do with one input file."""

    path: str
    format: str
    columns: dict[str, str]  # paper field -> column, for tables; empty otherwise
    dates: str  # where its papers' dates come from, in words


@dataclass(frozen=True)
class Decisions:
    """A config for a run without a YAML file, and what was found in its files."""

    config: RunConfig
    files: list[FileDecision]
    total_files: int

    def lines(self) -> list[str]:
        """What was decided, one line each: the run, then the files grouped by what they share."""
        out = [f"run '{self.config.name}' into {self.config.run_dir}/ with every setting at its default"]
        groups = Counter((f.format, tuple(f.columns.items()), _rule_only(f.dates)) for f in self.files)
        for (fmt, columns, _), count in groups.items():
            first = next(f for f in self.files if f.format == fmt and tuple(f.columns.items()) == columns)
            where = first.path if count == 1 else f"{count} files like {first.path}"
            mapped = ", ".join(f"{field} <- '{column}'" for field, column in columns)
            out.append(f"{where}: format {fmt}" + (f"; columns {mapped}" if mapped else "") + f"; {first.dates}")
        if self.total_files > len(self.files):
            out.append(f"(the first {len(self.files)} of {self.total_files} files looked at; the run reads every one)")
        return out

    def input_entries(self) -> tuple[list[dict[str, Any]], dict[int, str]]:
        """Each input as a config entry with what all its inspected files share, and a note per input."""
        entries, notes = [], {}
        for index, spec in enumerate(self.config.inputs):
            mine = [f for f in self.files if _belongs(f.path, spec.path)]
            entry: dict[str, Any] = {"path": spec.path}
            formats = {f.format for f in mine}
            if len(formats) == 1:
                entry["format"] = formats.pop()
                column_sets = {tuple(f.columns.items()) for f in mine}
                if entry["format"] == "table" and len(column_sets) == 1:
                    entry["columns"] = dict(column_sets.pop())
            if mine:
                notes[index] = f"{len(mine)} file(s) looked at, e.g. {mine[0].path}: {mine[0].dates}"
            entries.append(entry)
        return entries, notes


def _rule_only(dates: str) -> str:
    return dates.split(" (")[0]


def _belongs(path: str, pattern: str) -> bool:
    if Path(pattern).is_dir():
        return Path(path).is_relative_to(pattern)
    return PurePath(path).match(pattern) or path == pattern


def default_name(patterns: list[str]) -> str:
    """A run name from the first input: its folder's or file's name without globs and suffixes."""
    parts = [part for part in PurePath(patterns[0]).parts if not any(c in part for c in "*?[")]
    stem = PurePath(parts[-1]).name.split(".")[0] if parts else ""
    if stem in ("", ".", "/") and len(parts) > 1:
        stem = PurePath(parts[-2]).name
    name = _NOT_NAME.sub("-", stem).strip("-._")[:64]
    return name or "papers"


def decide(
    patterns: list[str], name: str | None = None, output_dir: str | None = None, today: date | None = None
) -> Decisions:
    """The config for ``patterns`` with every default, and what the run will find in the files.

    Raises ConfigError for a pattern matching nothing, InputError for a file whose format
    cannot be told (the message says to write a config with ``format:``).
    """
    raw: dict[str, Any] = {"name": name or default_name(patterns), "inputs": list(patterns)}
    if output_dir is not None:
        raw["output_dir"] = output_dir
    config = check_inputs(parse_config(raw, SOURCE), SOURCE)
    # Hashes only: the bytes of the few files looked at are read one at a time, not all held at once.
    sources = [source for source in collect_sources(config.inputs, keep_bytes=False) if source.skipped is None]
    today = today or utc_today()
    files = [_decide_file(source.loaded(), today) for source in sources[:INSPECTED_FILES]]
    return Decisions(config, files, len(sources))


def _decide_file(source: SourceFile, today: date) -> FileDecision:
    fmt = source.format or sniff_format(source)
    columns: dict[str, str] = {}
    if fmt == "table":
        kind = table_kind(source)
        columns = resolve_mapping(None, read_rows(source, kind or "csv").columns, source.path)
        dates = f"dates from column '{columns['date']}'" if "date" in columns else "no date column: papers are undated"
    elif fmt == "hf-daily-papers":
        reference = date_reference(source.path, source.spec.year, source.mtime, today)
        dates = DATES_BY_RULE[reference.rule].format(day=reference.day, year=reference.year)
    else:
        dates = DATES_BY_FORMAT[fmt]
    return FileDecision(source.path, fmt, columns, dates)


def is_config_path(argument: str) -> bool:
    """Whether a ``run`` argument names a YAML config rather than input files."""
    return argument.lower().endswith((".yaml", ".yml"))
