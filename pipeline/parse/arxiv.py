"""arXiv metadata: the Cornell/Kaggle snapshot (JSON Lines or CSV) and daily-scrape JSON Lines."""

from __future__ import annotations

import re
from collections.abc import Iterator

from pipeline.errors import InputError
from pipeline.parse.normalize import (
    arxiv_id_month,
    arxiv_version,
    iso_date,
    join_authors,
    normalize_arxiv_id,
    split_snapshot_authors,
)
from pipeline.parse.records import Item, RawPaper, Skip
from pipeline.parse.tables import as_text, base_name, read_rows, table_kind
from pipeline.sources import SourceFile

SNAPSHOT_KEYS = ("abstract", "categories", "update_date")
DAILY_KEYS = ("summary", "abs")
_FILE_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})")


def _rows(source: SourceFile, fmt: str, text_keys: tuple[str, str]) -> list[tuple[str, dict[str, object] | Skip]]:
    """The file's rows, after checking that it has the columns of ``fmt`` (an id and some text)."""
    kind = table_kind(source)
    if kind not in ("jsonl", "json", "csv", "tsv"):
        raise InputError(f"{source.path}: arXiv metadata must be JSON Lines, JSON or CSV")
    rows = read_rows(source, kind)
    # A file of another format (a generic table, a page) would otherwise give one "not an arXiv id"
    # skip per row; saying which columns are missing tells the user to fix the 'format:'.
    if rows.columns and ("id" not in rows.columns or not any(key in rows.columns for key in text_keys)):
        raise InputError(
            f"{source.path}: format '{fmt}' needs an 'id' column and a '{text_keys[0]}' or '{text_keys[1]}' column, "
            f"but the file has: {', '.join(rows.columns[:20])}; set the right 'format:' for this input"
        )
    return rows.rows


def _categories(value: object) -> list[str]:
    """Category codes from a space-separated string or a list; anything else is read as text."""
    if isinstance(value, (list, tuple)):
        return [text for text in (as_text(item).strip() for item in value) if text]
    if isinstance(value, dict):
        return []
    return as_text(value).split()


def _last_version(versions: object) -> int:
    """The last version of the snapshot's ``versions`` list (``[{"version": "v1", ...}, ...]``); 0 without one."""
    if not isinstance(versions, list):
        return 0
    return max((arxiv_version(as_text(item.get("version"))) for item in versions if isinstance(item, dict)), default=0)


def _bad_id(where: str, raw: str) -> Skip:
    return Skip(where, "not an arXiv id", repr(raw))


def read_snapshot(sources: list[SourceFile]) -> Iterator[Item]:
    """Yield papers of the metadata snapshot; label = first of ``categories``, date = update_date.

    The CSV copy went through a spreadsheet that stored ids as numbers, so ids are
    repaired ("704.001" -> "0704.0010"); see ``normalize_arxiv_id``.
    """
    for source in sources:
        for where, row in _rows(source, "arxiv-snapshot", ("title", "abstract")):
            if isinstance(row, Skip):
                yield row
                continue
            raw_id = as_text(row.get("id")).strip()
            arxiv_id = normalize_arxiv_id(raw_id, repair_float=True)
            if arxiv_id is None:
                yield _bad_id(where, raw_id)
                continue
            categories = _categories(row.get("categories"))
            yield RawPaper(
                where=where,
                title=as_text(row.get("title")),
                abstract=as_text(row.get("abstract")),
                arxiv_id=arxiv_id,
                authors=split_snapshot_authors(as_text(row.get("authors"))),
                date=iso_date(as_text(row.get("update_date"))),
                url=f"https://arxiv.org/abs/{arxiv_id}",
                label=categories[0] if categories else "",
                version=max(arxiv_version(raw_id), _last_version(row.get("versions"))),
            )


def read_daily(sources: list[SourceFile]) -> Iterator[Item]:
    """Yield papers of a daily arXiv scrape; date = the file name's YYYY-MM-DD, else the id's month."""
    for source in sources:
        file_date = _FILE_DATE.search(base_name(source.path))
        for where, row in _rows(source, "arxiv-daily", ("title", "summary")):
            if isinstance(row, Skip):
                yield row
                continue
            raw_id = as_text(row.get("id")).strip()
            arxiv_id = normalize_arxiv_id(raw_id)
            if arxiv_id is None:
                yield _bad_id(where, raw_id)
                continue
            categories = _categories(row.get("categories"))
            # The first entry is the primary category even when later ones are MSC/ACM codes.
            label = categories[0] if categories else ""
            yield RawPaper(
                where=where,
                title=as_text(row.get("title")),
                abstract=as_text(row.get("summary")),
                arxiv_id=arxiv_id,
                authors=join_authors(row.get("authors")),
                date=file_date.group(1) if file_date else arxiv_id_month(arxiv_id),
                url=as_text(row.get("abs")).strip() or f"https://arxiv.org/abs/{arxiv_id}",
                label=label,
                version=arxiv_version(raw_id),
            )
