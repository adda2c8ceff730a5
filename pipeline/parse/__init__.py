"""The parse stage: input files (as bytes) -> one papers table plus a report per input file.

Pure: ``collect_sources`` (pipeline/sources.py) reads the files; ``parse`` only sees bytes.
A reader is picked per unit (one file, or all documents of one text folder) from
``READERS`` by ``spec.format``, or by ``sniff_format`` when the format is "auto". Every
record is cleaned (whitespace, hard line breaks, NUL bytes, links), cut to a sane length
(``MAX_TITLE_CHARS``, ``MAX_ABSTRACT_CHARS``), checked (``min_text_chars``, at least one
letter or digit), and deduplicated: by arXiv id ignoring the version, else by its
normalised title (``pipeline.parse.dedupe``: which record of an arXiv id is kept does not
depend on the order of the inputs).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import date

import pandas as pd

from pipeline.config import InputSpec, ParseConfig
from pipeline.engine import Engine, LocalEngine
from pipeline.errors import InputError
from pipeline.memo import MemoStore
from pipeline.parse.dates import (
    FUTURE_DATE,
    NO_SUCH_DATE,
    NO_SUCH_DAY,
    DateReference,
    date_reference,
    dated,
    is_future,
    month_day,
    mtime_day,
    no_such_date,
    utc_today,
)
from pipeline.parse.dedupe import Seen, kept_records
from pipeline.parse.units import (
    _LIMITS,
    MAX_ABSTRACT_CHARS,
    MAX_TITLE_CHARS,
    READERS,
    UNIT_READS_KEPT,
    FileReport,
    HeldRead,
    HeldReadCodec,
    _Candidate,
    _unit_key,
    _UnitRead,
    _UnitReadCodec,
    read_unit,
    read_unit_part,
)
from pipeline.schema import PAPER_COLUMNS, empty_papers
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

# Seconds for every unit not in the memo to be read on the Dask workers (all of them, one map).
READ_TIMEOUT_S = 3600.0
UNITS_MEMO = "parse-units"  # the memo namespace of the units' reads


@dataclass(frozen=True)
class ParseResult:
    """``papers``: exactly schema.PAPER_COLUMNS as strings, in the order the kept records were read.

    ``file_reports``: one report per unit.
    """

    papers: pd.DataFrame
    file_reports: list[FileReport]


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


def _log_report(report: FileReport) -> None:
    for reason, count in report.skip_reasons.items():
        first = report.first_skipped[reason]
        log.info("%s: %d record(s) skipped, %s; the first at %s", report.path, count, reason, first)
    if report.duplicates_other_text:
        other = report.duplicates_other_text
        log.info("%s: %d duplicate(s) held another text than the record kept", report.path, other)
    for name, count in report.truncated.items():
        log.info("%s: cut %d %s(s) longer than %d characters", report.path, count, name, _LIMITS[name])
    for reason, count in report.date_errors.items():
        first = report.first_date_error[reason]
        log.warning("%s: %d paper(s) left undated, %s; the first at %s", report.path, count, reason, first)


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
        if no_such_date(value):
            return self._error(NO_SUCH_DATE, where, value)
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


EMPTY_MEMBER = "(empty file)"  # the reader name reported for an empty member of a folder or glob


def _unit_path(unit: list[SourceFile]) -> str:
    first = unit[0]
    return first.folder if first.format == "text-folder" and first.folder else first.path


def _empty_member(unit: list[SourceFile], one_of_many: bool) -> bool:
    # A daily-listing folder has empty days (80 of the 410 arxiv-daily-cs files): that is a
    # day without papers, not a broken input, so it is reported rather than fatal. An
    # empty file named on its own, or a spec whose files are all empty, is still an error.
    first = unit[0]
    return one_of_many and first.format != "text-folder" and first.blank


def _unit_read(
    unit: list[SourceFile],
    config: ParseConfig,
    *,
    one_of_many: bool,
    memo: MemoStore | None = None,
    read_before: HeldRead | None = None,
) -> _UnitRead | HeldRead | FileReport:
    """The unit's read (``read_before``: read on the workers, kept encoded), or its report when nothing is read.

    Raises InputError for a unit that holds no papers (see ``parse``).
    """
    first = unit[0]
    if first.skipped is not None:  # a link to a folder that the walk did not enter
        return FileReport(path=first.path, reader=first.skipped)
    path = _unit_path(unit)
    if _empty_member(unit, one_of_many):
        return FileReport(path=path, reader=EMPTY_MEMBER)

    def compute() -> _UnitRead:
        return read_unit(unit, path, config)

    # A unit's read depends on nothing read before it, so a run over grown inputs reads only the new files.
    if read_before is not None:
        if read_before.arxiv_ids:  # it holds papers: decoded when its turn comes (_keep_unit)
            return read_before
        read = read_before.decoded()  # no candidate: small, and checked below
    else:
        read = compute() if memo is None else memo.memo(
            UNITS_MEMO, _unit_key(unit, path, config), compute, _UnitReadCodec(), keep=UNIT_READS_KEPT
        )  # fmt: skip
    # A day's listing with no records at all (`[]`, a CSV of only its header) is an empty day like
    # an empty file: reported with 0 read. A file whose records were all bad is not.
    if not read.candidates and not (one_of_many and read.read == 0):
        reasons = ", ".join(f"{reason}: {n}" for reason, n in read.skip_reasons.items())
        raise InputError(f"{path}: holds no papers ({reasons or 'nothing readable found'})")
    return read


def _keep_unit(
    unit: list[SourceFile],
    read: _UnitRead | HeldRead,
    config: ParseConfig,
    seen: Seen,
    kept: _Kept,
    rows: list[dict[str, str]],
    today: date,
) -> FileReport:
    """The report of the unit numbered ``kept.unit``, its kept papers appended to ``rows``."""
    if isinstance(read, HeldRead):
        read = read.decoded()
    first = unit[0]
    path = _unit_path(unit)
    report = FileReport(path=path, reader=read.reader, read=read.read, skipped=read.skipped,
                        skip_reasons=dict(read.skip_reasons), first_skipped=dict(read.first_skipped))  # fmt: skip
    dates = _UnitDates(first, today, report, config)
    for index, candidate in enumerate(read.candidates):
        place = kept.places.get(candidate.arxiv_id)
        if config.dedupe and place is not None and place != (kept.unit, index):
            # Another record of this arXiv id is kept (pipeline.parse.dedupe); its title still
            # marks an id-less record read later as the same paper.
            seen.identities.add(candidate.identity)
            report.duplicates += 1
            if f"{candidate.row['title']}\n{candidate.row['abstract']}" != kept.texts[candidate.arxiv_id]:
                report.duplicates_other_text += 1
            continue
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
    if read.read == 0:
        log.info("%s: no records (a day without papers)", path)
    return report


@dataclass
class _Kept:
    """Per arXiv id read more than once: where its kept record is and its text; ``unit``: the unit at hand."""

    places: dict[str, tuple[int, int]]
    texts: dict[str, str]
    unit: int = 0


def _read_on_workers(
    units: list[list[SourceFile]],
    config: ParseConfig,
    files_per_spec: Counter[InputSpec],
    memo: MemoStore | None,
    engine: Engine,
) -> dict[int, HeldRead]:
    """The reads of the units to read, by unit index: from the memo, else read on ``engine``'s workers.

    One task per unit not in the memo, carrying its files' paths and hashes: the worker opens them
    (``SourceFile.loaded``) and encodes its read. What the workers return is stored in the memo here
    as it is, and every read stays encoded until its unit's turn (``HeldRead``).
    Skipped links and empty members of a folder are not read (``_read_unit`` reports them).
    """
    reads: dict[int, HeldRead] = {}
    todo: list[tuple[int, str, tuple[list[SourceFile], str]]] = []  # (index, memo key, part)
    for index, unit in enumerate(units):
        if unit[0].skipped is not None or _empty_member(unit, files_per_spec[unit[0].spec] > 1):
            continue
        path = _unit_path(unit)
        key = _unit_key(unit, path, config)
        stored = None if memo is None else memo.get(UNITS_MEMO, key, HeldReadCodec())
        if stored is not None:
            reads[index] = stored
        else:
            todo.append((index, key, (unit, path)))
    parts = [part for _, _, part in todo]
    fresh = engine.map(read_unit_part, parts, timeout_s=READ_TIMEOUT_S, common={"config": config})
    for (index, key, _), read in zip(todo, fresh, strict=True):
        if memo is not None:
            memo.put(UNITS_MEMO, key, read, HeldReadCodec(), keep=UNIT_READS_KEPT)
        reads[index] = read
    log.info("parse: %d unit(s) read on the workers, %d from the memo", len(todo), len(reads) - len(todo))
    return reads


def parse(
    sources: list[SourceFile],
    config: ParseConfig,
    today: date | None = None,
    memo: MemoStore | None = None,
    engine: Engine | None = None,
) -> ParseResult:
    """Read every source into one deduplicated papers table, in the order the kept records were read.

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

    With an ``engine`` other than the local one (Dask), the units not in the memo are read on its
    workers first, one task per unit; deduplication, paper ids and dates stay here, in input
    order, so the table and reports are the local engine's. Without one, or with the local
    engine, each unit is read here when its turn comes.
    """
    today = today or utc_today()
    files_per_spec = Counter(source.spec for source in sources if source.skipped is None)
    units = _units(sources)
    read_before: dict[int, HeldRead] = {}
    if engine is not None and not isinstance(engine, LocalEngine):
        read_before = _read_on_workers(units, config, files_per_spec, memo, engine)
    reads: list[_UnitRead | HeldRead | FileReport | None] = [
        _unit_read(unit, config, one_of_many=files_per_spec[unit[0].spec] > 1, memo=memo,
                   read_before=read_before.pop(index, None))
        for index, unit in enumerate(units)
    ]  # fmt: skip
    # Which record of an arXiv id read twice is kept is decided over every unit at once, not by order.
    arxiv_ids = [_arxiv_ids(read) if config.dedupe else [] for read in reads]
    kept = _Kept(*kept_records(arxiv_ids, lambda unit: _candidates(reads[unit])))
    del arxiv_ids
    seen = Seen()
    tables: list[pd.DataFrame] = []  # each unit's kept papers, as the table's string columns
    reports: list[FileReport] = []
    for index, unit in enumerate(units):
        read, reads[index] = reads[index], None  # its records become rows: the read itself can go
        if isinstance(read, _UnitRead | HeldRead):
            kept.unit = index
            rows: list[dict[str, str]] = []
            reports.append(_keep_unit(unit, read, config, seen, kept, rows, today))
            if rows:  # a unit's rows become columns now: a million rows as dicts would wait for the last unit
                tables.append(pd.DataFrame(rows, columns=list(PAPER_COLUMNS)).astype("string"))
        elif read is not None:
            reports.append(read)
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
    if not tables:
        return ParseResult(papers=empty_papers(), file_reports=reports)
    papers = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
    return ParseResult(papers=papers, file_reports=reports)


def _arxiv_ids(read: _UnitRead | HeldRead | FileReport | None) -> list[str]:
    """The arXiv id of each of a unit's records ("" for none); none for a unit with nothing read."""
    if isinstance(read, HeldRead):
        return read.arxiv_ids
    return [candidate.arxiv_id for candidate in read.candidates] if isinstance(read, _UnitRead) else []


def _candidates(read: _UnitRead | HeldRead | FileReport | None) -> list[_Candidate]:
    """A unit's records, decoded when held encoded."""
    if isinstance(read, HeldRead):
        return read.decoded().candidates
    return read.candidates if isinstance(read, _UnitRead) else []


def date_key_parts(sources: list[SourceFile], today: date) -> list[str]:
    """What ``parse`` reads besides the files' bytes and its config, for the parse stage's cache key.

    A page saying "Feb 10" is dated by its file's modification day, and "today" decides
    which dates are in the future and dates pages that nothing else dates: a run on another
    day, or after a file was saved again on another day, parses again (a file touched the
    same day does not).
    """
    return [f"today:{today.isoformat()}"] + [f"modified:{source.path}:{mtime_day(source.mtime)}" for source in sources]
