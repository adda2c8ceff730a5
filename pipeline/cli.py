"""Command line: ``python -m pipeline run CONFIG`` (also installed as ``papertopics``).

``run FILES...`` (anything that is not a ``.yaml`` file) runs input files with every default
and ``init FILES...`` prints a commented config for them; both first say what they decided
for the files (``pipeline.zeroconfig``). ``evaluate RUN_DIR`` prints a finished run's quality.

This is the only layer that prints: a progress line per stage (rich), papertopics' own log
messages, and one line for a user's mistake (exit code 2, no traceback). Everything logged,
by papertopics and by the libraries it runs (onnxruntime's quantiser alone writes about 60
lines while it builds the int8 model), goes to ``<output_dir>/<name>/run.log``; ``-v`` shows
all of it on the screen too. Heavy libraries are imported
by the stages only when they run, so a fully cached run answers in about a second.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from pipeline.config import RunConfig
from pipeline.errors import ConfigError, PapertopicsError, one_line
from pipeline.offline import apply_offline_policy

EXIT_USER_ERROR = 2
console = Console(stderr=True)
log = logging.getLogger(__name__)


class ProgressDisplay:
    """Shows one progress line per stage; implements ``runner.RunObserver``."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def stage_started(self, stage: str) -> None:
        self.tasks[stage] = self.progress.add_task(f"{stage:<8}", total=None)

    def stage_progress(self, stage: str, done: int, total: int) -> None:
        self.progress.update(self.tasks[stage], completed=done, total=total)

    def stage_finished(self, outcome) -> None:
        counts = ", ".join(f"{key} {value}" for key, value in outcome.counts.items())
        label = "reused" if outcome.status == "reused" else f"{outcome.seconds:.1f}s"
        self.progress.update(
            self.tasks[outcome.stage],
            total=1,
            completed=1,
            description=f"{outcome.stage:<8} [dim]{label:>7}  {counts}[/dim]",
        )


def _offline_and_quiet_third_party() -> None:
    # Offline for good (pipeline.offline: the runner applies it too, for runs started from Python),
    # set here before anything else so that every command, evaluate included, runs under it.
    apply_offline_policy()
    for noisy in ("transformers", "sentence_transformers", "model2vec", "BERTopic", "numba", "umap", "pynndescent"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="papertopics", description="Topics and topic maps from research-paper listings."
    )
    from pipeline.stages import STAGE_NAMES

    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the pipeline for a YAML config, or for input files with the defaults")
    run.add_argument(
        "config",
        nargs="+",
        metavar="CONFIG_OR_FILES",
        help="a YAML config (e.g. configs/default.yaml), or input files, folders or globs to run with every default",
    )
    run.add_argument("--name", help="the run's name (its output folder); default: the config's, or the first input's")
    run.add_argument("--out", help="the output folder (default: the config's output_dir, else outputs)")
    run.add_argument("--until", choices=STAGE_NAMES, default=STAGE_NAMES[-1], help="stop after this stage")
    run.add_argument(
        "--force",
        nargs="?",
        const="parse",
        choices=STAGE_NAMES,
        metavar="STAGE",
        help="recompute this stage and the ones after it even if cached (alone: every stage)",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="show debug messages")
    init = commands.add_parser(
        "init", help="print a commented config for input files: papertopics init FILES > my.yaml"
    )
    init.add_argument("files", nargs="+", help="input files, folders or globs")
    init.add_argument("--name", help="the run's name (default: the first input's)")
    init.add_argument("--out", help="the output folder (default: outputs)")
    evaluate = commands.add_parser("evaluate", help="topic quality of a finished run: NPMI, diversity, outliers, NMI")
    evaluate.add_argument("run_dir", help="a run folder, e.g. outputs/default")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    return parser


def _summary_table(result) -> Table:
    table = Table(title="papertopics", show_header=True, header_style="bold")
    for column in ("stage", "status", "seconds", "counts"):
        table.add_column(column)
    for outcome in result.outcomes:
        counts = ", ".join(f"{key} {value}" for key, value in outcome.counts.items())
        table.add_row(outcome.stage, outcome.status, f"{outcome.seconds:.1f}", counts)
    return table


def evaluate_command(args: argparse.Namespace, handlers: list[logging.Handler]) -> int:
    import json

    from pipeline.evaluate import evaluate_run
    from pipeline.metrics import METRIC_LABELS

    metrics = evaluate_run(Path(args.run_dir))
    if args.json:
        print(json.dumps(metrics, indent=2, sort_keys=True))
        return 0
    table = Table(title=f"papertopics evaluate {args.run_dir}", header_style="bold")
    for column in ("metric", "value", "what it measures"):
        table.add_column(column)
    for key, (label, meaning) in METRIC_LABELS.items():
        value = metrics.get(key)
        shown = "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)
        table.add_row(label, shown, meaning)
    Console().print(table)
    if metrics.get("name_audit"):
        names = Table(title="name audit: the main phrase of each topic's name", header_style="bold")
        for column in ("topic", "main phrase", "coverage", "lift"):
            names.add_column(column)
        for row in metrics["name_audit"]:
            names.add_row(str(row["topic"]), row["phrase"], f"{100 * row['coverage']:.0f}%", f"{row['lift']:.1f}")
        Console().print(names)
    return 0


