"""Hugging Face Daily Papers search pages saved as text: title lines, each followed by its abstract.

The page carries site chrome ("Subscribe", "Daily Papers", ...) and one date line
("Aug 12"). Papers are found by line shape, not by strict alternation: a title-like line
starts a paper, abstract-like lines after it are its abstract (several in a row are joined),
so a title with no abstract becomes a title-only paper. A line that is a title only in some
pages (one holding a url, nothing but a url, or a title longer than ``TITLE_MAX_CHARS``) starts a
paper when an abstract follows it; otherwise it is the last line of the abstract before it.
A date line ("Aug 12", "2026-02-10", but also "Feb 30") is never a title: ``parse`` dates the
page's papers by it, or reports a day that does not exist.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from pipeline.errors import InputError
from pipeline.parse.dates import is_date_line
from pipeline.parse.normalize import arxiv_search_url, clean_text, decode_utf8, has_words, split_lines
from pipeline.parse.records import Item, RawPaper, Skip
from pipeline.parse.tables import JSON_ERRORS, PARQUET_MAGIC, base_name, table_kind
from pipeline.sources import DATA_SUFFIXES, SourceFile

# Compared casefolded; these lines are the site's navigation, never a paper.
CHROME_LINES = frozenset(
    {
        "new",
        "get trending papers in your email inbox!",
        "subscribe",
        "daily papers",
        "byak and the research community",
    }
)
# Any one of these marks a saved Daily Papers page when sniffing an "auto" input.
SNIFF_MARKERS = ("get trending papers in your email inbox!", "byak and the research community")

TITLE_MAX_CHARS = 250  # the seed titles are 36..133 chars; abstracts are 1,300+
_SENTENCE_BREAK = re.compile(r"[.!?]\s+[A-Z]")
_URL = re.compile(r"https?://")
_URL_TEXT = re.compile(r"https?://\S+")


def is_hf_page(text: str) -> bool:
    """True when ``text`` holds a Daily Papers page marker line."""
    lines = {line.strip().casefold() for line in split_lines(text)[:50]}
    return any(marker in lines for marker in SNIFF_MARKERS)


def _title_shaped(line: str) -> bool:
    """At most one sentence break, and not a sentence ending in "." (many words or a break before it)."""
    breaks = len(_SENTENCE_BREAK.findall(line))
    if breaks >= 2:
        return False
    return not (line.endswith(".") and (breaks >= 1 or len(line.split()) > 20))


def looks_like_title(line: str) -> bool:
    """A title is short, holds no url and at most one sentence break ("What? A study").

    A short line ending in "." that reads as a sentence (many words or a break before it)
    is a continuation of the abstract instead, e.g. "Code is available at <url>."
    """
    return len(line) <= TITLE_MAX_CHARS and not _URL.search(line) and _title_shaped(line)


def looks_like_odd_title(line: str) -> bool:
    """A line that is a title only if an abstract follows it: nothing but a url, or a title too long.

    A title longer than ``TITLE_MAX_CHARS`` still has a title's shape (no url, at most one
    sentence break, no sentence ending in "."); ``parse`` cuts it and counts it as truncated.
    """
    if not has_words(_URL_TEXT.sub(" ", line)):
        return bool(_URL.search(line))
    return len(line) > TITLE_MAX_CHARS and not _URL.search(line) and _title_shaped(line)


# Words a link caption ends with ("Code is available at <url>"): such a line is never a title.
_CAPTION_ENDS = ("at", "in", "on", "from", "see", "here", "via", "to")


def looks_like_url_title(line: str) -> bool:
    """A title holding a url ("LinkNet: Fast Links (https://x.io)"), not a link caption ("Code: <url>").

    What is left without its urls must read as a title of at least three words that does not
    end like a caption (":" or "available at"). ``read_hf_page`` also needs it to be followed
    by an abstract; otherwise the line stays part of the abstract before it.
    """
    rest = " ".join(_URL_TEXT.sub(" ", line).split()).strip(" ()[]<>,;")
    words = rest.split()
    if len(words) < 3 or rest.endswith(":") or words[-1].casefold() in _CAPTION_ENDS:
        return False
    return len(line) <= TITLE_MAX_CHARS and looks_like_title(rest)


def _data_file_kind(source: SourceFile, text: str) -> str | None:
    """The kind ("CSV", "JSON", ...) of a data file given as a page, by its name or content; else None."""
    kind = table_kind(source)
    if kind is None or kind in ("csv", "tsv", "parquet") or base_name(source.path).endswith(DATA_SUFFIXES):
        return kind.upper() if kind else None
    # Content starting with "[" or "{": JSON only if its first line parses (a page may start "[...]").
    first = next((line for line in split_lines(text) if line.strip()), "")
    try:
        value = json.loads(first)
    except JSON_ERRORS:
        return None
    return "JSON" if isinstance(value, (dict, list)) else None


def read_hf_page(sources: list[SourceFile]) -> Iterator[Item]:
    """Yield the papers of each page; date = the page's date line as written ("Aug 12").

    ``parse`` gives it its year (``pipeline.parse.dates``).
    """
    for source in sources:
        text = decode_utf8(source.content, source.path) if not source.content.startswith(PARQUET_MAGIC) else ""
        kind = _data_file_kind(source, text)
        if kind is not None:
            # Every short line of a JSON or CSV file would pass for a title: refuse instead.
            raise InputError(
                f"{source.path}: looks like {kind}, not a saved Daily Papers page "
                "(format 'hf-daily-papers'); use format 'auto' or 'table'"
            )
        page_date = ""
        # (line number, title, abstract lines); the date is applied once the whole page is read.
        papers: list[tuple[int, str, list[str]]] = []
        # Indexes in papers of titles holding a url, only a url, or too long: kept if an abstract follows.
        maybe_titles: set[int] = set()
        for number, raw_line in enumerate(split_lines(text), 1):
            line = clean_text(raw_line)
            if not line or line.casefold() in CHROME_LINES:
                continue
            if is_date_line(line):  # "Feb 30" too: parse reports a date that does not exist
                page_date = page_date or line
            elif looks_like_title(line):
                papers.append((number, line, []))
            elif (not papers or papers[-1][2]) and (looks_like_url_title(line) or looks_like_odd_title(line)):
                maybe_titles.add(len(papers))
                papers.append((number, line, []))
            elif papers:
                papers[-1][2].append(line)
            else:
                yield Skip(f"line {number}", "abstract without a title", line[:60])
        for index in sorted(maybe_titles, reverse=True):
            if not papers[index][2] and index > 0:
                # No abstract followed: the line was the last one of the abstract before.
                papers[index - 1][2].append(papers.pop(index)[1])
        for number, title, abstract in papers:
            yield RawPaper(
                where=f"line {number}",
                title=title,
                abstract=" ".join(abstract),
                date=page_date,
                url=arxiv_search_url(title),
            )
