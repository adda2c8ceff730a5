"""Agreement of topics with labels a corpus already has (arXiv category, newsgroup, BBC section).

NMI, AMI and ARI from the topics x labels contingency table, as scikit-learn computes them (a
test compares both on random labellings): importing scikit-learn alone costs about a second,
and the label stage, rerun whenever a label setting changes, needs nothing else from it.
Papers without a label are left out; outliers (-1) count as one group. Pure functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def label_agreement(topics_per_paper: Sequence[int], labels: Sequence[str | None]) -> dict[str, float | None]:
    """NMI, AMI and ARI between topics and known labels, as scikit-learn computes them.

    Outliers count as one more cluster, -1, as if it were a topic: a model gains nothing by
    sending hard papers to the outliers. Papers without a label (``""`` or ``None``) are left
    out; all three are ``None`` when fewer than two papers carry one. NMI and AMI use the
    arithmetic mean of the entropies (scikit-learn's default, as in BERTopic's and most
    papers' tables). Computed here from the contingency table (a test compares every value
    with scikit-learn's): importing scikit-learn costs a second, and the label stage, which
    reruns on every label setting change, has nothing else to ask of it.
    """
    if len(topics_per_paper) != len(labels):
        raise ValueError(f"{len(topics_per_paper)} topics but {len(labels)} labels: one of each per paper")
    known = known_mask(labels)
    if known.sum() < 2:
        return {"nmi": None, "ami": None, "ari": None}
    label_ids = np.unique(np.array([str(label) for label in labels], dtype=object)[known], return_inverse=True)[1]
    topic_ids = np.unique(np.asarray(topics_per_paper, dtype=np.int64)[known], return_inverse=True)[1]
    table = np.zeros((label_ids.max() + 1, topic_ids.max() + 1), dtype=np.int64)
    np.add.at(table, (label_ids, topic_ids), 1)
    return {"nmi": _nmi(table), "ami": _ami(table), "ari": _ari(table)}


def _entropy(counts: np.ndarray) -> float:
    counts = counts[counts > 0].astype(np.float64)
    if counts.size <= 1:
        return 0.0
    total = counts.sum()
    return float(-np.sum(counts / total * (np.log(counts) - np.log(total))))


def _mutual_information(table: np.ndarray) -> float:
    rows, columns = table.sum(axis=1), table.sum(axis=0)
    if rows.size == 1 or columns.size == 1:
        return 0.0
    i, j = np.nonzero(table)
    joint, total = table[i, j].astype(np.float64), float(table.sum())
    outer = rows[i].astype(np.float64) * columns[j].astype(np.float64)
    terms = joint / total * (np.log(joint) - np.log(total)) + joint / total * (
        -np.log(outer) + np.log(rows.sum()) + np.log(columns.sum())
    )
    terms = np.where(np.abs(terms) < np.finfo(np.float64).eps, 0.0, terms)
    return max(float(terms.sum()), 0.0)


def _nmi(table: np.ndarray) -> float:
    if table.shape[0] == table.shape[1] == 1:
        return 1.0
    mi = _mutual_information(table)
    if mi == 0:
        return 0.0
    return mi / ((_entropy(table.sum(axis=1)) + _entropy(table.sum(axis=0))) / 2)


def _expected_mutual_information(table: np.ndarray) -> float:
    """E[MI] of two labellings with these class sizes under random assignment (Vinh et al. 2010).

    The sum runs over each pair of sizes (a, b) and each possible overlap n of a class of
    size a and one of size b; pairs of equal sizes give equal terms, so each distinct pair
    is computed once and weighted by how often it occurs.
    """
    from scipy.special import gammaln

    rows, columns = table.sum(axis=1), table.sum(axis=0)
    if rows.size == 1 or columns.size == 1:
        return 0.0
    total = int(table.sum())
    log_factorial = gammaln(np.arange(total + 1, dtype=np.float64) + 1)  # log(k!) for k = 0..total
    row_sizes, row_counts = np.unique(rows, return_counts=True)
    column_sizes, column_counts = np.unique(columns, return_counts=True)
    emi = 0.0
    for a, a_count in zip(row_sizes.tolist(), row_counts.tolist(), strict=True):
        for b, b_count in zip(column_sizes.tolist(), column_counts.tolist(), strict=True):
            overlap = np.arange(max(1, a + b - total), min(a, b) + 1)
            if overlap.size == 0:
                continue
            log_probability = (
                log_factorial[a] + log_factorial[b] + log_factorial[total - a] + log_factorial[total - b]
                - log_factorial[total] - log_factorial[overlap] - log_factorial[a - overlap]
                - log_factorial[b - overlap] - log_factorial[total - a - b + overlap]
            )  # fmt: skip
            information = overlap / total * (np.log(total) + np.log(overlap) - np.log(a) - np.log(b))
            emi += a_count * b_count * float(np.sum(information * np.exp(log_probability)))
    return emi


def _ami(table: np.ndarray) -> float:
    if table.shape[0] == table.shape[1] == 1:
        return 1.0
    if table.shape[0] == 1 or table.shape[1] == 1:
        return 0.0
    mi, emi = _mutual_information(table), _expected_mutual_information(table)
    normalizer = (_entropy(table.sum(axis=1)) + _entropy(table.sum(axis=0))) / 2
    eps = np.finfo(np.float64).eps
    # As scikit-learn: keep the signs when the expectation meets the maximum (a perfect match).
    denominator = min(normalizer - emi, -eps) if normalizer - emi < 0 else max(normalizer - emi, eps)
    numerator = min(mi - emi, -eps) if mi - emi < 0 else max(mi - emi, eps)
    return float(numerator / denominator)


def _ari(table: np.ndarray) -> float:
    total = int(table.sum())
    sum_squares = int(np.sum(table**2))  # Python ints from here: products below pass 2**63 at 75k papers
    rows, columns = table.sum(axis=1), table.sum(axis=0)
    together = sum_squares - total  # pairs in the same class and the same topic (x2)
    only_topic = int(np.sum(table * columns[None, :])) - sum_squares
    only_label = int(np.sum(table * rows[:, None])) - sum_squares
    apart = total * total - only_topic - only_label - sum_squares
    if only_topic == 0 and only_label == 0:
        return 1.0
    return (
        2.0
        * (together * apart - only_label * only_topic)
        / ((together + only_label) * (only_label + apart) + (together + only_topic) * (only_topic + apart))
    )


def known_mask(labels: Sequence[str | None]) -> np.ndarray:
    """Which labels are known: not None, NaN/NA or the empty string."""
    import pandas as pd

    values = np.empty(len(labels), dtype=object)
    values[:] = list(labels)
    missing = pd.isna(values)
    return ~missing & np.array([str(value) != "" for value in values.tolist()], dtype=bool)
