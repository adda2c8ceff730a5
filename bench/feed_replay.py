"""Replay a daily feed: the first days clustered, then one day added per run (issue 15's targets).

    python bench/feed_replay.py [--corpus ../shared/corpora/arxiv-daily-cs] [--start-days 300]
                                [--days N] [--per-run K] [--backend model2vec] [--work /tmp/feed-replay]
                                [--resume] [--no-recluster] [--json rows.json]
                                [--small [--small-papers 600] [--small-per-day 20]]

The corpus folder holds one ``data/YYYY-MM-DD.jsonl`` per listing day. A staging folder of
links to the day files is the run's input (a glob), so each added day is what a daily cron job
sees. Per run the table shows: papers, seconds end to end (a plain ``run``), how the cluster
stage placed them (update or full recluster), the share of the papers already placed in a
topic that keep their topic id, papers that changed topic without a history row (must be 0),
and the topics born (first listing date of their papers, size). At the end a forced full
recluster (``--force cluster``) shows its identity share. Targets: >= 98% kept per update,
>= 90% across the forced recluster, a one-day update <= 20 s at 75k papers, every new topic
with at least min_cluster_size papers.

``--small`` replays a small feed instead (issue 27: a Daily Papers page is ~30 papers a day):
``--small-per-day`` papers drawn (seeded) from each listing day of the corpus, as many days as
make ``--small-papers`` to start, then ``--days`` (default 10) more days, one per run. Target:
+20 papers on a 600-paper feed in under 5 s on an idle machine, >= 98% kept per update.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import load_config  # noqa: E402
from pipeline.feed.identity import kept_share, silent_changes  # noqa: E402
from pipeline.runner import run_pipeline  # noqa: E402
from pipeline.stages import STAGE_NAMES  # noqa: E402
from pipeline.store import ArtifactStore  # noqa: E402

HEADER = (
    "| run | papers | seconds | cpu s | stage seconds | placed by | pool | kept id | silent | topics "
    "| born (date, size) |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


def write_config(work: Path, staging: Path, backend: str, name: str = "feed-replay") -> Path:
    raw = {
        "name": name,
        "output_dir": str(work / "out"),
        "inputs": [{"path": str(staging / "*.jsonl"), "format": "arxiv-daily"}],
        "embed": {"backend": backend},
    }
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def one_run(config_path: Path, since: str, force_from: str | None = None) -> dict:
    """One plain run (or forced from a stage); ``since``: the last starting day, to tell added papers apart."""
    config = load_config(config_path)
    store = ArtifactStore(config.run_dir, config.cache_dir, STAGE_NAMES)
    before = store.read_table("label", "assignments.parquet") if store.finished("label") else None
    tick, cpu = time.perf_counter(), time.process_time()
    result = run_pipeline(config, force_from=force_from)
    seconds, cpu = time.perf_counter() - tick, time.process_time() - cpu
    counts = {outcome.stage: outcome.counts for outcome in result.outcomes}
    stage_seconds = {outcome.stage: outcome.seconds for outcome in result.outcomes if outcome.status == "computed"}
    computed = {outcome.stage for outcome in result.outcomes if outcome.status == "computed"}
    after = store.read_table("label", "assignments.parquet")
    history = store.read_table("label", "topic_history.parquet")
    feed = store.read_json("label", "feed.json")
    run = int(feed["runs"][-1]["run"])
    papers = store.read_table("parse", "papers.parquet")
    date_of = dict(zip(papers["paper_id"], papers["date"], strict=True))
    born = history[(history["run"] == run) & (history["event"] == "born")]["topic"].astype(int).tolist()
    born = born if "label" in computed else []
    added_of = dict(zip(papers["paper_id"], papers["source"].map(lambda path: Path(path).stem > since), strict=True))
    name_of = store.read_table("label", "topics.parquet").set_index("topic")["name"].to_dict()
    born_rows = []
    for topic in born:
        members = after.loc[after["topic"] == topic, "paper_id"]
        dates = sorted(str(date_of[paper]) for paper in members if date_of[paper])
        born_rows.append({
            "topic": topic, "name": name_of.get(topic, ""), "size": len(members),
            "first_date": dates[0] if dates else "", "median_date": dates[len(dates) // 2] if dates else "",
            "added_share": round(sum(added_of[paper] for paper in members) / max(1, len(members)), 3),
        })  # fmt: skip
    cluster = counts.get("cluster", {})
    return {
        "run": run,
        "papers": len(after),
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),  # this process's CPU time: near the wall time an idle machine would take
        "stages": stage_seconds,
        "placed_by": "reused" if "cluster" not in computed else "update" if "incremental" in cluster else "recluster",
        "pool": cluster.get("pool", 0),
        "kept": None if before is None else kept_share(before, after),
        "silent": None if before is None else len(silent_changes(before, after, history, run)),
        "topics": int(counts["label"]["topics"]),
        "born": born_rows,
        "min_cluster_size": store.read_json("cluster", "cluster.json")["params"].get("min_cluster_size"),
    }


def row_text(label: str, row: dict) -> str:
    kept = "" if row["kept"] is None else f"{100 * row['kept']:.2f}%"
    born = ", ".join(f"{b['topic']} ({b['first_date']}, {b['size']})" for b in row["born"][:4])
    more = f" +{len(row['born']) - 4}" if len(row["born"]) > 4 else ""
    stages = " ".join(f"{name[:2]}{seconds:.1f}" for name, seconds in row["stages"].items())
    return (
        f"| {label} | {row['papers']:,} | {row['seconds']:.1f} | {row['cpu_seconds']:.1f} | {stages} | "
        f"{row['placed_by']} | {row['pool']} | "
        f"{kept} | {'' if row['silent'] is None else row['silent']} | {row['topics']} | {born}{more} |"
    )


def small_days(day_files: list[Path], staging: Path, per_day: int, count: int, seed: int = 0) -> list[Path]:
    """``count`` files in ``staging``, one per listing day, each ``per_day`` of that day's papers (seeded)."""
    rng = random.Random(seed)
    days: list[Path] = []
    for day in day_files:
        if len(days) == count:
            break
        lines = [line for line in day.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not lines:  # a day without listings (a weekend) is no day of the feed
            continue
        chosen = sorted(rng.sample(range(len(lines)), min(per_day, len(lines))))
        path = staging / day.name
        path.write_text("".join(lines[index] + "\n" for index in chosen), encoding="utf-8")
        days.append(path)
    return days


def small_feed(args: argparse.Namespace, day_files: list[Path]) -> int:
    """The small-feed replay (``--small``): a first run of ``--small-papers``, then one day of a few papers per run."""
    staging, pool = args.work / "small-days", args.work / "small-pool"
    for folder in (staging, pool):
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.jsonl"):
            stale.unlink()
    start_days = -(-args.small_papers // args.small_per_day)
    days = small_days(day_files, pool, args.small_per_day, start_days + (args.days or 10))
    for day in days[:start_days]:
        day.rename(staging / day.name)
    rest = days[start_days:]
    config_path = write_config(args.work, staging, args.backend, name="feed-replay-small")
    shutil.rmtree(load_config(config_path).run_dir, ignore_errors=True)  # a fresh feed; the caches stay
    print(f"backend {args.backend}; small feed: {args.small_per_day} papers from each listing day, "
          f"{start_days} days to start, then {len(rest)} days, one per run")  # fmt: skip
    print(HEADER)
    since = days[start_days - 1].stem
    rows = [one_run(config_path, since)]
    print(row_text(f"start {since}", rows[0]), flush=True)
    for day in rest:
        day.rename(staging / day.name)
        rows.append(one_run(config_path, since))
        print(row_text(f"+{day.stem}", rows[-1]), flush=True)
    updates = rows[1:]
    placed = {r["placed_by"] for r in updates}
    median = sorted(r["seconds"] for r in updates)[len(updates) // 2]
    cpu = sorted(r["cpu_seconds"] for r in updates)[len(updates) // 2]
    print(f"\nsmall feed, {rows[0]['papers']} papers + {args.small_per_day} a day: per update median "
          f"{median:.1f} s ({cpu:.1f} s CPU), slowest {max(r['seconds'] for r in updates):.1f} s "
          f"(target < 5 s idle), worst kept "
          f"{100 * min(r['kept'] for r in updates):.2f}% (target >= 98%), placed by {', '.join(sorted(placed))}, "
          f"silent changes {sum(r['silent'] for r in updates)}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpora" / "arxiv-daily-cs")
    parser.add_argument("--start-days", type=int, default=300)
    parser.add_argument("--days", type=int, default=None, help="add at most this many days (default: all)")
    parser.add_argument("--per-run", type=int, default=1, help="days added per run (1: a daily feed)")
    parser.add_argument("--backend", default="onnx-int8", help="embed.backend (model2vec = the fast preview)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/feed-replay"))
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    parser.add_argument("--resume", action="store_true", help="go on from the days already in --work's run")
    parser.add_argument("--no-recluster", action="store_true", help="skip the forced recluster at the end")
    parser.add_argument("--small", action="store_true", help="replay a small feed instead (see --small-papers)")
    parser.add_argument("--small-papers", type=int, default=600, help="papers of the small feed's first run")
    parser.add_argument("--small-per-day", type=int, default=20, help="papers per listing day of the small feed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    day_files = sorted((args.corpus / "data").glob("*.jsonl"))
    if not day_files:
        print(f"{args.corpus}: absent or without data/*.jsonl day files: nothing to replay")
        return 1
    if args.small:
        return small_feed(args, day_files)
    staging = args.work / "days"
    staging.mkdir(parents=True, exist_ok=True)
    linked = sorted(path.name for path in staging.glob("*.jsonl"))
    if args.resume and linked:
        start = [path for path in day_files if path.name in set(linked)]
        rest = [path for path in day_files if path.name > linked[-1]]
    else:
        for stale in staging.glob("*.jsonl"):
            stale.unlink()
        start, rest = day_files[: args.start_days], day_files[args.start_days :]
        for day in start:
            (staging / day.name).symlink_to(day.resolve())
    rest = rest if args.days is None else rest[: args.days]
    config_path = write_config(args.work, staging, args.backend)
    print(f"backend {args.backend}; {len(start)} days to start ({start[0].stem} .. {start[-1].stem}), "
          f"then {len(rest)} days, {args.per_run} per run")  # fmt: skip
    print(HEADER)
    rows = []
    since = start[-1].stem
    row = one_run(config_path, since)
    rows.append(row)
    print(row_text(f"start {start[-1].stem}", row), flush=True)
    for first in range(0, len(rest), args.per_run):
        days = rest[first : first + args.per_run]
        for day in days:
            (staging / day.name).symlink_to(day.resolve())
        row = one_run(config_path, since)
        rows.append(row)
        print(
            row_text(f"+{days[-1].stem}" if len(days) == 1 else f"+{len(days)} days to {days[-1].stem}", row),
            flush=True,
        )
    if not args.no_recluster:
        row = one_run(config_path, since, force_from="cluster")
        rows.append(row)
        print(row_text("forced recluster", row), flush=True)
    updates = [r for r in rows[1 : len(rows) - (not args.no_recluster)] if r["placed_by"] == "update"]
    if updates:
        worst = min(r["kept"] for r in updates)
        slowest = max(r["seconds"] for r in updates)
        print(f"\nupdates: worst kept {100 * worst:.2f}% (target >= 98%), slowest {slowest:.1f} s"
              f" (target <= 20 s at 75k), silent changes {sum(r['silent'] for r in updates)}")  # fmt: skip
    born = [b for r in rows[1:] for b in r["born"]]
    small = [b for b in born if b["size"] < (rows[-1]["min_cluster_size"] or 0)]
    in_updates = sum(len(r["born"]) for r in updates)
    print(f"topics born after the start: {len(born)} ({in_updates} in updates, the rest in reclusters), "
          f"under min_cluster_size: {len(small)}")  # fmt: skip
    # A topic of the added days: most of its papers were listed after the start (the corpus's share is far lower).
    added_share = 1 - rows[0]["papers"] / rows[-1]["papers"]
    for b in born:
        if b["added_share"] > 0.5:
            print(f"  new subject: topic {b['topic']} \"{b['name']}\", {b['size']} papers, {b['added_share']:.0%} "
                  f"listed in the added days (all papers: {added_share:.0%}), first {b['first_date']}, "
                  f"median {b['median_date']}")  # fmt: skip
    if not args.no_recluster:
        print(f"forced recluster: kept {100 * rows[-1]['kept']:.2f}% (target >= 90%), silent {rows[-1]['silent']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
