"""What computing the stages' code hashes costs (target: under 50 ms for all stages, once per process).

    .venv/bin/python bench/code_hash.py [--repeat 20]

Prints, per stage, the modules of its import closure, the files hashed and its hash, then the
time to compute every stage's hash from nothing (the per-process caches cleared), as the
median of ``--repeat`` tries, in wall and CPU time. ``ast`` (Python's parser, on every module
of the package) is timed beside it: the reading the regular expressions replace.
"""

from __future__ import annotations

import argparse
import ast
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import code_hash as hashing  # noqa: E402
from pipeline.stages import STAGES  # noqa: E402


def _clear() -> None:
    for cached in (hashing.module_files, hashing.closure, hashing.code_hash, hashing._module_imports, hashing._source):
        cached.cache_clear()


def _all_hashes() -> dict[str, str]:
    return {stage.name: hashing.code_hash(stage.module) for stage in STAGES}


def _timed(work, repeat: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(repeat):
        _clear()
        wall, cpu = time.perf_counter(), time.process_time()
        work()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return 1000 * statistics.median(walls), 1000 * statistics.median(cpus)


def _parse_everything() -> None:
    for path in hashing.module_files().values():
        ast.parse(path.read_bytes())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20, help="tries per timing (the median is shown)")
    args = parser.parse_args()
    hashes = _all_hashes()
    print(f"{'stage':8} {'modules':>7} {'files':>5}  code hash")
    for stage in STAGES:
        modules = hashing.closure(stage.module)
        files = sum(len(hashing._files(module, hashing.SOURCE_ROOT)) for module in modules)
        print(f"{stage.name:8} {len(modules):>7} {files:>5}  {hashes[stage.name][:16]}")
    wall, cpu = _timed(_all_hashes, args.repeat)
    print(f"\nall {len(STAGES)} stages from nothing: {wall:.1f} ms wall, {cpu:.1f} ms CPU (median of {args.repeat})")
    wall, cpu = _timed(_parse_everything, max(3, args.repeat // 4))
    print(f"ast.parse of all {len(hashing.module_files())} modules: {wall:.1f} ms wall, {cpu:.1f} ms CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
