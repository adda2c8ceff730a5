"""Run ``papertopics run CONFIG`` with one stage made to die: ``python tests/stage_hook.py STAGE WHEN CONFIG``.

WHEN is ``start`` (SIGKILL as the stage's run function starts, after the runner invalidated
the stage's record) or ``end`` (SIGKILL right after the stage's work is done, before the
runner records it: for the report stage, after the new report is published and before the
run's history is committed). Used by tests/test_state.py; SIGKILL cannot be caught, so the
process leaves whatever it left, as ``kill -9`` or a power cut would.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(stage: str, when: str, config: str) -> int:
    import pipeline.runner as runner
    from pipeline.cli import main as cli_main
    from pipeline.stage import Stage, StageContext, StageResult

    def dying(real: Stage) -> Stage:
        def run(context: StageContext) -> StageResult:
            if when == "start":
                os.kill(os.getpid(), signal.SIGKILL)
            result = real.run(context)
            os.kill(os.getpid(), signal.SIGKILL)
            return result

        return dataclasses.replace(real, run=run)

    runner.STAGES = tuple(dying(item) if item.name == stage else item for item in runner.STAGES)
    return cli_main(["run", config])


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
