"""A label setting changed on a finished 75k run: the rerun's seconds before and after a code change, in one run.

    .venv/bin/python bench/relabel.py [--before main] [--after HEAD] [--repeats 3]
        [--out /tmp/papertopics-relabel] [--base DIR --name NAME] [--settings n_keywords name_phrases]
        [--corpora ../shared/corpora] [--quality]

Runs all of arxiv-daily-cs (../shared/corpora/arxiv-daily-cs, 74,728 papers; the script stops
with a message when the folder is absent) once in preview mode (``embed.backend: model2vec``;
``--quality``: the default embedding, about 50 minutes here) into ``<out>/base`` (kept, and
reused by later runs of the script), or takes the finished run ``--base`` (an output folder
holding the run ``--name`` of the same inputs and embedding). Then two sides get a copy of that
folder (hard links: the store replaces files, never rewrites them):

- ``before``: the package of git ref ``--before`` (``git archive``), run from its own folder;
- ``after``: the package of git ref ``--after`` the same way, or this working tree's without it.

Each side first runs the default label settings once (untimed: its own label caches filled, as
after any finished run), then, ``--repeats`` times for each changed setting, a rerun with a new
value of it (a value neither side has labelled before, so no stage output is reused), the two
sides alternating so that they share the machine's load. Prints, per side and setting, the
median wall and CPU seconds of ``python -m pipeline run`` and the wall seconds of each stage it
computed (from the manifest), the values run, the load average, and whether the two sides'
papers.csv, topics.csv, metrics.json and every other report file that shows no time (the topics'
CSVs, digest.md, the assets) are byte-identical at every value (both sides start from
the same run history: a rerun keeps the last run's placements, so it is compared with the other
side's rerun, not with a run in an empty folder).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPORA = ROOT.parent / "shared" / "corpora"
# New values per changed setting, one per repetition; the default (in pipeline.config) is not among them.
VALUES: dict[str, list[object]] = {
    "n_keywords": [8, 9, 11, 12, 7],
    "name_phrases": [1, 3, 4, 1, 3],
    "keyword_min_share": [0.02, 0.04, 0.06, 0.08, 0.1],
    "extra_stop_words": [["model"], ["method"], ["data"], ["task"], ["results"]],
}
COMPARED = ("papers.csv", "topics.csv", "metrics.json")
# Besides those, every other report file that shows no time: the topics' CSVs, digest.md, the assets.
# The pages and feed.atom show when they were made (and index.html the stages' seconds).
REPORT_FOLDERS = ("topics", "assets")
TIMED_SUFFIXES = (".html", ".atom")
RUN_LOG = "run.log"  # pipeline.cli.RUN_LOG; the bench does not import the package it compares


def write_config(folder: Path, name: str, corpora: Path, quality: bool, label: dict[str, object]) -> Path:
    config: dict[str, object] = {
        "name": name,
        "output_dir": str(folder),
        "inputs": [{"path": str(corpora / "arxiv-daily-cs" / "data" / "*.jsonl"), "format": "arxiv-daily"}],
        **({} if quality else {"embed": {"backend": "model2vec"}}),
        **({"label": label} if label else {}),
    }
    path = folder.parent / f"{folder.name}.yaml"
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")  # JSON is YAML
    return path


def run(source: Path, config: Path) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of ``python -m pipeline run config`` with the package in ``source``.

    CPU seconds say what the run cost on a machine that others share; wall seconds what a user waits.
    """
    start, used = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    completed = subprocess.run([sys.executable, "-m", "pipeline", "run", str(config)], cwd=source,
                               capture_output=True, text=True, check=False)  # fmt: skip
    seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        sys.exit(f"relabel: {config} failed with the package in {source}:\n{completed.stderr[-3000:]}")
    return seconds, (after.ru_utime - used.ru_utime) + (after.ru_stime - used.ru_stime)


def computed_stages(run_dir: Path) -> dict[str, float]:
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    return {stage: info["seconds"] for stage, info in manifest["stages"].items() if info["status"] == "computed"}


def digests(run_dir: Path) -> dict[str, str]:
    """The hash of each compared file: ``COMPARED`` and the report's untimed files (see ``REPORT_FOLDERS``)."""
    files = {*COMPARED, "digest.md"} | {
        path.relative_to(run_dir).as_posix()
        for folder in REPORT_FOLDERS
        for path in (run_dir / folder).iterdir()
        if path.is_file() and not path.name.endswith(TIMED_SUFFIXES)
    }
    return {file: hashlib.sha256((run_dir / file).read_bytes()).hexdigest() for file in sorted(files)}


