"""What a reader yields: a raw paper, or a record it had to skip, each saying where it was."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from pipeline.sources import SourceFile


@dataclass(frozen=True)
class RawPaper:
    """One record as a reader found it; ``parse`` cleans, checks and deduplicates it.

    ``where`` locates it in its file for messages ("line 12", "row 3", a relpath).
    ``identity`` is the text that names the paper for dedupe when it has no arXiv id;
    empty means "its title". ``source`` overrides the unit's path (text-folder documents).
    ``version`` is the arXiv version its id was written with ("v2" -> 2; 0: none written): of two
    records of one arXiv id, the later version is kept (``pipeline.parse.dedupe``).
    """

    where: str
    title: str = ""
    abstract: str = ""
    arxiv_id: str = ""
    own_id: str = ""
    authors: str = ""
    date: str = ""
    url: str = ""
    label: str = ""
    identity: str = ""
    source: str = ""
    version: int = 0


@dataclass(frozen=True)
class Skip:
    """A record that is not a paper.

    ``bad`` is False for files that are simply not documents
    (a README beside the label folders), which ``on_error: fail`` does not treat as errors.
    """

    where: str
    reason: str
    detail: str = ""
    bad: bool = True


Item = RawPaper | Skip


class Reader(Protocol):
    """A reader turns one unit (a file, or every document of a text folder) into items."""

    def __call__(self, sources: list[SourceFile]) -> Iterator[Item]: ...
