"""Following a feed: stable topic ids across runs, updates of a clustering, and what changed.

Pure functions: the previous run's state, the new papers and their vectors in, the new state
out. Nothing here reads or writes a file, a cache or a stage's context: the cluster and label
stages read the run's history and hand plain data in.

- ``identity``: a run's topics matched to the previous run's by shared papers and centroids,
  the topic registry (every id ever given) and the topic history (born, grew, merged, split,
  moved, faded).
- ``update``: new papers placed in an existing clustering (nearest centroid with the outlier
  bar; the rest pooled, and dense groups of the pool become new clusters), and the drift bar
  past which everything is reclustered.
- ``label_step``: the last run's topics from its carried tables, this run's stable ids and feed files.
- ``label_update`` and ``relabel``: the label sums a grown feed is relabelled from, what blocks
  that, and the tables it gives (the label stage's relabel path, ``pipeline.label.paths``).
"""
