"""Reading one unit (a file, or one text folder's documents): records cleaned, checked and cut.

What reading a unit gives depends on its bytes, its input spec and the parse settings only,
not on the units read before it nor on the day: the parse stage keeps it between runs
(``_UnitRead``, a ``pipeline.memo`` codec), and ``pipeline.parse.parse`` deduplicates and
dates the records of every unit each time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from pipeline.code_hash import code_hash
from pipeline.config import ParseConfig
from pipeline.errors import InputError
from pipeline.files import hash_json
from pipeline.parse.arxiv import read_daily, read_snapshot
from pipeline.parse.hf_pages import read_hf_page
from pipeline.parse.normalize import clean_text, extract_links, has_words, normalize_title, title_hash_id
from pipeline.parse.records import RawPaper, Reader, Skip
from pipeline.parse.sniff import sniff_format
from pipeline.parse.tables import read_table
from pipeline.parse.text_folder import read_text_folder
from pipeline.schema import HTTP_URL
from pipeline.sources import SourceFile

# Longer fields are cut (at a word boundary) and counted in the file report. arXiv titles
# stay under 300 characters and abstracts under 1,920; the longest BBC article is 25,000.
# The embedder reads only the first 256 tokens anyway, but c-TF-IDF, the keyword
# vectorizers and the report read every character: one 5 MB "abstract" (a whole paper
# or a corrupt export) would take seconds per topic and flood its topic's keywords.
MAX_TITLE_CHARS = 1_000
MAX_ABSTRACT_CHARS = 30_000
_LIMITS = {"title": MAX_TITLE_CHARS, "abstract": MAX_ABSTRACT_CHARS}
MAX_DETAIL_CHARS = 80  # of a skipped record's text quoted in a message

READERS: dict[str, Reader] = {
    "hf-daily-papers": read_hf_page,
    "arxiv-snapshot": read_snapshot,
    "arxiv-daily": read_daily,
    "table": read_table,
    "text-folder": read_text_folder,
}


@dataclass
class FileReport:
    """What happened to one input file (or one text folder): ``read`` = kept + duplicates + skipped.

    ``skip_reasons`` counts skipped records per reason and ``first_skipped`` says where the
    first of each was ("line 12"); ``truncated`` counts kept papers whose title or abstract
    was cut to ``MAX_TITLE_CHARS`` / ``MAX_ABSTRACT_CHARS``, per field. ``duplicates_other_text``
    counts the duplicates whose title or abstract differed from the record kept in their place
    (an arXiv id read twice with two texts: ``pipeline.parse.dedupe`` says which is kept).

    ``date_rule`` says how the file's dates without a year ("Feb 10") got one
    (``pipeline.parse.dates.DATE_RULES``; empty when it has none) and ``date_reference``
    the year or reference day it used. ``date_errors`` counts kept papers left undated
    because their date is wrong (after today, Feb 29 in a year without one), per reason,
    and ``first_date_error`` says where the first was and what it read ("line 9: 2027-02-10").
    """

    path: str
    reader: str
    read: int = 0
    kept: int = 0
    duplicates: int = 0
    duplicates_other_text: int = 0
    skipped: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)
    first_skipped: dict[str, str] = field(default_factory=dict)
    truncated: dict[str, int] = field(default_factory=dict)
    date_rule: str = ""
    date_reference: str = ""
    date_errors: dict[str, int] = field(default_factory=dict)
    first_date_error: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (for the run manifest)."""
        return asdict(self)


def _reader_name(unit: list[SourceFile]) -> str:
    first = unit[0]
    name = first.format or first.spec.format
    return sniff_format(first) if name == "auto" else name


def _cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, at the last space when one is near the end."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit * 0.9 else cut


def _safe_url(url: str) -> str:
    url = clean_text(url)
    return url if HTTP_URL.fullmatch(url) else ""


