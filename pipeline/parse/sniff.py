"""Pick a reader for an input whose format is "auto", from its name and its first record.

Rules, first match wins:
1. Parquet (suffix or "PAR1" magic) -> table.
2. JSON / JSON Lines (suffix, or text starting with "[" or "{"): the first record's keys
   decide: ``summary`` + ``abs`` -> arxiv-daily; ``abstract`` + ``categories`` +
   ``update_date`` -> arxiv-snapshot; anything else -> table.
3. CSV / TSV (suffix): the header decides the same way (snapshot columns -> arxiv-snapshot).
4. Text holding a Daily Papers marker line ("byAK and the research community", ...)
   -> hf-daily-papers.
Anything else cannot be sniffed: InputError asking for an explicit ``format``.
"""

from __future__ import annotations

import json

from pipeline.errors import InputError
from pipeline.parse.arxiv import DAILY_KEYS, SNAPSHOT_KEYS
from pipeline.parse.hf_pages import is_hf_page
from pipeline.parse.normalize import decode_utf8, split_lines
from pipeline.parse.tables import JSON_ERRORS, read_rows, table_kind
from pipeline.sources import SourceFile


def _by_columns(columns: list[str]) -> str:
    names = set(columns)
    if all(key in names for key in DAILY_KEYS):
        return "arxiv-daily"
    if all(key in names for key in SNAPSHOT_KEYS):
        return "arxiv-snapshot"
    return "table"


def _first_json_keys(text: str, kind: str) -> list[str]:
    if kind == "jsonl":
        for line in split_lines(text):
            if line.strip():
                try:
                    first = json.loads(line)
                except JSON_ERRORS:
                    return []
                return list(first) if isinstance(first, dict) else []
        return []
    try:
        data = json.loads(text)
    except JSON_ERRORS:
        return []
    return list(data[0]) if isinstance(data, list) and data and isinstance(data[0], dict) else []


def sniff_format(source: SourceFile) -> str:
    """The format name of ``source`` (a key of the reader registry), or InputError."""
    kind = table_kind(source)
    if kind == "parquet":
        return "table"
    text = decode_utf8(source.content, source.path)
    if kind in ("json", "jsonl"):
        return _by_columns(_first_json_keys(text, kind))
    if kind in ("csv", "tsv"):
        return _by_columns(read_rows(source, kind).columns)
    if is_hf_page(text):
        return "hf-daily-papers"
    raise InputError(
        f"{source.path}: cannot tell the format (not Parquet, JSON, CSV/TSV or a Daily Papers page); "
        "set 'format:' on this input"
    )
