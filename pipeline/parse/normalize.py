"""Small pure helpers shared by the readers: text, ids, titles, links, dates, authors.

Nothing here knows about files or formats; every function maps strings to strings so
the readers stay short and the rules are tested once.
"""

from __future__ import annotations

import codecs
import hashlib
import re
import unicodedata
from datetime import date
from email.utils import parsedate_to_datetime
from urllib.parse import quote_plus

from pipeline.errors import InputError
from pipeline.schema import BIDI_CONTROLS

# A hyphen at a hard line break joins a compound word that was wrapped at its hyphen
# ("state-of-the-\nart"); arXiv wraps at spaces, so the hyphen itself is real text.
_HYPHEN_BREAK = re.compile(r"(?<=\w)-[ \t]*\r?\n\s*(?=\w)")

# re.ASCII: "\d" would also match Arabic-Indic and other digits, which no arXiv id has.
_NEW_ARXIV = re.compile(r"^(\d{3,4})\.(\d{1,5})(?:v\d+)?$", re.ASCII)
_OLD_ARXIV = re.compile(r"^([a-z][a-z-]*(?:\.[A-Za-z]{2})?/\d{7})(?:v\d+)?$", re.ASCII)
_ARXIV_PREFIX = re.compile(r"^(?:arxiv:|https?://(?:www\.)?arxiv\.org/(?:abs|pdf)/)", re.IGNORECASE)

# LaTeX wrappers seen in abstracts: "\url{X}" and "X{X}" (a link whose display text was
# pasted next to it, e.g. "https://github.com/a/b{https://github.com/a/b}").
_LATEX_URL = re.compile(r"\\url\{(https?://[^\s{}]+)\}")
_DOUBLED_URL = re.compile(r"(https?://[^\s{}]+)\{(https?://[^\s{}]+)\}")
_URL = re.compile(r"https?://[^\s<>\"'{}\\^`|]+")
_URL_TRAILING = ".,;:!?'\"}]>"

_ISO_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ].*)?$")
_ISO_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_SLASH_DAY = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_YMD_SLASH = re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})$")