def _row(paper: RawPaper, source: str) -> tuple[dict[str, str], str, str, list[str]]:
    """The cleaned table row of a raw paper, its arXiv id, its dedupe identity and the fields cut."""
    title = clean_text(paper.title)
    abstract, links = extract_links(clean_text(paper.abstract))
    # The identity falls back to the abstract when the title has no letters ("???"): else every
    # such paper would share the identity "" and be merged as one.
    identity = normalize_title(paper.identity or title) or normalize_title(abstract)
    cut = [name for name, text in (("title", title), ("abstract", abstract)) if len(text) > _LIMITS[name]]
    title, abstract = _cut(title, MAX_TITLE_CHARS), _cut(abstract, MAX_ABSTRACT_CHARS)
    arxiv_url = f"https://arxiv.org/abs/{paper.arxiv_id}" if paper.arxiv_id else ""
    own_id = clean_text(paper.own_id)
    row = {
        "paper_id": paper.arxiv_id or own_id or title_hash_id(title if has_words(title) else abstract),
        "title": title,
        "abstract": abstract,
        "authors": clean_text(paper.authors),
        "date": clean_text(paper.date),
        "url": _safe_url(paper.url) or arxiv_url,
        "links": links,
        "source": clean_text(paper.source or source),
        "label": clean_text(paper.label),
    }
    return row, paper.arxiv_id, identity, cut


def _check(row: dict[str, str], config: ParseConfig) -> str | None:
    if not row["title"] and not row["abstract"]:
        return "no title or abstract"
    if len(row["title"]) + len(row["abstract"]) < config.min_text_chars:
        return f"text shorter than {config.min_text_chars} chars"
    if not has_words(row["title"]) and not has_words(row["abstract"]):
        return "no letters or digits in title or abstract"
    return None


def _skip(report: FileReport, skip: Skip, config: ParseConfig) -> None:
    if config.on_error == "fail" and skip.bad:
        detail = skip.detail if len(skip.detail) <= MAX_DETAIL_CHARS else skip.detail[:MAX_DETAIL_CHARS] + "…"
        raise InputError(f"{report.path}: {skip.where}: {skip.reason}" + (f" ({detail})" if detail else ""))
    report.skipped += 1
    report.skip_reasons[skip.reason] = report.skip_reasons.get(skip.reason, 0) + 1
    report.first_skipped.setdefault(skip.reason, skip.where)


@dataclass(frozen=True)
class _Candidate:
    """A cleaned record of a unit before deduplication; its listing date is resolved when it is kept."""

    row: dict[str, str]
    arxiv_id: str
    identity: str
    cut: list[str]
    where: str
    version: int = 0


@dataclass
class _UnitRead:
    """What reading one unit gives, whatever was read before it and whatever the day: kept per unit.

    ``read``, ``skipped``, ``skip_reasons`` and ``first_skipped`` as in :class:`FileReport`.
    """

    reader: str
    read: int = 0
    skipped: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)
    first_skipped: dict[str, str] = field(default_factory=dict)
    candidates: list[_Candidate] = field(default_factory=list)


class _UnitReadCodec:
    """A :class:`_UnitRead` as JSON bytes, with its candidates' arXiv ids beside them (``pipeline.memo`` codec)."""

    def encode(self, value: _UnitRead) -> dict[str, np.ndarray]:
        # vars, not asdict: asdict deep-copies every row (a third of the time of storing a one-record file).
        data = {**vars(value), "candidates": [vars(candidate) for candidate in value.candidates]}
        return {
            "json": np.frombuffer(json.dumps(data, ensure_ascii=False).encode("utf-8"), dtype=np.uint8),
            # Deduplication looks at every unit's ids before any unit's records (HeldRead.arxiv_ids).
            "arxiv_ids": np.array([candidate.arxiv_id for candidate in value.candidates], dtype=np.str_),
        }

    def decode(self, arrays: Mapping[str, np.ndarray]) -> _UnitRead:
        data = json.loads(arrays["json"].tobytes().decode("utf-8"))
        candidates = [_Candidate(**candidate) for candidate in data.pop("candidates")]
        return _UnitRead(**data, candidates=candidates)


