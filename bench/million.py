"""papertopics end to end on N synthetic papers: time per stage, peak memory of all processes, map open time.

    .venv/bin/python bench/million.py N [--mode preview|quality] [--workers 2] [--big /work/big]
        [--resume] [--map-only RUN_DIR]

Builds (or reuses) N synthetic papers with bench/synth_corpus.py in ``--big``/synth-N (outside
the repository), writes a config there (``--mode preview``: model2vec vectors; ``quality``:
the default onnx-int8 MiniLM; ``engine: dask`` with ``--workers`` local workers; every other
setting at its default), runs ``python -m pipeline run CONFIG --force`` in a fresh output
folder (``--big``/out-N-MODE: no embedding cache from an earlier run; the built model in the
user's model cache is reused), and meanwhile samples the resident memory of the whole
process tree (the run, its Dask workers and any child) about once a second. Then it opens
map.html in headless Chromium (Debian's, through Playwright, nothing outside file://) and times
it until the map is drawn and interactive (the page's data-ready flag, set when plotly's first
draw has finished). Prints a table: each stage's seconds (from the run's manifest.json), the
whole run's wall time and CPU seconds (all processes: on a shared machine they say more than the
wall clock), peak RSS (sum over the tree), the sizes of map.html and map-papers.js, and the map's
time to draw. Results also go to ``--big``/out-N-MODE/bench.json, with the RSS and CPU timeline.

The corpus is synthetic (see bench/synth_corpus.py): times and memory are realistic, topic
quality figures are not (quality is measured on the real 75k papers).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
STAGES = ("parse", "embed", "cluster", "label", "report")
BACKENDS = {"preview": "model2vec", "quality": "onnx-int8"}


class TreeMemory(threading.Thread):
    """Samples the summed RSS of a process and all its descendants every ``interval`` seconds; keeps the peak."""

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.peak_at = 0.0
        self.peak_processes = 0
        self.peak_driver = 0  # the run's own process at the peak (the rest: Dask workers, nannies, children)
        self.start_time = time.perf_counter()
        self.start_epoch = time.time()  # the same moment on the wall clock (stage files carry wall-clock times)
        # Each sample: seconds since the start, summed RSS, CPU seconds of the tree so far (on a
        # shared machine the CPU seconds say more than the wall clock), the run's own RSS, the run's
        # own CPU seconds so far.
        self.timeline: list[tuple[float, int, float, int, float]] = []
        self.cpu: dict[tuple[int, float], float] = {}  # per process (pid, start): its CPU seconds when last seen
        self.stopped = threading.Event()

    @property
    def cpu_s(self) -> float:
        """CPU seconds of every process of the tree seen so far (an ended one as last seen)."""
        return round(sum(self.cpu.values()), 1)

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                processes = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            sizes, own_cpu = [], 0.0
            for process in processes:
                try:
                    sizes.append(process.memory_info().rss)
                    times = process.cpu_times()
                    self.cpu[(process.pid, process.create_time())] = times.user + times.system
                    own_cpu = own_cpu or times.user + times.system  # the first process listed is the run
                except psutil.NoSuchProcess:  # a child that ended between the listing and the reading
                    sizes.append(0)
            at = round(time.perf_counter() - self.start_time, 1)
            self.timeline.append((at, sum(sizes), self.cpu_s, sizes[0], round(own_cpu, 1)))
            if sum(sizes) > self.peak:
                self.peak, self.peak_at = sum(sizes), time.perf_counter() - self.start_time
                self.peak_processes, self.peak_driver = len(processes), sizes[0]
            self.stopped.wait(self.interval)


def ensure_corpus(n: int, big: Path) -> Path:
    folder = big / f"synth-{n}"
    if not any(folder.glob("*.jsonl")):
        subprocess.run([PYTHON, str(ROOT / "bench" / "synth_corpus.py"), str(n), "--out", str(folder)], check=True)
    return folder


def write_config(n: int, mode: str, workers: int, corpus: Path, out: Path) -> Path:
    name = f"million-{n}-{mode}"
    config = {
        "name": name,
        "output_dir": str(out),
        "inputs": [{"path": str(corpus / "*.jsonl"), "format": "arxiv-daily"}],
        "embed": {"backend": BACKENDS[mode]},
        "engine": {"kind": "dask", "workers": workers},
    }
    path = out / f"{name}.yaml"
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")  # JSON is YAML
    return path


def stage_seconds(run_dir: Path, stage: str) -> float | None:
    """The seconds a finished stage of an earlier run took (its _stage.json), None when it has not finished."""
    folder = next(iter(sorted(run_dir.glob(f"0?_{stage}"))), None)
    if folder is None or not (folder / "_stage.json").exists():
        return None
    return float(json.loads((folder / "_stage.json").read_text(encoding="utf-8"))["seconds"])


def stage_windows(run_dir: Path, start_epoch: float) -> dict[str, tuple[float, float]]:
    """(start, end) of each stage this run computed, seconds since ``start_epoch``: it ends with its _stage.json."""
    windows = {}
    for stage in STAGES:
        folder = next(iter(sorted(run_dir.glob(f"0?_{stage}"))), None)
        if folder is None or not (folder / "_stage.json").exists():
            continue
        end = (folder / "_stage.json").stat().st_mtime - start_epoch
        if end > 0:  # written by this run, not kept from an earlier one
            windows[stage] = (
                end - float(json.loads((folder / "_stage.json").read_text(encoding="utf-8"))["seconds"]),
                end,
            )
    return windows


def stage_usage(
    timeline: list[tuple[float, int, float, int, float]], windows: dict[str, tuple[float, float]]
) -> dict[str, dict[str, float]]:
    """Per stage: CPU seconds (all processes, the run's own) and peak RSS, from the samples in its window."""
    usage = {}
    for stage, (start, end) in windows.items():
        inside = [sample for sample in timeline if start <= sample[0] <= end]
        if len(inside) < 2:
            continue
        first, last = inside[0], inside[-1]
        usage[stage] = {
            "wall_s": end - start,
            "cpu_s": last[2] - first[2],
            "driver_cpu_s": last[4] - first[4],
            "peak_gb": max(sample[1] for sample in inside) / 1e9,
            "driver_peak_gb": max(sample[3] for sample in inside) / 1e9,
        }
    return usage


def run_pipeline(config: Path, log: Path, force: bool = True) -> tuple[float, TreeMemory, int]:
    env = {**os.environ, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", "/tmp/numba-cache")}
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        process = subprocess.Popen(
            [PYTHON, "-m", "pipeline", "run", str(config), *(["--force"] if force else [])],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=handle,
        )
        memory = TreeMemory(process.pid)
        memory.start()
        code = process.wait()
    memory.stopped.set()
    memory.join()
    return time.perf_counter() - start, memory, code


def time_map(map_html: Path, timeout_s: float = 300.0) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        start = time.perf_counter()
        page.goto(map_html.as_uri(), timeout=timeout_s * 1000)
        page.wait_for_selector("#document-map[data-ready='1']", timeout=timeout_s * 1000)
        drawn_s = time.perf_counter() - start
        points = page.evaluate("papertopicsMap.points()")
        total = page.evaluate("papertopicsMap.total ? papertopicsMap.total() : papertopicsMap.points()")
        browser.close()
    if errors:
        raise RuntimeError(f"map.html raised {errors}")
    return {"drawn_s": drawn_s, "points": points, "papers": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, help="synthetic papers")
    parser.add_argument("--mode", choices=sorted(BACKENDS), default="preview")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--big", type=Path, default=Path("/work/big"), help="folder outside the repository")
    parser.add_argument("--map-only", type=Path, help="only time the map of this finished run folder")
    parser.add_argument(
        "--resume", action="store_true",
        help="keep --big/out-N-MODE and its cache: a stopped run goes on from its finished stages (their "
        "seconds in the table are those of the run that computed them)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.map_only:
        print(json.dumps(time_map(args.map_only / "map.html")))
        return
    big = args.big.resolve()
    if big == ROOT or ROOT in big.parents:
        sys.exit(f"million: {big} is inside the repository; pass --big outside it")
    out = big / f"out-{args.n}-{args.mode}"
    if not args.resume:
        shutil.rmtree(out, ignore_errors=True)  # no embedding cache from an earlier run
    out.mkdir(parents=True, exist_ok=True)
    corpus = ensure_corpus(args.n, big)
    config = write_config(args.n, args.mode, args.workers, corpus, out)
    load_before = os.getloadavg()
    run_dir = out / f"million-{args.n}-{args.mode}"
    earlier = {stage: stage_seconds(run_dir, stage) for stage in STAGES} if args.resume else {}
    wall, memory, code = run_pipeline(config, out / "run.log", force=not args.resume)
    if code != 0:
        sys.exit(f"million: the run failed with exit code {code}; see {out / 'run.log'}")
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    seconds = {
        stage: earlier[stage] if earlier.get(stage) is not None else manifest["stages"][stage]["seconds"]
        for stage in STAGES
    }
    map_html, rest = run_dir / "map.html", run_dir / "map-papers.js"
    usage = stage_usage(memory.timeline, stage_windows(run_dir, memory.start_epoch))
    opened = time_map(map_html)
    result = {
        "n": args.n,
        "mode": args.mode,
        "workers": args.workers,
        "stage_seconds": seconds,
        "wall_s": wall,
        "peak_rss_gb": memory.peak / 1e9,
        "peak_at_s": memory.peak_at,
        "peak_processes": memory.peak_processes,
        "peak_driver_gb": memory.peak_driver / 1e9,
        "map_mb": map_html.stat().st_size / 1e6,
        "map_papers_js_mb": rest.stat().st_size / 1e6 if rest.exists() else 0.0,
        "map": opened,
        "load_before": load_before,
        "cpu_s": memory.cpu_s,
        "stage_usage": usage,
        # (seconds, GB of all processes, CPU seconds so far, GB of the run's own process, its CPU seconds so far)
        "timeline": [
            (at, round(size / 1e9, 3), cpu, round(own / 1e9, 3), own_cpu)
            for at, size, cpu, own, own_cpu in memory.timeline
        ],
        "load_after": os.getloadavg(),
        "cores": os.cpu_count(),
        "memory_gb": psutil.virtual_memory().total / 1e9,
    }
    (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if earlier:
        print(f"resumed: {', '.join(s for s, v in earlier.items() if v is not None)} timed by the earlier run; "
              "end to end and peak memory are this run's")  # fmt: skip
    print(f"{args.n:,} synthetic papers, {args.mode} mode ({BACKENDS[args.mode]}), engine dask with {args.workers} "
          f"local workers; {result['cores']} cores, {result['memory_gb']:.0f} GB; load average "
          f"{load_before[0]:.2f} before, {result['load_after'][0]:.2f} after; {memory.cpu_s:,.0f} CPU seconds "
          "in all processes")  # fmt: skip
    columns = [*STAGES, "end to end", "peak RSS, all processes", "map.html", "map-papers.js", "map drawn"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * (len(STAGES) + 5))
    cells = [f"{seconds[stage]:,.0f} s" for stage in STAGES]
    cells += [
        f"{wall / 60:.1f} min",
        f"{result['peak_rss_gb']:.1f} GB ({memory.peak_processes} processes, the run's own "
        f"{result['peak_driver_gb']:.1f} GB, at {memory.peak_at:,.0f} s)",
        f"{result['map_mb']:.0f} MB",
        f"{result['map_papers_js_mb']:.0f} MB",
        f"{opened['drawn_s']:.1f} s ({opened['points']:,} points)",
    ]
    print("| " + " | ".join(cells) + " |")
    cores = result["cores"]
    print(f"\nper stage (samples each second; cores busy = CPU s / wall, of {cores}):")
    print("| stage | wall | CPU s, all processes | CPU s, the run's own | cores busy | peak RSS, all (the run's own) |")
    print("|---|---|---|---|---|---|")
    for stage, use in usage.items():
        busy = use["cpu_s"] / use["wall_s"]
        print(f"| {stage} | {use['wall_s']:,.0f} s | {use['cpu_s']:,.0f} | {use['driver_cpu_s']:,.0f} | "
              f"{busy:.2f} | {use['peak_gb']:.1f} GB ({use['driver_peak_gb']:.1f}) |")  # fmt: skip


if __name__ == "__main__":
    main()
