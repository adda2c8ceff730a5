"""A folder of plain-text documents whose sub-folder names are the labels.

Two document shapes are recognised per file:
- a Usenet message (20 Newsgroups): title = the Subject header, abstract = the body
  after the header block. A subject names a thread, not a post (replies share it), so
  such a document is deduplicated by its subject and body together, not its title alone.
- anything else (BBC News): the first non-empty line is the headline, the rest the body.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import PurePosixPath

from pipeline.parse.normalize import bom_encoding, looks_binary
from pipeline.parse.records import Item, RawPaper, Skip
from pipeline.sources import SourceFile

_HEADER_LINE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*:[ \t]")
_SUBJECT = re.compile(r"^subject:[ \t]*(.*)$", re.IGNORECASE | re.MULTILINE)


def decode_document(data: bytes) -> str:
    """UTF-8 (BOM allowed), UTF-16/32 when a byte-order mark says so, else latin-1.

    This is an encoding rule, not a silent fallback: these corpora predate UTF-8 and are
    documented as latin-1 (20 Newsgroups; one "£" byte in BBC sport/199.txt), and latin-1
    maps every byte, so it is tried per file and only when UTF-8 decoding fails.
    """
    codec = bom_encoding(data)
    if codec in ("utf-16", "utf-32"):
        return data.decode(codec, errors="replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _container_dirs(relpaths: list[str]) -> set[str]:
    """Folders that hold other folders: a file there sits beside the label folders.

    The input folder itself counts only when it has sub-folders; a folder of documents with
    none (one newsgroup's folder given directly) is itself the label folder.
    """
    containers: set[str] = set()
    for relpath in relpaths:
        containers.update(str(parent) for parent in PurePosixPath(relpath).parents[1:])
    return containers


def split_document(text: str) -> tuple[str, str, bool]:
    """(title, body, is_usenet_message) of one document's text."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip()
    if _HEADER_LINE.match(text):
        header, _, body = text.partition("\n\n")
        subject = _SUBJECT.search(header)
        if subject:
            return subject.group(1).strip(), body, True
    title, _, body = text.partition("\n")
    return title.strip(), body, False


def read_text_folder(sources: list[SourceFile]) -> Iterator[Item]:
    """Yield one paper per document; label = the parent folder name, own id = the relpath."""
    containers = _container_dirs([source.relpath or "" for source in sources])
    for source in sources:
        relpath = source.relpath or PurePosixPath(source.path).name
        parent = PurePosixPath(relpath).parent
        if str(parent) in containers:
            yield Skip(relpath, "not inside a label folder", bad=False)
            continue
        if source.blank:
            yield Skip(relpath, "empty file")
            continue
        if bom_encoding(source.content) not in ("utf-16", "utf-32") and looks_binary(source.content):
            yield Skip(relpath, "binary file")
            continue
        title, body, usenet = split_document(decode_document(source.content))
        yield RawPaper(
            where=relpath,
            title=title,
            abstract=body,
            own_id=relpath,
            label=parent.name or PurePosixPath(source.folder or ".").name,
            identity=f"{title}\n{body}" if usenet else "",
            source=source.path,
        )
