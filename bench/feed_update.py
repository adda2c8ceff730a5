"""Time one daily update from the command line, from a saved feed state (issue 15's 20 s target).

    python bench/feed_update.py --state /tmp/fr-state [--work /tmp/feed-replay] [--rounds 2] [--cold]

``bench/feed_replay.py`` leaves its run in ``--work``: ``days/`` (links to the listing days
added so far), ``feed-replay.yaml`` and ``out/`` (the run and its cache). Copy ``out/`` aside
after the replay's last day but one (``--state``, the folder holding that copy of ``out/``);
this script then puts the copy back before every round, adds the corpus's next day to
``days/`` and times ``python -m pipeline run`` under ``/usr/bin/time -v``, exactly what a
daily cron job runs. Every round starts from the same state, so the rounds differ only by
the machine's noise; with ``--cold`` the page cache is dropped after the copy (Linux, as
root), so every file is read from the disk, as on a machine that did something else since
the last run. The table gives end-to-end seconds, each stage's seconds (from the
run's manifest) and the peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("parse", "embed", "cluster", "label", "report")


def next_day(corpus: Path, staging: Path) -> Path:
    """The corpus's first listing day not yet linked in ``staging``."""
    staged = {path.name for path in staging.glob("*.jsonl")}
    for day in sorted((corpus / "data").glob("*.jsonl")):
        if day.name not in staged:
            return day
    raise SystemExit(f"{staging}: every day of {corpus} is staged already; nothing to add")


def drop_page_cache() -> None:
    """Write out and drop the kernel's page cache (Linux, as root), so the next reads go to the disk."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError as exc:
        raise SystemExit(f"--cold needs Linux and root to drop the page cache: {exc}") from None


def one_round(state: Path, work: Path, day: Path, cold: bool = False) -> dict[str, float]:
    """Put the saved state back, stage ``day`` and time one plain run of the feed's config."""
    shutil.rmtree(work / "out", ignore_errors=True)
    shutil.copytree(state / "out", work / "out", symlinks=True)
    if cold:
        drop_page_cache()
    link = work / "days" / day.name
    link.unlink(missing_ok=True)
    link.symlink_to(day.resolve())
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "pipeline", "run", str(work / "feed-replay.yaml")]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the update failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    manifest = json.loads((work / "out" / "feed-replay" / "manifest.json").read_text())
    row = {"seconds": seconds, "peak_gb": int(peak.group(1)) / 1e6 if peak else float("nan")}
    row.update({stage: float(manifest["stages"][stage]["seconds"]) for stage in STAGES})
    row["papers"] = float(manifest["stages"]["cluster"]["counts"]["papers"])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state", type=Path, required=True, help="folder holding a saved copy of the feed's out/")
    parser.add_argument("--work", type=Path, default=Path("/tmp/feed-replay"))
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpora" / "arxiv-daily-cs")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cold", action="store_true", help="drop the page cache before each round")
    args = parser.parse_args()
    for needed in (args.state / "out", args.work / "days", args.work / "feed-replay.yaml", args.corpus / "data"):
        if not needed.exists():
            raise SystemExit(f"{needed}: missing (run bench/feed_replay.py first; the corpus is read from ../shared)")
    staged = {path.name for path in (args.work / "days").glob("*.jsonl")}
    saved = json.loads((args.state / "out" / "feed-replay" / "manifest.json").read_text())
    saved_days = {Path(entry["path"]).name for entry in saved["inputs"]}
    for extra in staged - saved_days:  # a day a previous round of this script added
        (args.work / "days" / extra).unlink()
    day = next_day(args.corpus, args.work / "days")
    dropped = "; page cache dropped before each round" if args.cold else ""
    print(f"state: {len(saved_days)} days; adding {day.name}{dropped}")
    print("| round | papers | end to end | " + " | ".join(STAGES) + " | peak RSS |")
    print("|---|---|---|" + "---|" * len(STAGES) + "---|")
    for number in range(1, args.rounds + 1):
        row = one_round(args.state, args.work, day, cold=args.cold)
        stages = " | ".join(f"{row[stage]:.1f}" for stage in STAGES)
        print(f"| {number} | {int(row['papers']):,} | {row['seconds']:.1f} s | {stages} | {row['peak_gb']:.2f} GB |",
              flush=True)  # fmt: skip
    (args.work / "days" / day.name).unlink()


if __name__ == "__main__":
    main()
