"""``python -m pipeline`` is the same command as the ``papertopics`` console script."""

import sys

from pipeline.cli import main

# Guarded: a process spawned by the run (the cluster stage's map layout) imports this module too.
if __name__ == "__main__":
    sys.exit(main())
