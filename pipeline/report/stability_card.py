"""The dashboard's card for ``evaluate --stability`` (``pipeline.stability``), read by the report stage.

Kept apart from ``pipeline.stability``, which reclusters and so imports the cluster code: the
report stage's cache key follows only the code it runs (``pipeline.code_hash``).
"""

from __future__ import annotations

from typing import Any

STABILITY_FILE = "stability.json"  # in the run folder, beside manifest.json


def stability_card(stability: dict[str, Any] | None, labels_sha256: str) -> dict[str, str] | None:
    """The dashboard's card for a stored stability result, or None when there is none for this clustering."""
    if not stability or stability.get("labels_sha256") != labels_sha256:
        return None
    n_other = len(stability["seeds"]) - 1
    low, high = stability["n_topics_min"], stability["n_topics_max"]
    topics = f"{low}" if low == high else f"{low} to {high}"
    return {
        "label": "seed stability (ARI)",
        "value": f"{stability['ari_mean']:.2f}",
        "note": (
            f"mean agreement of this run's topics with {n_other} reruns on other seeds (lowest pair "
            f"{stability['ari_min']:.2f}; 1 = the same grouping); {topics} topics across the seeds"
        ),
    }
