"""Following a feed: stable topic ids across runs, updates of a clustering, and what changed.

- ``identity``: a run's topics matched to the previous run's by shared papers and centroids,
  the topic registry (every id ever given) and the topic history (born, grew, merged, split,
  moved, faded).
- ``update``: new papers placed in an existing clustering (nearest centroid with the outlier
  bar; the rest pooled, and dense groups of the pool become new clusters), and the drift bar
  past which everything is reclustered.
"""
