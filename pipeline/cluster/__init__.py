"""Clustering papers: embeddings in, topics and map positions out.

- ``fit``: UMAP + HDBSCAN over every paper (:func:`pipeline.cluster.fit.cluster_papers`);
- ``sample_fit``: the same fitted on a seeded sample, every other paper placed by its nearest
  sample papers (large piles);
- ``update``: new papers placed among clusters computed before (a feed's update);
- ``neighbours``: the exact nearest-neighbour search and weighted means that ``sample_fit`` and
  ``update`` share (the same bits for any block shape or CPU).

This file imports nothing, so importing one module of the package pulls in no other.
"""
