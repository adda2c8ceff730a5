"""Parts of the report kept between runs: each topic's CSV and the paper rows of the topic pages.

A label setting changed on a finished run (``n_keywords``, ``name_phrases``) moves no paper,
so these parts, the report's largest (120 MB of CSV and 38,000 table rows at 75,000 papers),
come out as before. ``build_report`` asks for them through a :data:`ReportMemo`: ``memo(part,
key, compute, codec)`` gives ``compute()``'s value, or the value kept under the same ``key``.
The key holds what the part depends on besides the papers and assignments tables, which the
report stage adds (their hashes in the artifact store) with the hash of the report's code
(``pipeline.stages.report``); :func:`computed`, the default, keeps nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np

from pipeline.memo import Codec

T = TypeVar("T")
ReportMemo = Callable[[str, Mapping[str, Any], Callable[[], T], Codec[T]], T]
# Each topic's CSV file (header and rows), by topic id in ascending order, and the header alone.
TopicCsvs = tuple[bytes, dict[int, bytes]]


def computed(part: str, key: Mapping[str, Any], compute: Callable[[], T], codec: Codec[T]) -> T:
    """The :data:`ReportMemo` that keeps nothing: every part is computed."""
    return compute()


def _joined(chunks: list[bytes]) -> dict[str, np.ndarray]:
    return {
        "sizes": np.array([len(chunk) for chunk in chunks], dtype=np.int64),
        "data": np.frombuffer(b"".join(chunks), dtype=np.uint8),
    }


def _split(arrays: Mapping[str, np.ndarray]) -> list[bytes]:
    sizes, data = arrays["sizes"], arrays["data"]
    if sizes.ndim != 1 or (sizes < 0).any() or int(sizes.sum()) != len(data):
        raise ValueError("kept report part: its sizes do not add up to its bytes")
    bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    raw = np.ascontiguousarray(data).data
    return [bytes(raw[start:end]) for start, end in itertools.pairwise(bounds)]


class TopicCsvsArrays:
    """:data:`TopicCsvs` as arrays (``pipeline.memo`` codec)."""

    def encode(self, value: TopicCsvs) -> dict[str, np.ndarray]:
        header, files = value
        return {"topics": np.array(list(files), dtype=np.int64), **_joined([header, *files.values()])}

    def decode(self, arrays: Mapping[str, np.ndarray]) -> TopicCsvs:
        header, *files = _split(arrays)
        topics = arrays["topics"].tolist()
        if len(topics) != len(files):
            raise ValueError("kept topic CSVs: one file per topic expected")
        return header, dict(zip(topics, files, strict=True))


class TextRows:
    """A list of str as arrays (``pipeline.memo`` codec): UTF-8 bytes and each string's size."""

    def encode(self, value: list[str]) -> dict[str, np.ndarray]:
        return _joined([text.encode("utf-8") for text in value])

    def decode(self, arrays: Mapping[str, np.ndarray]) -> list[str]:
        return [chunk.decode("utf-8") for chunk in _split(arrays)]
