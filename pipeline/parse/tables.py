"""Tables of papers: CSV, TSV, a JSON array, JSON Lines or Parquet, mapped by a ColumnMapping.

``read_rows`` is shared with the arXiv readers: it turns any of these layouts into
(where, row dict) pairs plus the column names, and bad JSON lines into skips.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.config import ColumnMapping
from pipeline.errors import InputError, shorten
from pipeline.parse.normalize import (
    arxiv_version,
    bom_encoding,
    decode_utf8,
    iso_date,
    join_authors,
    normalize_arxiv_id,
    split_lines,
)
from pipeline.parse.records import Item, RawPaper, Skip
from pipeline.sources import SourceFile

PARQUET_MAGIC = b"PAR1"
# Python's csv module refuses fields over 128 KiB; a 5 MB abstract is a record to read (and
# cut to parse's cap), not a reason to reject the whole file.
CSV_FIELD_LIMIT = 64 * 1024 * 1024
# What json.loads raises besides JSONDecodeError: ValueError for an integer of more than
# 4,300 digits, RecursionError for arrays nested thousands deep.
JSON_ERRORS = (ValueError, RecursionError)
KIND_BY_SUFFIX = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}
# Column names read without a mapping (compared casefolded), most specific first.
WELL_KNOWN_COLUMNS = {
    "title": ("title", "headline"),
    "abstract": ("abstract", "summary", "text", "body", "content"),
    "id": ("id", "paper_id", "arxiv_id"),
    "date": ("date", "published", "update_date"),
    "label": ("label", "category", "primary_category"),
    "url": ("url", "link", "abs"),
    "authors": ("authors", "author"),
}


@dataclass(frozen=True)
class Rows:
    """A file's rows as (where, row or skip) pairs, and every column name seen, in order."""

    columns: list[str]
    rows: list[tuple[str, dict[str, object] | Skip]]


def base_name(path: str) -> str:
    """The file name without a trailing ".gz", lower-cased, for suffix checks."""
    name = path.replace("\\", "/").rsplit("/", 1)[-1].lower()
    return name[:-3] if name.endswith(".gz") else name


def table_kind(source: SourceFile) -> str | None:
    """csv, tsv, json, jsonl or parquet from the suffix, else from the content; None if not a table."""
    name = base_name(source.path)
    for suffix, kind in KIND_BY_SUFFIX.items():
        if name.endswith(suffix):
            return kind
    if source.content.startswith(PARQUET_MAGIC):
        return "parquet"
    head_bytes = source.content[:4096]
    codec = bom_encoding(head_bytes)
    codec = codec if codec in ("utf-16", "utf-32") else "utf-8"
    head = head_bytes.decode(codec, errors="replace").lstrip("\ufeff \t\r\n\x00")
    if head.startswith("["):
        return "json"
    if head.startswith("{"):
        return "jsonl"
    return None


def read_rows(source: SourceFile, kind: str) -> Rows:
    """Read a table of ``kind``; a file that cannot be read as one at all raises InputError."""
    if kind == "parquet":
        return _parquet_rows(source)
    text = decode_utf8(source.content, source.path)
    if kind == "json":
        return _json_array_rows(text, source.path)
    if kind == "jsonl":
        return _json_lines_rows(text)
    return _delimited_rows(text, source.path, "\t" if kind == "tsv" else ",")


def _columns_of(rows: list[tuple[str, dict[str, object] | Skip]]) -> list[str]:
    columns: dict[str, None] = {}
    for _, row in rows:
        if isinstance(row, dict):
            columns.update(dict.fromkeys(row))
    return list(columns)


def _parquet_rows(source: SourceFile) -> Rows:
    try:
        table = pq.read_table(io.BytesIO(source.content))
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{source.path}: not a readable Parquet file ({exc})") from None
    try:
        records = table.to_pylist()
    except (pa.ArrowException, ValueError, OverflowError) as exc:  # e.g. a timestamp past year 9999
        raise InputError(f"{source.path}: a Parquet value cannot be read ({exc})") from None
    return Rows(table.column_names, [(f"row {n}", row) for n, row in enumerate(records, 1)])