def linked_copy(base: Path, folder: Path) -> None:
    """Hard links of ``base``'s files, but a copy of each run log: the log is appended to in place."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(base, folder, copy_function=_link_or_copy)


def _link_or_copy(source: str, target: str) -> None:
    if Path(source).name == RUN_LOG:
        shutil.copy2(source, target)
    else:
        os.link(source, target)


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="main", help="git ref of the code to compare against")
    parser.add_argument("--after", default=None, help="git ref of the code compared (default: this working tree)")
    parser.add_argument("--base", type=Path, default=None, help="an output folder with a finished run to copy")
    parser.add_argument("--name", default="relabel", help="the run's name in --base")
    parser.add_argument("--reuse-sides", action="store_true", help="go on in the sides' folders of an earlier run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "papertopics-relabel")
    parser.add_argument("--settings", nargs="+", default=["n_keywords", "name_phrases"], choices=sorted(VALUES))
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    parser.add_argument("--quality", action="store_true", help="the default embedding instead of model2vec")
    args = parser.parse_args()
    if not (args.corpora / "arxiv-daily-cs" / "data").is_dir():
        sys.exit(f"relabel: {args.corpora / 'arxiv-daily-cs'} is absent; this benchmark needs the real corpus")
    if not 1 <= args.repeats <= len(next(iter(VALUES.values()))):
        sys.exit(f"relabel: --repeats must be 1 to {len(next(iter(VALUES.values())))}")
    args.out.mkdir(parents=True, exist_ok=True)
    sources = {}
    for side, ref in (("before", args.before), ("after", args.after)):
        if ref is None:
            sources["after (this tree)"] = ROOT
            continue
        source = args.out / f"{side}-source"
        shutil.rmtree(source, ignore_errors=True)
        source.mkdir()
        archive = subprocess.run(["git", "archive", ref, "pipeline"], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
        commit = subprocess.run(["git", "rev-parse", "--short", ref], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()  # fmt: skip
        sources[f"{side} ({ref} {commit})"] = source

    name, base = args.name, args.base
    if args.reuse_sides:
        missing = [f"side{i}" for i in range(len(sources)) if not (args.out / f"side{i}" / name).is_dir()]
        if missing:
            sys.exit(f"relabel: --reuse-sides, but {args.out} holds no {', '.join(missing)} of run {name}")
    elif base is None:
        base = args.out / "base"
        seconds, _ = run(ROOT, write_config(base, name, args.corpora, args.quality, {}))
        print(f"base run (this tree, default label settings): {seconds:.1f} s, stages computed "
              f"{computed_stages(base / name)}", flush=True)  # fmt: skip
    elif not (base / name / "manifest.json").is_file():
        sys.exit(f"relabel: {base / name} holds no finished run")
    folders = {}
    for index, (side, source) in enumerate(sources.items()):
        folder = args.out / f"side{index}"
        if args.reuse_sides:
            print(f"{side}: goes on in {folder}", flush=True)
        else:
            linked_copy(base, folder)
            seconds, _ = run(source, write_config(folder, name, args.corpora, args.quality, {}))
            print(f"{side}: warm-up with the default settings {seconds:.1f} s, computed "
                  f"{computed_stages(folder / name)}", flush=True)  # fmt: skip
        folders[side] = folder

    rows = []
    for setting in args.settings:
        walls: dict[str, list[float]] = {side: [] for side in sources}
        cpus: dict[str, list[float]] = {side: [] for side in sources}
        stages: dict[str, list[dict[str, float]]] = {side: [] for side in sources}
        identical = []
        for value in VALUES[setting][: args.repeats]:
            seen = {}
            for side, source in sources.items():
                folder = folders[side]
                config = write_config(folder, name, args.corpora, args.quality, {setting: value})
                wall, cpu = run(source, config)
                walls[side].append(wall)
                cpus[side].append(cpu)
                stages[side].append(computed_stages(folder / name))
                seen[side] = digests(folder / name)
            identical.append(len({json.dumps(found, sort_keys=True) for found in seen.values()}) == 1)
            print(f"{setting}={value!r}: " + ", ".join(f"{side} {walls[side][-1]:.2f} s ({cpus[side][-1]:.2f} s CPU)"
                                                       for side in sources)
                  + f" (load {load()})", flush=True)  # fmt: skip
        for side in sources:
            computed = sorted({stage for found in stages[side] for stage in found})
            per_stage = {
                stage: statistics.median(found.get(stage, 0.0) for found in stages[side]) for stage in computed
            }
            rows.append((setting, side, statistics.median(walls[side]), statistics.median(cpus[side]), per_stage,
                         all(identical)))  # fmt: skip
    print(f"\nmedian of {args.repeats} reruns per side, load average now {load()}")
    print("| setting changed | code | wall s | CPU s | label s | report s | other stages computed | outputs equal |")
    print("|---|---|---|---|---|---|---|---|")
    for setting, side, wall, cpu, per_stage, same in rows:
        other = ", ".join(
            f"{stage} {value:.2f}" for stage, value in per_stage.items() if stage not in ("label", "report")
        )
        print(f"| {setting} | {side} | {wall:.2f} | {cpu:.2f} | {per_stage.get('label', 0.0):.2f} | "
              f"{per_stage.get('report', 0.0):.2f} | {other or '-'} | {'yes' if same else 'NO'} |")  # fmt: skip


if __name__ == "__main__":
    main()