def _say(lines: list[str]) -> None:
    """What a run without a config decided, on the screen (stderr: ``init`` writes the config to stdout)."""
    for line in lines:
        console.print(f"[cyan]papertopics:[/cyan] {escape(one_line(line))}", highlight=False, soft_wrap=True)


def _run_config(args: argparse.Namespace) -> tuple[RunConfig, str | None]:
    """The run's config: the YAML file given, or (for input files) every default, said on the screen."""
    from pipeline.api import resolve_config
    from pipeline.zeroconfig import decide, is_config_path

    overrides = {key: value for key, value in (("name", args.name), ("output_dir", args.out)) if value is not None}
    if len(args.config) == 1 and is_config_path(args.config[0]):
        return resolve_config(args.config[0], overrides)
    yaml_args = [argument for argument in args.config if is_config_path(argument)]
    if yaml_args:
        raise ConfigError(f"{yaml_args[0]}: a YAML config is run alone, not with other files")
    decisions = decide(args.config, name=args.name, output_dir=args.out)
    _say(decisions.lines())
    return decisions.config, None


def init_command(args: argparse.Namespace, handlers: list[logging.Handler]) -> int:
    from pipeline.config_doc import commented_config
    from pipeline.zeroconfig import decide

    decisions = decide(args.files, name=args.name, output_dir=args.out)
    _say(decisions.lines())
    entries, notes = decisions.input_entries()
    sys.stdout.write(commented_config(decisions.config.name, entries, notes, decisions.config.output_dir))
    return 0


def run_command(args: argparse.Namespace, handlers: list[logging.Handler]) -> int:
    config, config_path = _run_config(args)
    from pipeline.preflight import preflight

    preflight(config, source=config_path or "<command line>")  # the runner checks again; here before the display
    run_log = _log_to_file(config.run_dir)
    if run_log is not None:
        handlers.append(run_log)
        log.debug("papertopics run %s (pid %d)", " ".join(args.config), os.getpid())
    from pipeline.runner import run_pipeline

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        result = run_pipeline(
            config, until=args.until, force_from=args.force, observer=ProgressDisplay(progress), config_path=config_path
        )
    console.print(_summary_table(result))
    index = Path(result.run_dir) / "index.html"
    if args.until == "report" and index.is_file():
        console.print(f"Report: [bold]{index}[/bold]  (open it in a browser)")
    else:
        console.print(f"Stopped after {args.until}; results in {result.run_dir}")
    return 0


RUN_LOG = "run.log"


class _OwnMessages(logging.Filter):
    """On the screen: papertopics' own messages, and errors from any library."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name == "pipeline" or record.name.startswith("pipeline.") or record.levelno >= logging.ERROR


def _log_to_screen(verbose: bool) -> logging.Handler:
    """Log through rich on stderr: papertopics' messages at INFO, or everything at DEBUG with ``verbose``."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("pipeline").setLevel(logging.DEBUG)  # the run log keeps papertopics' debug messages
    logging.captureWarnings(True)  # library warnings become log records (py.warnings): to the run log
    screen = RichHandler(console=console, show_path=False, show_time=False)
    screen.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        screen.addFilter(_OwnMessages())
    root.addHandler(screen)
    return screen


def _log_to_file(run_dir: Path) -> logging.Handler | None:
    """Append every log record to ``<run_dir>/run.log``; None when the folder cannot be written.

    A folder that cannot be written stops the run right after, with the store's one-line
    message naming it, so there is nothing to add here.
    """
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(run_dir / RUN_LOG, encoding="utf-8")
    except OSError:
        return None
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    _offline_and_quiet_third_party()
    root, own = logging.getLogger(), logging.getLogger("pipeline")
    levels = root.level, own.level
    handlers = [_log_to_screen(getattr(args, "verbose", False))]
    try:
        commands = {"run": run_command, "init": init_command, "evaluate": evaluate_command}
        return commands[args.command](args, handlers)
    except PapertopicsError as exc:
        # The message quotes file names and input text: escape rich markup ("[/]") and control characters.
        console.print(f"[bold red]error:[/bold red] {escape(one_line(str(exc)))}", highlight=False, soft_wrap=True)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: finished stages are kept; run again to resume[/yellow]")
        return 130
    finally:
        # main() may run again in this process (the tests do): leave logging as it was.
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(levels[0])
        own.setLevel(levels[1])
        logging.captureWarnings(False)


if __name__ == "__main__":
    sys.exit(main())