def _json_array_rows(text: str, path: str) -> Rows:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        cut_short = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        ending = " (the file may be cut short)" if cut_short else ""
        raise InputError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg}){ending}") from None
    except JSON_ERRORS as exc:
        raise InputError(f"{path}: not valid JSON ({_json_problem(exc)})") from None
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON array of records, got a JSON {type(data).__name__}")
    rows: list[tuple[str, dict[str, object] | Skip]] = [
        (f"record {n}", item if isinstance(item, dict) else Skip(f"record {n}", "record is not a JSON object"))
        for n, item in enumerate(data, 1)
    ]
    return Rows(_columns_of(rows), rows)


def _json_problem(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc).split(";")[0]  # "Exceeds the limit (4300 digits) for integer string conversion"


def _json_lines_rows(text: str) -> Rows:
    rows: list[tuple[str, dict[str, object] | Skip]] = []
    for n, line in enumerate(split_lines(text), 1):
        if not line.strip():
            continue
        where = f"line {n}"
        try:
            item = json.loads(line)
        except JSON_ERRORS as exc:
            rows.append((where, Skip(where, "bad JSON", _json_problem(exc))))
            continue
        if item == []:
            # An empty array holds no record: a daily file saved as `[]` is a day without papers,
            # as `[]` is in a .json file.
            continue
        rows.append((where, item if isinstance(item, dict) else Skip(where, "line is not a JSON object")))
    return Rows(_columns_of(rows), rows)


def _delimited_rows(text: str, path: str, delimiter: str) -> Rows:
    kind = "TSV" if delimiter == "\t" else "CSV"
    # A process-wide setting of the csv module; only ever raised, never lowered.
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    records: list[tuple[int, list[str]]] = []  # (line the record starts on, fields)
    broken_end: tuple[int, str] | None = None
    header: list[str] | None = None
    start = 1
    try:
        for record in reader:
            if header is None:
                header = record
            else:
                records.append((start, record))
            start = reader.line_num + 1
    except csv.Error as exc:
        if str(exc) != "unexpected end of data":
            raise InputError(f"{path}: not valid {kind} (line {reader.line_num}: {exc})") from None
        # A quoted field still open at the end: the file was cut short. The records before it are
        # fine; the broken last one is skipped like a broken last JSON line.
        broken_end = (start, "a quoted field is not closed at the end of the file")
    if header is None:
        raise InputError(f"{path}: not valid {kind} (a quoted header is not closed)")
    header = [name.strip() for name in header]
    rows: list[tuple[str, dict[str, object] | Skip]] = []
    for n, (line, record) in enumerate(records, 1):
        where = f"row {n} (line {line})"  # the line differs from n + 1 after multi-line fields
        if not any(cell.strip() for cell in record):
            continue
        if len(record) > len(header):
            rows.append((where, Skip(where, "more fields than the header", f"{len(record)} > {len(header)}")))
            continue
        rows.append((where, dict(zip(header, record, strict=False))))
    if broken_end is not None:
        where = f"row {len(records) + 1} (line {broken_end[0]})"
        rows.append((where, Skip(where, f"broken {kind} record", broken_end[1])))
    return Rows(header, rows)


