"""``python -m pipeline`` is the same command as the ``papertopics`` console script."""

import sys

from pipeline.cli import main

sys.exit(main())
