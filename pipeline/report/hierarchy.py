"""The topic hierarchy laid out as a dendrogram: leaves in a column, merges at their distance.

The hierarchy table is BERTopic's ``hierarchical_topics`` (see ``pipeline.schema``): one
row per merge of two groups; leaf ids are topic ids, inner ids count up from the largest
topic id + 1. The layout is plain numbers, drawn by ``figures.dendrogram``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from pipeline.schema import HIERARCHY_COLUMNS


@dataclass(frozen=True)
class Merge:
    """An inner node: where it is drawn, its name and the topics under it."""

    node: int
    name: str
    distance: float
    row: float
    topics: tuple[int, ...]


@dataclass
class Dendrogram:
    """Leaf topics top to bottom (row i = leaves[i]); line segments as x/y with None breaks."""

    leaves: list[int] = field(default_factory=list)
    xs: list[float | None] = field(default_factory=list)
    ys: list[float | None] = field(default_factory=list)
    merges: list[Merge] = field(default_factory=list)


def dendrogram(hierarchy: pd.DataFrame | None, topic_ids: list[int]) -> Dendrogram | None:
    """Lay out ``hierarchy`` over the real topics ``topic_ids``; None when there is nothing to draw.

    Raises:
        ValueError: the table lacks columns, names a leaf that is not a topic, or has a
            node with two parents (it must be a tree).
    """
    if hierarchy is None or len(hierarchy) == 0:
        return None
    missing = [c for c in HIERARCHY_COLUMNS if c not in hierarchy.columns]
    if missing:
        raise ValueError(f"report: the hierarchy table lacks column(s) {', '.join(missing)}")
    children: dict[int, tuple[int, int]] = {}
    info: dict[int, tuple[str, float]] = {}
    parent_of: dict[int, int] = {}
    for row in hierarchy.itertuples(index=False):
        parent, left, right = int(row.parent_id), int(row.child_left_id), int(row.child_right_id)
        for child in (left, right):
            if child in parent_of:
                raise ValueError(f"report: hierarchy node {child} has two parents")
            parent_of[child] = parent
        children[parent] = (left, right)
        distance = float(row.distance)
        name = "" if row.parent_name is None else str(row.parent_name)
        info[parent] = (name, distance if math.isfinite(distance) else 0.0)
    known = set(topic_ids)
    leaves_named = {node for pair in children.values() for node in pair if node not in children}
    unknown = sorted(leaves_named - known)
    if unknown:
        raise ValueError(f"report: the hierarchy names topic(s) {unknown} missing from the topics table")
    roots = sorted(node for node in children if node not in parent_of)
    if not roots:
        raise ValueError("report: the hierarchy has no root (it must be a tree)")
    tree = Dendrogram()
    position: dict[int, tuple[float, float]] = {}  # node -> (x = distance, y = row)
    under: dict[int, tuple[int, ...]] = {}
    for root in roots:
        # Iterative post-order: children are placed before their parent.
        stack: list[tuple[int, bool]] = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if node not in children:
                position[node] = (0.0, float(len(tree.leaves)))
                under[node] = (node,)
                tree.leaves.append(node)
                continue
            if not expanded:
                if node in position:
                    raise ValueError(f"report: hierarchy node {node} appears twice")
                left, right = children[node]
                stack.extend([(node, True), (right, False), (left, False)])
                continue
            name, distance = info[node]
            (lx, ly), (rx, ry) = position[children[node][0]], position[children[node][1]]
            row = (ly + ry) / 2.0
            position[node] = (distance, row)
            under[node] = tuple(sorted(under[children[node][0]] + under[children[node][1]]))
            tree.xs += [lx, distance, distance, rx, None]
            tree.ys += [ly, ly, ry, ry, None]
            tree.merges.append(Merge(node, name, distance, row, under[node]))
    # Topics the hierarchy leaves out (it may skip tiny ones) still get their own row.
    for topic in sorted(known - set(tree.leaves)):
        tree.leaves.append(topic)
    return tree
