"""A run's topic names, topic tree and name audit as one value (:class:`Naming`), kept between runs.

Naming reads the phrases of every paper: at 75k papers it is most of a relabel's CPU. A label
setting that changes only the keywords (:data:`KEYWORD_SETTINGS`) moves no paper and leaves the
names as they were, but for one thing: a topic that no written phrase names is named from its
keywords. :class:`Naming` records those topics with the keywords their names were made from,
and kept names serve (``label.cache.cached_naming``) only while each such topic has the same
keywords; everything else they depend on is in their key (phrase index, topics, centroids,
model, the other label settings and the label code).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from pipeline.config import LabelConfig
from pipeline.label.geometry import hierarchy_frame

# Label settings that change the keywords and nothing else of what naming reads.
KEYWORD_SETTINGS = ("n_keywords", "keyword_min_papers", "keyword_min_share", "reduce_frequent_words", "mmr_diversity")
# The audit columns naming adds to the topics table, in this order (``audit.with_name_audit``).
AUDIT_COLUMNS = ("name_coverage", "name_lift", "name_rank", "name_faults")


class NamingMemo(Protocol):
    """How a caller keeps names: ``memo(parts, work_out, valid)``.

    Gives a kept :class:`Naming` for the caller's key and ``parts`` that ``valid`` accepts, else
    ``work_out()`` (then kept).
    """

    def __call__(
        self, parts: Mapping[str, str], work_out: Callable[[], Naming], valid: Callable[[Naming], bool]
    ) -> Naming: ...


def naming_settings(config: LabelConfig) -> dict[str, Any]:
    """The label settings naming may depend on: all but :data:`KEYWORD_SETTINGS`."""
    return {name: value for name, value in config.model_dump(mode="json").items() if name not in KEYWORD_SETTINGS}


@dataclass(frozen=True)
class Naming:
    """What naming gives: names, the tree, the coarse groups, the audit, and which names came from keywords.

    names: topic -> name (outliers included); hierarchy: the topic tree (``schema.HIERARCHY_COLUMNS``);
    coarse_of: real topic -> coarse group; coarse_names: group -> name; audit: per column of
    :data:`AUDIT_COLUMNS`, one value per topic in ascending order; fallback: the topics named from
    their keywords, and those keywords (words only).
    """

    names: dict[int, str]
    hierarchy: pd.DataFrame
    coarse_of: dict[int, int]
    coarse_names: dict[int, str]
    audit: dict[str, list[Any]]
    fallback: dict[int, list[str]]


class NamingArrays:
    """A :class:`Naming` as one JSON document in a uint8 array (``pipeline.memo`` codec)."""

    def encode(self, value: Naming) -> dict[str, np.ndarray]:
        document = {
            "names": list(value.names.items()),
            "hierarchy": value.hierarchy.to_dict("records"),
            "coarse_of": list(value.coarse_of.items()),
            "coarse_names": list(value.coarse_names.items()),
            "audit": value.audit,
            "fallback": list(value.fallback.items()),
        }
        return {"json": np.frombuffer(json.dumps(document).encode("utf-8"), dtype=np.uint8)}

    def decode(self, arrays: Mapping[str, np.ndarray]) -> Naming:
        document = json.loads(arrays["json"].tobytes().decode("utf-8"))
        if set(document["audit"]) != set(AUDIT_COLUMNS):
            raise ValueError("kept names: other audit columns")
        return Naming(
            {int(topic): str(name) for topic, name in document["names"]},
            hierarchy_frame(document["hierarchy"]),
            {int(topic): int(group) for topic, group in document["coarse_of"]},
            {int(group): str(name) for group, name in document["coarse_names"]},
            {column: document["audit"][column] for column in AUDIT_COLUMNS},
            {int(topic): [str(word) for word in words] for topic, words in document["fallback"]},
        )