BINARY_CONTROL_SHARE = 0.10  # more control bytes than this in the first 8 KiB means "not text"
# More undecodable bytes than this share of the first 8 KiB (and more than 16) means "binary", not
# "another encoding": latin-1 or cp1252 text has a few accented letters per line, compressed data
# has them everywhere.
BINARY_INVALID_SHARE = 0.05
# Byte-order marks name their encoding: a file that starts with one is decoded with it (no guess).
# UTF-32 first: the UTF-32-LE mark begins with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Files people save by mistake next to their listings, recognised by their first bytes.
_MAGIC = (
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (an .xlsx, .docx or .zip file)"),
    (b"\x1f\x8b", "gzip data (name the file *.gz so that it is unpacked)"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\xd0\xcf\x11\xe0", "an old Office document (.xls or .doc)"),
    (b"SQLite format 3", "an SQLite database"),
)
# Characters that carry no text: C0/C1 controls other than whitespace (which becomes a
# space below), stray byte-order marks and zero-width spaces. They would reach the CSVs
# and pages (a raw ESC byte drives a terminal that prints papers.csv) and make a
# title of invisible characters look non-empty.
_INVISIBLE = re.compile(r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\ufeff\u200b]")
# A lone UTF-16 surrogate comes from JSON escapes such as "\ud800"; it cannot be written
# as UTF-8 (parquet, CSV, hashing), so it becomes the replacement character.
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def clean_text(text: str) -> str:
    """Collapse hard line breaks and whitespace runs to single spaces; drop NUL and other invisible characters.

    Bidirectional controls (``schema.BIDI_CONTROLS``) are dropped too: they would reorder what a
    page, a feed reader, a spreadsheet or a terminal shows. Printable ASCII (most titles and
    abstracts) holds none of what the expressions look for and no whitespace but spaces: only
    its runs of spaces are collapsed (133 us a text through every expression, a few without).
    """
    if text.isascii() and text.isprintable():
        if "  " not in text and not text.startswith(" ") and not text.endswith(" "):
            return text
        return " ".join(text.split())
    text = BIDI_CONTROLS.sub("", _INVISIBLE.sub("", _SURROGATE.sub("\ufffd", text)))
    text = unicodedata.normalize("NFC", text)
    text = _HYPHEN_BREAK.sub("-", text)
    return " ".join(text.split())


def split_lines(text: str) -> list[str]:
    r"""Lines split at "\r\n", "\r" or "\n" only, so that line numbers match a text editor's.

    ``str.splitlines`` also splits at U+2028, U+0085, form feeds, ..., which may stand
    unescaped inside a JSON string and would cut a valid JSON line in two.
    """
    return _LINE_BREAK.split(text)


def has_words(text: str) -> bool:
    """True when ``text`` holds at least one letter or digit (in any script)."""
    return any(char.isalnum() for char in text)


def looks_binary(data: bytes) -> bool:
    """True when the first 8 KiB hold many control bytes (NUL, ...) that text never has."""
    sample = data[:8192]
    if not sample:
        return False
    control = sum(1 for byte in sample if byte < 32 and byte not in b"\t\n\r\f\v\x1b")
    return control / len(sample) > BINARY_CONTROL_SHARE


def bom_encoding(data: bytes) -> str | None:
    """The codec named by a byte-order mark at the start of ``data``, else None."""
    return next((codec for bom, codec in _BOMS if data.startswith(bom)), None)


def binary_kind(data: bytes) -> str | None:
    """What a binary file is ("a PDF document", ...) when its first bytes say so, else None."""
    return next((kind for magic, kind in _MAGIC if data.startswith(magic)), None)


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def decode_utf8(data: bytes, path: str) -> str:
    """Decode a whole input file as UTF-8 (or the UTF-16/32 its byte-order mark names).

    Empty, binary and otherwise encoded files are InputError naming the file (and the line
    of the first undecodable byte). NUL bytes, which text never holds (they are the
    padding a crash leaves in a file), are dropped.
    """
    if not data.strip():
        raise InputError(f"{path}: the file is empty")
    codec = bom_encoding(data)
    if codec in ("utf-16", "utf-32"):
        try:
            text = data.decode(codec)
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not valid {codec.upper()} text (byte offset {exc.start})") from None
    else:
        kind = binary_kind(data)
        if kind is not None:
            raise InputError(f"{path}: the file is {kind}, not text (expected text, JSON, CSV or Parquet)")
        if looks_binary(data):
            raise InputError(f"{path}: the file is binary, not text (expected text, JSON, CSV or Parquet)")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            sample = data[:8192].decode("utf-8", errors="replace")
            if sample.count("\ufffd") > max(16, BINARY_INVALID_SHARE * len(sample)):
                raise InputError(
                    f"{path}: the file is binary, not text (expected text, JSON, CSV or Parquet)"
                ) from None
            raise InputError(
                f"{path}: not UTF-8 text (line {_line_of(data, exc.start)}: byte 0x{data[exc.start]:02x} at offset "
                f"{exc.start}); re-save it as UTF-8"
            ) from None
    text = text.replace("\x00", "")
    if not text.strip():
        raise InputError(f"{path}: the file is empty")
    return text


def normalize_title(title: str) -> str:
    """The dedupe form of a title: casefolded, every run of non-alphanumerics one space."""
    return " ".join(re.sub(r"[\W_]+", " ", clean_text(title).casefold()).split())


def title_hash_id(title: str) -> str:
    """A stable paper_id for inputs without one: "t-" + 16 hex digits of sha1(normalised title)."""
    return "t-" + hashlib.sha1(normalize_title(title).encode("utf-8")).hexdigest()[:16]


def arxiv_search_url(title: str) -> str:
    """An arXiv title search link: the honest url for a paper known only by its title."""
    return f"https://arxiv.org/search/?query={quote_plus(clean_text(title))}&searchtype=title"


def normalize_arxiv_id(raw: str, *, repair_float: bool = False) -> str | None:
    """The arXiv id without prefix and version ("arXiv:2503.11731v2" -> "2503.11731"), or None.

    ``repair_float`` undoes a spreadsheet that stored ids as numbers: "704.0001" ->
    "0704.0001" and "704.001" -> "0704.0010" (the trailing zero was lost too). Without it an
    id must already have its 4-digit yymm and 4 (before 2015) or 5 digits.
    """
    text = _ARXIV_PREFIX.sub("", raw.strip())
    old = _OLD_ARXIV.match(text)
    if old:
        return old.group(1)
    new = _NEW_ARXIV.match(text)
    if not new:
        return None
    yymm, number = new.group(1), new.group(2)
    if repair_float:
        yymm = yymm.zfill(4)
    if len(yymm) != 4 or not 1 <= int(yymm[2:]) <= 12:
        return None
    width = 5 if int(yymm) >= 1501 else 4
    if repair_float:
        number = number.ljust(width, "0")
    if len(number) != width:
        return None
    return f"{yymm}.{number}"


_ARXIV_VERSION = re.compile(r"v(\d{1,6})$", re.ASCII)


def arxiv_version(raw: str) -> int:
    """The version written at the end of an arXiv id ("2503.11731v2" -> 2); 0 when none is written."""
    match = _ARXIV_VERSION.search(raw.strip())
    return int(match.group(1)) if match else 0


def arxiv_id_month(arxiv_id: str) -> str:
    """The submission month "YYYY-MM" encoded in an arXiv id ("2503.11731" -> "2025-03")."""
    digits = arxiv_id.split("/")[-1][:4] if "/" in arxiv_id else arxiv_id[:4]
    yy, mm = int(digits[:2]), digits[2:4]
    # arXiv started in 1991: two-digit years from 91 on are 19xx, the rest 20xx.
    return f"{1900 + yy if yy >= 91 else 2000 + yy}-{mm}"


def unwrap_urls(text: str) -> str:
    r"""Remove LaTeX link wrappers so the abstract reads naturally ("\url{X}" -> "X")."""
    text = _LATEX_URL.sub(r"\1", text)
    return _DOUBLED_URL.sub(lambda m: m.group(1) if m.group(1) == m.group(2) else f"{m.group(1)} {m.group(2)}", text)


def _trim_url(url: str) -> str:
    while url and url[-1] in _URL_TRAILING + ")":
        # A closing parenthesis belongs to the url only when the url opened one.
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        url = url[:-1]
    return url


def extract_links(text: str) -> tuple[str, str]:
    """Return (text with LaTeX url wrappers removed, space-separated unique http(s) urls)."""
    text = unwrap_urls(text)
    links: list[str] = []
    for match in _URL.finditer(text):
        url = _trim_url(match.group(0))
        if len(url) > len("https://") and url not in links:
            links.append(url)
    return text, " ".join(links)


def iso_date(value: str) -> str:
    """Write a known date layout as ISO ("11/26/2008" -> "2008-11-26"); other text is kept as given.

    Slash dates are read month first (the arXiv snapshot CSV's layout) unless the first
    number cannot be a month.
    """
    text = value.strip()
    if not text:
        return ""
    parts: tuple[int, int, int] | None = None
    if match := _ISO_DAY.match(text):
        parts = (int(match.group(1)), int(match.group(2)), int(match.group(3)))
    elif _ISO_MONTH.match(text):
        return text
    elif match := _SLASH_DAY.match(text):
        first, second, year = int(match.group(1)), int(match.group(2)), int(match.group(3))
        parts = (year, second, first) if first > 12 else (year, first, second)
    elif match := _YMD_SLASH.match(text):
        parts = (int(match.group(1)), int(match.group(2)), int(match.group(3)))
    else:
        try:
            return parsedate_to_datetime(text).date().isoformat()
        except (TypeError, ValueError, IndexError, OverflowError):  # "1 Jan 99999999999": year out of range
            return text
    try:
        return date(*parts).isoformat()
    except ValueError:
        return text


def split_snapshot_authors(authors: str) -> str:
    """The snapshot's "A, B and C" author string as "A; B; C"."""
    names = re.split(r",\s*(?:and\s+)?|\s+and\s+", clean_text(authors))
    return "; ".join(name.strip() for name in names if name.strip())


def join_authors(value: object) -> str:
    """A list of author names as "A; B"; a string is kept as written (whitespace cleaned)."""
    if isinstance(value, (list, tuple)):
        return "; ".join(clean_text(str(name)) for name in value if name is not None and str(name).strip())
    if value is None:
        return ""
    return clean_text(str(value))
