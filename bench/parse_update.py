"""A feed's parse: every file read (cold) against files read once and kept (issue 15); prints a table.

    .venv/bin/python bench/parse_update.py [--corpus ../shared/corpora/arxiv-daily-cs] [--work /tmp/parse-update]

Parses the corpus's daily files three ways in one process: cold (no kept reads), warm (every
file's read kept by an earlier run) and grown (all files kept but the last day's, as a daily
update sees them), and checks that the three give the same papers table and file reports.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import InputSpec, ParseConfig  # noqa: E402
from pipeline.memo import MemoStore  # noqa: E402
from pipeline.parse import parse  # noqa: E402
from pipeline.sources import collect_sources  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpora" / "arxiv-daily-cs")
    parser.add_argument("--work", type=Path, default=Path("/tmp/parse-update"))
    args = parser.parse_args()
    if not (args.corpus / "data").is_dir():
        sys.exit(f"bench: {args.corpus / 'data'} is absent (the shared corpora are not beside the repository)")
    shutil.rmtree(args.work, ignore_errors=True)
    spec = InputSpec(path=str(args.corpus / "data" / "*.jsonl"), format="arxiv-daily")
    started = time.perf_counter()
    sources = collect_sources([spec])
    collect = time.perf_counter() - started
    config, memo = ParseConfig(), MemoStore(args.work)
    rows = []

    def timed(label: str, **kwargs):
        started = time.perf_counter()
        result = parse(kwargs.pop("sources", sources), config, **kwargs)
        rows.append((label, time.perf_counter() - started, len(result.papers)))
        return result

    cold = timed("cold: every file read")
    last = [s for s in sources if s.data.strip()][-1]
    partial = MemoStore(args.work / "grown")
    parse([s for s in sources if s is not last], config, memo=partial)  # yesterday's run keeps its reads
    grown = timed("grown, last day new", sources=sources, memo=partial)
    parse(sources, config, memo=memo)
    warm = timed("warm: every read kept", memo=memo)
    for result in (grown, warm):
        assert result.papers.equals(cold.papers), "kept reads gave another papers table"
        assert [r.to_dict() for r in result.file_reports] == [r.to_dict() for r in cold.file_reports]
    print(f"{len(sources)} files, {len(cold.papers):,} papers; collecting the files' bytes: {collect:.2f} s")
    print("| parse | seconds | papers |\n|---|---|---|")
    for label, seconds, papers in rows:
        print(f"| {label} | {seconds:.2f} | {papers:,} |")
    print("papers table and file reports identical in all three: yes")


if __name__ == "__main__":
    main()