def as_text(value: object) -> str:
    """A cell as text: missing/NaN -> "", lists joined with "; ", dates ISO, numbers as written."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bytes, bytearray)):  # a Parquet binary column
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, (list, tuple)):
        return join_authors(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()[:10]
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


# A list written as text in one cell ("['math.CO', 'math.RT']", as pandas writes a list column
# to CSV) is read back as a list up to this length; a longer cell is text as it stands.
MAX_LIST_TEXT_CHARS = 100_000


def list_in_text(text: str) -> list[str] | None:
    """The items of a Python or JSON list written in a cell ("['A', 'B']"), else None.

    Only a flat list of strings and numbers counts: ``ast.literal_eval`` evaluates literals
    only, and a cell longer than MAX_LIST_TEXT_CHARS or nested too deeply is left as text.
    """
    stripped = text.strip()
    if not (stripped.startswith("[") and stripped.endswith("]")) or len(stripped) > MAX_LIST_TEXT_CHARS:
        return None
    try:
        value = ast.literal_eval(stripped)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(value, list) or not all(isinstance(item, (str, int, float)) for item in value):
        return None
    return [str(item) for item in value]


def first_label(value: object) -> str:
    """A label cell as one label: the first entry of a list (or of a list written as text)."""
    items = list(value) if isinstance(value, (list, tuple)) else list_in_text(as_text(value))
    if items is None:
        return as_text(value).strip()
    return next((as_text(item).strip() for item in items if as_text(item).strip()), "")


def authors_of(value: object) -> str:
    """An authors cell as "A; B": a list, a list written as text, or a string kept as written."""
    items = list_in_text(value) if isinstance(value, str) else None
    return join_authors(value if items is None else items)


def resolve_mapping(mapping: ColumnMapping | None, columns: list[str], path: str) -> dict[str, str]:
    """Paper field -> column name.

    A configured column that is missing is an error; without a
    mapping, well-known names are used and a table with neither title nor abstract is an error.
    """
    if mapping is not None:
        chosen = {name: column for name, column in mapping.model_dump().items() if column is not None}
        for name, column in chosen.items():
            if column not in columns:
                raise InputError(
                    f"{path}: column '{shorten(column)}' (mapped to '{name}') is not in the file; "
                    f"its columns are: {shorten(', '.join(columns)) or '(none)'}"
                )
        return chosen
    by_folded = {column.casefold(): column for column in reversed(columns)}
    chosen = {}
    for name, candidates in WELL_KNOWN_COLUMNS.items():
        found = next((by_folded[c] for c in candidates if c in by_folded), None)
        if found is not None:
            chosen[name] = found
    if "title" not in chosen and "abstract" not in chosen:
        raise InputError(
            f"{path}: cannot tell which column holds the title or abstract; add 'columns:' to this "
            f"input (its columns are: {shorten(', '.join(columns)) or '(none)'})"
        )
    return chosen


def read_table(sources: list[SourceFile]) -> Iterator[Item]:
    """Yield one paper per row of a CSV/TSV/JSON/JSON Lines/Parquet table."""
    for source in sources:
        kind = table_kind(source)
        if kind is None:
            raise InputError(f"{source.path}: not a table (expected .csv, .tsv, .json, .jsonl or .parquet)")
        rows = read_rows(source, kind)
        if not rows.columns:  # JSON without a single object: nothing to map, only skips (if any) to count
            yield from (row for _, row in rows.rows if isinstance(row, Skip))
            continue
        mapping = resolve_mapping(source.spec.columns, rows.columns, source.path)
        for where, row in rows.rows:
            if isinstance(row, Skip):
                yield row
                continue
            field = {name: as_text(row.get(column)) for name, column in mapping.items()}
            raw_id = field.get("id", "").strip()
            arxiv_id = normalize_arxiv_id(raw_id) if raw_id else None
            authors = row.get(mapping["authors"]) if "authors" in mapping else None
            label = row.get(mapping["label"]) if "label" in mapping else None
            yield RawPaper(
                where=where,
                title=field.get("title", ""),
                abstract=field.get("abstract", ""),
                arxiv_id=arxiv_id or "",
                own_id="" if arxiv_id else raw_id,
                authors=authors_of(authors),
                date=iso_date(field.get("date", "")),
                url=field.get("url", "").strip(),
                label=first_label(label),
                version=arxiv_version(raw_id) if arxiv_id else 0,
            )