@dataclass(frozen=True)
class HeldRead:
    """A unit's read as the memo stores it (:class:`_UnitReadCodec`'s arrays), decoded only when its turn comes.

    The reads of a Dask run are held so in the driver: a million records as Python objects held
    ~9 GB there (docs/scale.md), their JSON bytes ~1.7 GB; a Dask worker encodes its unit's read.
    """

    arrays: Mapping[str, np.ndarray]

    @property
    def arxiv_ids(self) -> list[str]:
        """Each candidate's arXiv id ("" for none), in order, without decoding the records."""
        return [str(arxiv_id) for arxiv_id in self.arrays["arxiv_ids"].tolist()]

    def decoded(self) -> _UnitRead:
        return _UnitReadCodec().decode(self.arrays)


class HeldReadCodec:
    """A :class:`HeldRead` in the memo: its arrays as they are, stored and read back without decoding."""

    def encode(self, value: HeldRead) -> dict[str, np.ndarray]:
        return dict(value.arrays)

    def decode(self, arrays: Mapping[str, np.ndarray]) -> HeldRead:
        if "arxiv_ids" not in arrays:
            raise KeyError("arxiv_ids")  # an entry of an older format: read again
        return HeldRead(dict(arrays))


# Kept unit reads: one per input file of the runs that share the output folder's cache.
UNIT_READS_KEPT = 100_000


def _read_candidates(unit: list[SourceFile], path: str, reader: str, config: ParseConfig) -> _UnitRead:
    """Every record of ``unit`` (shown as ``path``) cleaned and checked.

    ``on_error: fail`` raises at the first bad record.
    """
    first = unit[0]
    read = _UnitRead(reader=reader)
    report = FileReport(path=path, reader=reader)  # counts the skips, and names the unit in _skip's errors
    for item in READERS[reader](unit):
        read.read += 1
        if isinstance(item, Skip):
            _skip(report, item, config)
            continue
        row, arxiv_id, identity, cut = _row(item, first.path)
        problem = _check(row, config)
        if problem is not None:
            _skip(report, Skip(item.where, problem), config)
            continue
        read.candidates.append(_Candidate(row, arxiv_id, identity, cut, item.where, item.version))
    read.skipped, read.skip_reasons, read.first_skipped = report.skipped, report.skip_reasons, report.first_skipped
    return read


def read_unit(unit: list[SourceFile], path: str, config: ParseConfig) -> _UnitRead:
    """``_read_candidates`` of one unit with the reader its format names or its content shows.

    The unit's files are read again from their paths when only their hashes were kept
    (``SourceFile.loaded``: on a Dask worker).
    """
    loaded = [source.loaded() for source in unit]
    return _read_candidates(loaded, path, _reader_name(loaded), config)


def read_unit_part(part: tuple[list[SourceFile], str], *, config: ParseConfig) -> HeldRead:
    """:func:`read_unit` of one (unit, path), encoded: a Dask worker's task per unit, opening its files by path."""
    from pipeline.parallel import return_freed_memory

    unit, path = part
    held = HeldRead(_UnitReadCodec().encode(read_unit(unit, path, config)))
    # The unit's records as Python objects are gone (no cycles among them: json values, rows, strings): a worker
    # reads unit after unit, and a collection of cycles after each cost more than the read (1,000 units at 1M).
    return_freed_memory(collect=False)
    return held


def _unit_key(unit: list[SourceFile], path: str, config: ParseConfig) -> str:
    """What a unit's read depends on: its files' bytes and names, its input spec and the settings.

    Not the day: dates are given their year and checked against today when a paper is kept.
    The reader is the format configured (or "text-folder"), not the one sniffed: with "auto",
    the bytes and name pick it, and a key is made without reading them (on a Dask worker).
    """
    first = unit[0]
    return hash_json(
        {
            # The source of the readers (this module's import closure): changed code reads again.
            "code": code_hash(__name__),
            "files": [[source.path, source.sha256] for source in unit],
            "path": path,
            "format": first.format or first.spec.format,
            "spec": first.spec.model_dump(mode="json"),
            "config": config.model_dump(mode="json"),
        }
    )
