"""Many small input files, parsed cold: the cost per file must not grow with the pile (issue 28, item 11).

    nice -n 10 .venv/bin/python bench/many_files.py [--sizes 500 1000 10000 100000] [--work /tmp/many-files]
        [--baseline /path/to/an/older/checkout] [--max-seconds 300]

For each size, writes that many one-record JSON Lines files (one paper each, all different) into
``--work`` and times, in a fresh process, what the parse stage does on a cold cache: collecting
the files' bytes and ``parse`` with a memo (every file's read is stored for the next run), in
wall-clock and CPU seconds (on a shared machine the CPU time is the steadier figure). With
``--baseline`` the same files are also parsed by the code of another checkout (e.g. ``git archive
main``), in the same run, so the two columns compare like with like. A code is not run at a size
where its projection passes ``--max-seconds`` (the growth seen between the last two sizes, or
linear after the first: time two small sizes first).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_files(folder: Path, count: int) -> None:
    """``count`` one-record JSON Lines files under ``folder`` (created afresh)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for number in range(count):
        record = {
            "title": f"Sparse attention number {number} for long documents",
            "abstract": f"We study variant {number} of sparse attention on documents of a million tokens.",
        }
        (folder / f"day-{number:06d}.jsonl").write_text(json.dumps(record) + "\n")


def parse_once(code: Path, files: Path, cache: Path) -> tuple[float, float, int]:
    """Seconds (wall, then CPU) to collect and parse ``files`` cold with the pipeline of ``code``; papers kept."""
    sys.path.insert(0, str(code))
    from pipeline.config import InputSpec, ParseConfig
    from pipeline.memo import MemoStore
    from pipeline.parse import parse
    from pipeline.sources import collect_sources

    shutil.rmtree(cache, ignore_errors=True)
    started, cpu = time.perf_counter(), time.process_time()
    sources = collect_sources([InputSpec(path=str(files / "*.jsonl"))])
    result = parse(sources, ParseConfig(), memo=MemoStore(cache))
    return time.perf_counter() - started, time.process_time() - cpu, len(result.papers)


def timed_run(code: Path, files: Path, cache: Path) -> tuple[float, float, int]:
    """:func:`parse_once` in a fresh process (nothing imported or cached from another row)."""
    command = [sys.executable, __file__, "--one", str(files), "--code", str(code), "--cache", str(cache)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench: parsing with {code} failed:\n{done.stderr[-2000:]}")
    seconds, cpu, papers = done.stdout.split()
    return float(seconds), float(cpu), int(papers)


def projection(points: list[tuple[int, float]], size: int) -> float:
    """Seconds projected for ``size`` files from the sizes timed before (0 when none was).

    The growth is the one seen between the last two sizes, linear when only one was timed.
    """
    if not points:
        return 0.0
    last_size, last_seconds = points[-1]
    exponent = 1.0
    if len(points) > 1:
        size_before, seconds_before = points[-2]
        exponent = math.log(max(last_seconds, 1e-3) / max(seconds_before, 1e-3)) / math.log(last_size / size_before)
    return last_seconds * (size / last_size) ** max(exponent, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1_000, 10_000, 100_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/many-files"))
    parser.add_argument("--baseline", type=Path, help="another checkout whose code is timed on the same files")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="skip a row projected to take longer")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--code", type=Path, default=ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:  # the child process of timed_run
        seconds, cpu, papers = parse_once(args.code, args.one, args.cache)
        print(f"{seconds:.3f} {cpu:.3f} {papers}")
        return
    codes = {"this checkout": ROOT} | ({"baseline": args.baseline} if args.baseline else {})
    timed: dict[str, list[tuple[int, float]]] = {name: [] for name in codes}  # per code: (size, seconds)
    columns = [f"{name}: {what}" for what in ("s", "CPU s", "ms/file") for name in codes]
    print(f"| files | {' | '.join(columns)} |")
    print("|---:|" + "---:|" * 3 * len(codes))
    for size in sorted(args.sizes):
        write_files(args.work / "files", size)
        cells: dict[str, tuple[str, str, str]] = {}
        for name, code in codes.items():
            projected = projection(timed[name], size)
            if projected > args.max_seconds:
                cells[name] = (f"not run (~{projected:,.0f} projected)", "", "")
                continue
            seconds, cpu, papers = timed_run(code, args.work / "files", args.work / "cache")
            if papers != size:
                raise SystemExit(f"bench: {name} kept {papers} papers of {size} files")
            timed[name].append((size, seconds))
            cells[name] = (f"{seconds:.1f}", f"{cpu:.1f}", f"{seconds / size * 1000:.2f}")
        row = " | ".join(cells[name][column] for column in range(3) for name in codes)
        print(f"| {size:,} | {row} |", flush=True)
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
