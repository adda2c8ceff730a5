"""The pipeline's stages, in order: the one list the runner loops over.

Each module here declares one ``STAGE`` (``pipeline.stage.Stage``) next to its run function:
what it reads, what it writes, the config slice and extra inputs that key its cache. The
stage's own computation lives in its package (``pipeline.parse``, ``pipeline.embed``,
``pipeline.cluster``, ``pipeline.label``, ``pipeline.report``); importing this list is cheap,
as each run function imports its heavy libraries only when it runs.
"""

from __future__ import annotations

from pipeline.stage import Stage
from pipeline.stages import cluster, embed, label, parse, report

STAGES: tuple[Stage, ...] = (parse.STAGE, embed.STAGE, cluster.STAGE, label.STAGE, report.STAGE)
STAGE_NAMES: tuple[str, ...] = tuple(stage.name for stage in STAGES)
