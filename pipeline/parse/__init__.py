"""The parse stage: input files (as bytes) -> one papers table plus a report per input file.

Pure: ``collect_sources`` (pipeline/sources.py) reads the files; ``parse`` only sees bytes.
A reader is picked per unit (one file, or all documents of one text folder) from
``READERS`` by ``spec.format``, or by ``sniff_format`` when the format is "auto". Every
record is cleaned (whitespace, hard line breaks, NUL bytes, links), cut to a sane length
(``MAX_TITLE_CHARS``, ``MAX_ABSTRACT_CHARS``), checked (``min_text_chars``, at least one
letter or digit), and deduplicated: by arXiv id ignoring the version, else by its
normalised title; the first occurrence wins.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from pipeline.config import ParseConfig
from pipeline.errors import InputError
from pipeline.files import hash_json
from pipeline.memo import MemoStore
from pipeline.parse.arxiv import read_daily, read_snapshot
from pipeline.parse.dates import (
    FUTURE_DATE,
    NO_SUCH_DAY,
    DateReference,
    date_reference,
    dated,
    is_future,
    month_day,
    mtime_day,
    utc_today,
)
from pipeline.parse.hf_pages import read_hf_page
from pipeline.parse.normalize import clean_text, extract_links, has_words, normalize_title, title_hash_id
from pipeline.parse.records import RawPaper, Reader, Skip
from pipeline.parse.sniff import sniff_format
from pipeline.parse.tables import read_table
from pipeline.parse.text_folder import read_text_folder
from pipeline.schema import HTTP_URL, PAPER_COLUMNS, empty_papers
from pipeline.sources import SourceFile

__all__ = [
    "MAX_ABSTRACT_CHARS",
    "MAX_TITLE_CHARS",
    "READERS",
    "FileReport",
    "ParseResult",
    "date_key_parts",
    "parse",
    "utc_today",
]

log = logging.getLogger(__name__)

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
    was cut to ``MAX_TITLE_CHARS`` / ``MAX_ABSTRACT_CHARS``, per field.

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


@dataclass(frozen=True)
class ParseResult:
    """``papers``: exactly schema.PAPER_COLUMNS as strings, in first-read order; one report per unit."""

    papers: pd.DataFrame
    file_reports: list[FileReport]


@dataclass
class _Seen:
    """Dedupe memory: which ids, titles and paper_ids were kept so far.

    A paper with an arXiv id duplicates a kept paper with the same id, or an id-less one with
    its title (e.g. a page listing); a paper without one duplicates any kept paper with its title.
    """

    ids: set[str] = field(default_factory=set)
    identities: set[str] = field(default_factory=set)
    idless_identities: set[str] = field(default_factory=set)
    paper_ids: Counter[str] = field(default_factory=Counter)

    def is_duplicate(self, arxiv_id: str, identity: str) -> bool:
        if arxiv_id:
            return arxiv_id in self.ids or identity in self.idless_identities
        return identity in self.identities

    def remember(self, arxiv_id: str, identity: str) -> None:
        if arxiv_id:
            self.ids.add(arxiv_id)
        else:
            self.idless_identities.add(identity)
        self.identities.add(identity)

    def unique_paper_id(self, paper_id: str) -> str:
        # Kept papers may still share an id (dedupe off, or two tables numbering rows 1, 2, ...);
        # later stages key on paper_id, so the second one becomes "<id>#2".
        self.paper_ids[paper_id] += 1
        count = self.paper_ids[paper_id]
        return paper_id if count == 1 else f"{paper_id}#{count}"


def _units(sources: list[SourceFile]) -> list[list[SourceFile]]:
    """Each file alone, except that the documents of one text folder form one unit."""
    units: list[list[SourceFile]] = []
    for source in sources:
        previous = units[-1][0] if units else None
        if (
            source.format == "text-folder"
            and previous is not None
            and previous.format == "text-folder"
            and previous.folder == source.folder
            and previous.spec == source.spec
        ):
            units[-1].append(source)
        else:
            units.append([source])
    return units


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


def _log_report(report: FileReport) -> None:
    for reason, count in report.skip_reasons.items():
        first = report.first_skipped[reason]
        log.info("%s: %d record(s) skipped, %s; the first at %s", report.path, count, reason, first)
    for name, count in report.truncated.items():
        log.info("%s: cut %d %s(s) longer than %d characters", report.path, count, name, _LIMITS[name])
    for reason, count in report.date_errors.items():
        first = report.first_date_error[reason]
        log.warning("%s: %d paper(s) left undated, %s; the first at %s", report.path, count, reason, first)


@dataclass(frozen=True)
class _Candidate:
    """A cleaned record of a unit before deduplication; its listing date is resolved when it is kept."""

    row: dict[str, str]
    arxiv_id: str
    identity: str
    cut: list[str]
    where: str


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
    """A :class:`_UnitRead` as JSON bytes (``pipeline.memo`` codec)."""

    def encode(self, value: _UnitRead) -> dict[str, np.ndarray]:
        data = asdict(value)
        return {"json": np.frombuffer(json.dumps(data, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)}

    def decode(self, arrays: Mapping[str, np.ndarray]) -> _UnitRead:
        data = json.loads(arrays["json"].tobytes().decode("utf-8"))
        candidates = [_Candidate(**candidate) for candidate in data.pop("candidates")]
        return _UnitRead(**data, candidates=candidates)


# Bump when reading a unit would give other candidates for the same bytes (it keys the kept reads).
UNIT_READ_VERSION = 2
# Kept unit reads: one per input file of the runs that share the output folder's cache.
UNIT_READS_KEPT = 100_000


@dataclass
class _UnitDates:
    """Gives a unit's yearless dates ("Feb 10") their year and finds wrong dates, for its kept papers.

    The rule is chosen once per unit, at its first yearless date, and written to its report.
    """

    source: SourceFile
    today: date
    report: FileReport
    config: ParseConfig
    reference: DateReference | None = None

    def full(self, value: str, where: str) -> str:
        """``value`` as an ISO date when it was "Feb 10"; "" (a date error) when it is wrong."""
        parts = month_day(value)
        if parts is not None:
            if self.reference is None:
                spec = self.source.spec
                self.reference = date_reference(self.source.path, spec.year, self.source.mtime, self.today)
                self.report.date_rule = self.reference.rule
                self.report.date_reference = str(self.reference.year or self.reference.day)
            full = dated(*parts, self.reference)
            if full is None:
                return self._error(NO_SUCH_DAY, where, value)
            value = full.isoformat()
        if is_future(value, self.today):
            return self._error(FUTURE_DATE, where, value)
        return value

    def _error(self, reason: str, where: str, value: str) -> str:
        if self.config.on_error == "fail":
            raise InputError(f"{self.report.path}: {where}: {reason} ({value}; today is {self.today.isoformat()})")
        report = self.report
        report.date_errors[reason] = report.date_errors.get(reason, 0) + 1
        report.first_date_error.setdefault(reason, f"{where}: {value}")
        return ""


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
        read.candidates.append(_Candidate(row, arxiv_id, identity, cut, item.where))
    read.skipped, read.skip_reasons, read.first_skipped = report.skipped, report.skip_reasons, report.first_skipped
    return read


def _unit_key(unit: list[SourceFile], path: str, reader: str, config: ParseConfig) -> str:
    """What a unit's read depends on: its files' bytes and names, its input spec and the settings.

    Not the day: dates are given their year and checked against today when a paper is kept.
    """
    first = unit[0]
    return hash_json(
        {
            "version": UNIT_READ_VERSION,
            "files": [[source.path, source.sha256] for source in unit],
            "path": path,
            "reader": reader,
            "spec": first.spec.model_dump(mode="json"),
            "config": config.model_dump(mode="json"),
        }
    )


EMPTY_MEMBER = "(empty file)"  # the reader name reported for an empty member of a folder or glob


def _read_unit(
    unit: list[SourceFile],
    config: ParseConfig,
    seen: _Seen,
    rows: list[dict[str, str]],
    *,
    one_of_many: bool,
    today: date,
    memo: MemoStore | None = None,
) -> FileReport:
    first = unit[0]
    if first.skipped is not None:  # a link to a folder that the walk did not enter
        return FileReport(path=first.path, reader=first.skipped)
    path = first.folder if first.format == "text-folder" and first.folder else first.path
    if one_of_many and first.format != "text-folder" and not first.data.strip():
        # A daily-listing folder has empty days (80 of the 410 arxiv-daily-cs files): that is a
        # day without papers, not a broken input, so it is reported rather than fatal. An
        # empty file named on its own, or a spec whose files are all empty, is still an error.
        return FileReport(path=path, reader=EMPTY_MEMBER)
    reader = _reader_name(unit)

    def compute() -> _UnitRead:
        return _read_candidates(unit, path, reader, config)

    # A unit's read depends on nothing read before it, so a run over grown inputs reads only the new files.
    read = compute() if memo is None else memo.memo(
        "parse-units", _unit_key(unit, path, reader, config), compute, _UnitReadCodec(), keep=UNIT_READS_KEPT
    )  # fmt: skip
    report = FileReport(path=path, reader=reader, read=read.read, skipped=read.skipped,
                        skip_reasons=dict(read.skip_reasons), first_skipped=dict(read.first_skipped))  # fmt: skip
    dates = _UnitDates(first, today, report, config)
    for candidate in read.candidates:
        if config.dedupe and seen.is_duplicate(candidate.arxiv_id, candidate.identity):
            report.duplicates += 1
            continue
        seen.remember(candidate.arxiv_id, candidate.identity)
        row = dict(candidate.row)
        row["paper_id"] = seen.unique_paper_id(row["paper_id"])
        row["date"] = dates.full(row["date"], candidate.where)
        rows.append(row)
        report.kept += 1
        for name in candidate.cut:
            report.truncated[name] = report.truncated.get(name, 0) + 1
    _log_report(report)
    if one_of_many and report.read == 0:
        # A day's listing with no records at all (`[]`, a CSV of only its header) is an empty
        # day like an empty file: reported with 0 read. A file whose records were all bad is not.
        log.info("%s: no records (a day without papers)", path)
        return report
    if report.kept + report.duplicates == 0:
        reasons = ", ".join(f"{reason}: {n}" for reason, n in report.skip_reasons.items())
        raise InputError(f"{path}: holds no papers ({reasons or 'nothing readable found'})")
    return report


def parse(
    sources: list[SourceFile], config: ParseConfig, today: date | None = None, memo: MemoStore | None = None
) -> ParseResult:
    """Read every source into one deduplicated papers table, in the order papers were first read.

    ``today`` (default: ``utc_today()``) dates pages that say "Feb 10" when nothing else
    does, and is the last day a listing date may be (``pipeline.parse.dates``): a later one is
    left out and counted in its file's report (``on_error: fail`` stops there instead).

    Raises InputError for a file that holds no papers, is empty, binary or unreadable as its
    format, a mapped column that is missing, or (with ``on_error: fail``) any bad record.
    One exception: an empty file that is one of several files of a folder or glob input is
    reported with reader "(empty file)" and no records, and one holding no records (a JSON
    ``[]``, a CSV of only its header) with 0 read, as long as the input holds papers.

    With a ``memo``, each unit's records as read and cleaned are kept between runs, keyed by its
    bytes, spec and the settings: a run over grown inputs, on any day, reads only the new files,
    and gives the table a cold run gives (deduplication and dates run over every unit each time).
    """
    today = today or utc_today()
    seen = _Seen()
    rows: list[dict[str, str]] = []
    files_per_spec = Counter(source.spec for source in sources if source.skipped is None)
    units = _units(sources)
    reports = [
        _read_unit(unit, config, seen, rows, one_of_many=files_per_spec[unit[0].spec] > 1, today=today, memo=memo)
        for unit in units
    ]
    for spec in dict.fromkeys(source.spec for source in sources):
        found = [
            report
            for report, unit in zip(reports, units, strict=True)
            if unit[0].spec == spec and unit[0].skipped is None
        ]
        if not found:
            raise InputError(f"{spec.path}: matches only links to folders, which are not followed")
        if sum(report.kept + report.duplicates for report in found) == 0:
            raise InputError(f"{spec.path}: none of its {len(found)} files holds a paper (all are empty)")
    if not rows:
        return ParseResult(papers=empty_papers(), file_reports=reports)
    papers = pd.DataFrame(rows, columns=list(PAPER_COLUMNS)).astype("string")
    return ParseResult(papers=papers, file_reports=reports)


def date_key_parts(sources: list[SourceFile], today: date) -> list[str]:
    """What ``parse`` reads besides the files' bytes and its config, for the parse stage's cache key.

    A page saying "Feb 10" is dated by its file's modification day, and "today" decides
    which dates are in the future and dates pages that nothing else dates: a run on another
    day, or after a file was saved again on another day, parses again (a file touched the
    same day does not).
    """
    return [f"today:{today.isoformat()}"] + [f"modified:{source.path}:{mtime_day(source.mtime)}" for source in sources]
