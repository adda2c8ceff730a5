"""A sample of the papers that depends on the papers alone: no seed, no order (``cluster.method: leiden``).

A seeded sample makes the topics of a sampled fit hinge on the seed through the papers drawn;
:func:`keyed_sample` draws the papers whose keys (their ids) hash lowest instead, so any seed,
any order of the papers and any CPU's last bits in the vectors draw the same papers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


def keyed_sample(keys: Sequence[str | bytes], size: int) -> np.ndarray:
    """Row numbers of the ``size`` papers whose keys hash lowest (8 bytes of BLAKE2b), ascending.

    keys: one per paper, e.g. its id. No seed and no order: the same keys give the same papers
    wherever they stand, and a paper's chance of being drawn is the same for every paper.
    Returns ndarray of shape (min(size, len(keys)),) int64.
    """
    if size < 0:
        raise ValueError(f"size must not be negative, not {size}")
    hashes = np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(key if isinstance(key, bytes) else key.encode(), digest_size=8).digest())
            for key in keys
        ),
        dtype=np.uint64,
        count=len(keys),
    )
    return np.sort(np.argsort(hashes, kind="stable")[:size]).astype(np.int64)
