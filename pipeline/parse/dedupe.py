"""Which record of a paper read more than once is kept: by rules that do not depend on the inputs' order.

Records of one arXiv id (its version ignored) are one paper. Which text it keeps is decided by
:func:`text_rank`: the later version, then the later date, then the longer text, then the text's
hash (so two texts never tie). Of the records holding that text (and version), the one listed
first in time is kept (the earlier date, then the hash of the whole record): a paper listed again
unchanged keeps the day it first appeared. The order of the files and rows decides nothing.

Records without an arXiv id are one paper when their normalised titles agree; a paper with an id
also merges into an id-less one with its title (a page listing it) read before it: for these, the
record read first is kept.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pipeline.files import hash_json
from pipeline.parse.units import _Candidate

_ISO_START = re.compile(r"^\d{4}-\d{2}")  # dates compared as written: ISO days and months only

Place = tuple[int, int]  # (unit index, candidate index in its unit's read)


def _text(candidate: _Candidate) -> str:
    return f"{candidate.row['title']}\n{candidate.row['abstract']}"


def _date(candidate: _Candidate) -> str:
    value = candidate.row["date"]
    return value if _ISO_START.match(value) else ""


def text_rank(candidate: _Candidate) -> tuple[int, str, int, str]:
    """Larger wins: (version, ISO date or "", text length, text sha256)."""
    text = _text(candidate)
    return candidate.version, _date(candidate), len(text), hashlib.sha256(text.encode("utf-8")).hexdigest()


def _record_rank(candidate: _Candidate) -> tuple[str, str]:
    """Smaller wins among records of one text: (ISO date, or "~" after every date when none; record hash)."""
    return _date(candidate) or "~", hash_json(candidate.row)


def kept_records(
    arxiv_ids: Sequence[Sequence[str]], candidates_of: Callable[[int], Sequence[_Candidate]]
) -> tuple[dict[str, Place], dict[str, str]]:
    """For every arXiv id read more than once: where its kept record is, and its text.

    ``arxiv_ids``: each unit's records' arXiv ids ("" for none), in input order;
    ``candidates_of(unit)``: that unit's cleaned records, asked for once per unit that holds
    an id read more than once (a Dask run holds the records encoded: ``units.HeldRead``). Ids
    read once are not listed (their only record is kept).
    """
    first: dict[str, int] = {}  # id -> its first record, as unit << 32 | index (an int: 1M ids in ~100 MB)
    again: dict[str, list[Place]] = {}  # ids read more than once -> every record
    for unit, ids in enumerate(arxiv_ids):
        for index, arxiv_id in enumerate(ids):
            if not arxiv_id:
                continue
            seen = first.setdefault(arxiv_id, unit << 32 | index)
            if seen != unit << 32 | index:
                again.setdefault(arxiv_id, [(seen >> 32, seen & 0xFFFFFFFF)]).append((unit, index))
    del first
    wanted: dict[int, list[int]] = {}  # unit -> its records of an id read more than once
    for found in again.values():
        for unit, index in found:
            wanted.setdefault(unit, []).append(index)
    ranks: dict[Place, tuple[tuple[int, str, int, str], tuple[str, str], str]] = {}
    for unit in sorted(wanted):
        records = candidates_of(unit)
        for index in wanted[unit]:
            candidate = records[index]
            ranks[unit, index] = (text_rank(candidate), _record_rank(candidate), _text(candidate))
    kept: dict[str, Place] = {}
    texts: dict[str, str] = {}
    for arxiv_id, found in again.items():
        best = max(ranks[place][0] for place in found)
        # The best text, and version: its record listed first (a later date may hold the same text).
        holders = [place for place in found if ranks[place][0][0] == best[0] and ranks[place][0][2:] == best[2:]]
        place = min(holders, key=lambda place: ranks[place][1])
        kept[arxiv_id] = place
        texts[arxiv_id] = ranks[place][2]
    return kept, texts


@dataclass
class Seen:
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
