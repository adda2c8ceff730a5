"""Hostile input and machine faults of issue 14.

Planted links, out-of-range and coerced settings, unbounded messages, late checks, empty
days, odd parse details and report publishing.
"""

from __future__ import annotations

import typing
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from pipeline.config import RunConfig, load_config
from pipeline.errors import ConfigError, InputError, OutputError
from pipeline.files import atomic_write_bytes
from pipeline.stages import STAGE_NAMES
from pipeline.store import ArtifactStore


@pytest.fixture
def store(tmp_path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "run", tmp_path / "cache", STAGE_NAMES)


# -- item 5: links planted where the store writes ------------------------------------------------
def test_lock_that_is_a_link_is_refused_and_its_target_left_alone(store, tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("do not touch")
    store.run_dir.mkdir(parents=True)
    (store.run_dir / ".lock").symlink_to(victim)
    with pytest.raises(OutputError, match=r"\.lock: is a symbolic link; the run lock must be a plain file"):
        with store.lock():
            pass
    assert victim.read_text() == "do not touch"
    assert (store.run_dir / ".lock").is_symlink()  # left for the user to look at


def test_temporary_name_taken_by_a_link_is_refused_and_its_target_left_alone(tmp_path, monkeypatch):
    victim = tmp_path / "precious.txt"
    victim.write_text("do not touch")
    folder = tmp_path / "run"
    folder.mkdir()
    fixed = uuid.UUID("12345678123456781234567812345678")
    monkeypatch.setattr("pipeline.files.uuid.uuid4", lambda: fixed)
    (folder / ".papers.csv.12345678.tmp").symlink_to(victim)
    with pytest.raises(OutputError, match=r"\.papers\.csv\.12345678\.tmp: something already has this temporary name"):
        atomic_write_bytes(folder / "papers.csv", b"new")
    assert victim.read_text() == "do not touch"
    assert not (folder / "papers.csv").exists()


# -- item 6: out-of-range and coerced settings are refused at load ---------------------------------
def write_config(tmp_path: Path, text: str) -> Path:
    (tmp_path / "papers.csv").write_text("title,abstract\nA paper title,An abstract of the paper\n")
    path = tmp_path / "run.yaml"
    path.write_text(f"name: x\ninputs: ['{tmp_path}/papers.csv']\n{text}")
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Out of range: each of these passed and crashed after parse and embed had run.
        ("seed: -1\n", "key 'seed': should be greater than or equal to 0 (got -1)"),
        ("seed: 4294967296\n", "key 'seed': should be less than or equal to 4294967295"),
        ("cluster:\n  n_neighbors: 1\n", "key 'cluster.n_neighbors': should be greater than or equal to 2"),
        ("label:\n  n_topics: 10000000000000000000000000000000\n", "key 'label.n_topics'"),
        ("label:\n  llm:\n    timeout_s: .inf\n", "key 'label.llm.timeout_s': should be less than or equal to 3600"),
        # Coerced silently: read as 42, 1, 5 and True.
        ("seed: '42'\n", "key 'seed': should be a valid integer (got '42')"),
        ("cluster:\n  n_components: true\n", "key 'cluster.n_components': should be a valid integer (got True)"),
        ("cluster:\n  n_components: 5.0\n", "key 'cluster.n_components': should be a valid integer (got 5.0)"),
        ("parse:\n  dedupe: 1\n", "key 'parse.dedupe': should be a valid boolean (got 1)"),
        ("label:\n  reduce_outliers: 'yes'\n", "key 'label.reduce_outliers': should be a valid boolean"),
        ("inputs_year_placeholder", "key 'inputs.0.year': should be a valid integer (got '2024')"),
    ],
)
def test_bad_values_stop_at_load_with_one_line(tmp_path, text, expected):
    if text == "inputs_year_placeholder":
        (tmp_path / "p.txt").write_text("x")
        path = tmp_path / "run.yaml"
        path.write_text(f"name: x\ninputs:\n  - path: '{tmp_path}/p.txt'\n    year: '2024'\n")
    else:
        path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


def test_an_int_is_still_a_float_and_the_edges_of_the_ranges_are_accepted(tmp_path):
    path = write_config(tmp_path, "seed: 4294967295\ncluster:\n  n_neighbors: 2\n  map_min_dist: 0\n")
    config = load_config(path)
    assert (config.seed, config.cluster.n_neighbors, config.cluster.map_min_dist) == (2**32 - 1, 2, 0.0)


def _numeric_fields(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, list[object]]]:
    """(key, constraint metadata) of every int or float setting, through nested sections."""
    for name, info in model.model_fields.items():
        key = f"{prefix}{name}"
        members = [info.annotation, *typing.get_args(info.annotation)]
        nested = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
        for section in nested:
            yield from _numeric_fields(section, f"{key}.")
        if key.startswith("inputs") and not nested and typing.get_origin(info.annotation) is list:
            continue
        if info.annotation in (int, float):
            yield key, list(info.metadata)
        for member in typing.get_args(info.annotation):
            base = typing.get_args(member)[0] if typing.get_origin(member) is typing.Annotated else member
            if base in (int, float) and base is not bool:
                metadata = list(getattr(member, "__metadata__", ())) + list(info.metadata)
                yield key, metadata


def _bounds(metadata: list[object]) -> tuple[bool, bool]:
    low = any(getattr(item, "ge", None) is not None or getattr(item, "gt", None) is not None for item in metadata)
    high = any(getattr(item, "le", None) is not None or getattr(item, "lt", None) is not None for item in metadata)
    for item in metadata:  # a FieldInfo inside Annotated carries its own metadata
        low_inner, high_inner = _bounds(list(getattr(item, "metadata", ())))
        low, high = low or low_inner, high or high_inner
    return low, high


def test_every_numeric_setting_has_a_lower_and_an_upper_bound():
    fields = dict(_numeric_fields(RunConfig))
    # The walk must see the settings this test is about, else it checks nothing.
    assert {"seed", "cluster.n_components", "cluster.n_neighbors", "label.llm.timeout_s", "inputs.year"} <= set(fields)
    unbounded = [key for key, metadata in fields.items() if _bounds(metadata) != (True, True)]
    assert unbounded == []


# -- item 7: messages stay short whatever the config or input holds -------------------------------
def alias_bomb(levels: int) -> str:
    """A "billion laughs" list under a valid key: 9**levels strings from a few hundred bytes."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, levels):
        lines.append(f"l{n}: &l{n} [" + ",".join([f"*l{n - 1}"] * 9) + "]")
    return "\n".join(lines)


def test_yaml_alias_bomb_is_refused_before_validation(tmp_path):
    # Six levels (531,441 strings) keep the old behaviour testable: a 3.7 MB one-line message.
    # Under extra keys: an unknown key is an error, but only after expansion was validated.
    bomb = alias_bomb(6).replace("\n", "\n  ")
    path = write_config(tmp_path, f"label:\n  {bomb}\n  extra_stop_words: *l5\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "more than 100,000 values once its aliases (*name) are expanded" in message
    assert len(message) < 400


def test_a_few_aliases_are_still_read(tmp_path):
    path = write_config(tmp_path, "label:\n  extra_stop_words: &words [model, method]\nreport:\n  title: *t\n")
    path.write_text(path.read_text().replace("*t", "&t Topics"))
    config = load_config(path)
    assert (config.label.extra_stop_words, config.report.title) == (["model", "method"], "Topics")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("name: " + "x" * 900_000 + "\n", "name"),
        ("seed: '" + "9" * 500_000 + "'\n", "seed"),
        ("label:\n  " + "k" * 1_000 + ": 1\n", "label"),  # PyYAML's longest plain key
    ],
    ids=["900 KB name", "500 KB seed", "1,000-character key"],
)
def test_long_values_are_cut_in_messages(tmp_path, text, key):
    path = write_config(tmp_path, "")
    path.write_text(text if text.startswith("name") else path.read_text() + text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert f"'{key}" in message
    assert len(message) < 1_000
    assert "more characters)" in message


def test_config_file_over_a_megabyte_is_refused_unread(tmp_path):
    path = write_config(tmp_path, "# padding\n" * 200_000)
    with pytest.raises(ConfigError, match=r"2,000,\d+ bytes is too large for a config \(at most 1,000,000\)"):
        load_config(path)


def test_huge_column_names_are_cut_in_the_input_message(tmp_path):
    from pipeline.parse.tables import resolve_mapping

    columns = [f"column-{n}-" + "c" * 10_000 for n in range(100)]
    with pytest.raises(InputError) as caught:
        resolve_mapping(None, columns, "wide.csv")
    assert str(caught.value).startswith("wide.csv: cannot tell which column holds the title or abstract")
    assert len(str(caught.value)) < 600


def test_the_printed_error_line_is_capped(capsys, monkeypatch):
    from pipeline import cli

    def fail(*_args):
        raise InputError("x" * 5_000_000)

    monkeypatch.setattr(cli, "run_command", fail)
    assert cli.main(["run", "any.yaml"]) == 2
    err = capsys.readouterr().err
    assert len(err) < 3_000
    assert "more characters)" in err


# -- item 8: what can only fail late is checked before any work -----------------------------------
@pytest.fixture
def no_run(monkeypatch) -> list[object]:
    """Replaces the pipeline: a call means the CLI started the work."""
    calls: list[object] = []
    monkeypatch.setattr("pipeline.runner.run_pipeline", lambda config, **_kwargs: calls.append(config))
    return calls


def run_cli(path: Path, capsys) -> tuple[int, str]:
    from pipeline.cli import main

    code = main(["run", str(path)])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    return code, " ".join(errors)


@pytest.mark.parametrize(
    ("url", "allow_remote", "expected"),
    [
        ("http://llm.example.com/v1", "false", "is not on this machine"),
        ("ftp://localhost/v1", "true", "is not an http(s) url"),
        ("http://10.0.0.7:11434/v1/" + "x" * 5_000, "false", "more characters) is not on this machine"),
    ],
)
def test_remote_llm_url_stops_the_run_before_any_work(tmp_path, capsys, no_run, url, allow_remote, expected):
    llm = f"label:\n  llm:\n    enabled: true\n    base_url: '{url}'\n    allow_remote: {allow_remote}\n"
    path = write_config(tmp_path, f"output_dir: '{tmp_path}/out'\n{llm}")
    code, error = run_cli(path, capsys)
    assert (code, no_run) == (2, [])
    assert error.startswith(f"error: {path}: key 'label.llm.base_url': LLM labeller: base url")
    assert expected in error
    assert len(error) < 600


def test_local_llm_url_and_writable_folders_pass(tmp_path, capsys, no_run):
    import socket

    from pipeline.preflight import preflight

    with socket.create_server(("127.0.0.1", 0)) as server:  # a server that accepts connections
        url = f"http://127.0.0.1:{server.getsockname()[1]}/v1"
        llm = f"label:\n  llm:\n    enabled: true\n    base_url: '{url}'\n"
        config = load_config(write_config(tmp_path, f"output_dir: '{tmp_path}/out'\n{llm}"))
        preflight(config)
    assert config.run_dir.is_dir() and config.cache_dir.is_dir()
    assert list(config.run_dir.iterdir()) == [] and list(config.cache_dir.iterdir()) == []  # the probe is gone


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (taken, then let go)."""
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:
        return server.getsockname()[1]


def test_a_stopped_llm_server_stops_the_run_before_parse(tmp_path, capsys, no_run):
    """label.llm.enabled with nothing listening: one line before any stage, not after parse, embed and cluster."""
    url = f"http://127.0.0.1:{closed_port()}/v1"
    llm = f"label:\n  llm:\n    enabled: true\n    base_url: '{url}'\n"
    path = write_config(tmp_path, f"output_dir: '{tmp_path}/out'\n{llm}")
    code, error = run_cli(path, capsys)
    assert (code, no_run) == (2, [])
    assert error.startswith(f"error: {path}: key 'label.llm.base_url': no server answers at '{url}'")
    assert "label.llm.enabled: false" in error


def test_a_stopped_llm_server_is_a_warning_when_names_may_stay(tmp_path, caplog):
    from pipeline.preflight import preflight

    url = f"http://127.0.0.1:{closed_port()}/v1"
    llm = f"label:\n  llm:\n    enabled: true\n    base_url: '{url}'\n    on_failure: keep\n"
    preflight(load_config(write_config(tmp_path, f"output_dir: '{tmp_path}/out'\n{llm}")))
    assert any("no LLM server answers" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("blocked", ["cache", "run"])
def test_unwritable_cache_or_run_folder_stops_the_run_before_any_work(tmp_path, capsys, no_run, blocked):
    out = tmp_path / "out"
    out.mkdir()
    # A file where the folder should be: unwritable even for root (chmod is not).
    (out / (".cache" if blocked == "cache" else "x")).write_text("not a folder")
    code, error = run_cli(write_config(tmp_path, f"output_dir: '{out}'\n"), capsys)
    assert (code, no_run) == (2, [])
    folder = out / (".cache" if blocked == "cache" else "x")
    assert error.startswith(f"error: {folder}")
    assert "cannot write the output (" in error


def test_read_only_cache_folder_stops_the_run_before_any_work(tmp_path, capsys, no_run, monkeypatch):
    import errno
    import tempfile

    real_mkstemp = tempfile.mkstemp

    def read_only_cache(*args, dir=None, **kwargs):
        if Path(dir).name == ".cache":
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr("pipeline.preflight.tempfile.mkstemp", read_only_cache)
    code, error = run_cli(write_config(tmp_path, f"output_dir: '{tmp_path}/out'\n"), capsys)
    assert (code, no_run) == (2, [])
    assert error == f"error: {tmp_path}/out/.cache: cannot write the output (Read-only file system)"


# -- item 10: a day without papers among daily files -----------------------------------------------
def test_days_without_records_in_a_glob_are_reported_not_fatal(tmp_path):
    from pipeline.config import InputSpec, ParseConfig
    from pipeline.parse import parse
    from pipeline.sources import collect_sources

    days = tmp_path / "days"
    days.mkdir()
    paper = '{"title": "Sparse attention for long documents", "abstract": "We study sparse attention."}'
    (days / "2024-01-01.json").write_text(f"[{paper}]")
    (days / "2024-01-02.json").write_text("[]")
    (days / "2024-01-03.json").write_text("[ ]\n")
    (days / "2024-01-04.csv").write_text("title,abstract\n")
    (days / "2024-01-05.json").write_text("")
    result = parse(collect_sources([InputSpec(path=str(days / "2024-*"))]), ParseConfig())
    assert result.papers["title"].tolist() == ["Sparse attention for long documents"]
    assert [(Path(r.path).name, r.read, r.kept, r.skipped) for r in result.file_reports] == [
        ("2024-01-01.json", 1, 1, 0),
        ("2024-01-02.json", 0, 0, 0),
        ("2024-01-03.json", 0, 0, 0),
        ("2024-01-04.csv", 0, 0, 0),
        ("2024-01-05.json", 0, 0, 0),
    ]


def test_a_file_without_records_alone_or_all_bad_is_still_an_error(tmp_path):
    from pipeline.config import InputSpec, ParseConfig
    from pipeline.parse import parse
    from pipeline.sources import collect_sources

    (tmp_path / "only.json").write_text("[]")
    with pytest.raises(InputError, match=r"only\.json: holds no papers"):
        parse(collect_sources([InputSpec(path=str(tmp_path / "only.json"))]), ParseConfig())
    days = tmp_path / "days"
    days.mkdir()
    (days / "a.json").write_text("[]")
    (days / "b.csv").write_text("title,abstract\n")
    with pytest.raises(InputError, match=r"none of its 2 files holds a paper"):
        parse(collect_sources([InputSpec(path=str(days / "*"))]), ParseConfig())
    (days / "c.json").write_text('[{"title": ""}, 7]')  # records, every one of them bad
    (days / "d.json").write_text('[{"title": "Sparse attention for long documents"}]')
    with pytest.raises(InputError, match=r"c\.json: holds no papers"):
        parse(collect_sources([InputSpec(path=str(days / "*"))]), ParseConfig())


# -- item 11: parse details found on real files ----------------------------------------------------
CHROME = "Get trending papers in your email inbox!\n\nDaily Papers\n\nAug 12\n\n"
ABSTRACT_A = (
    "We study how large language models forget facts during fine-tuning. Our experiments cover six "
    "model families and three datasets, and we propose a simple replay scheme that halves forgetting."
)
ABSTRACT_B = (
    "We present a fast link predictor for knowledge graphs. It scores a billion candidate edges per "
    "second on one GPU and matches the accuracy of models ten times its size on four benchmarks."
)


def hf_papers(text: str):
    from pipeline.config import InputSpec, ParseConfig
    from pipeline.parse import parse
    from pipeline.sources import SourceFile

    page = SourceFile(path="page.txt", data=text.encode(), sha256="0" * 64, spec=InputSpec(path="page.txt"))
    result = parse([page], ParseConfig())
    return result.papers, result.file_reports[0]


@pytest.mark.parametrize(
    "title",
    [
        "LinkNet: Fast Link Prediction at Scale (https://linknet.github.io)",
        "https://linknet.github.io LinkNet: Fast Link Prediction at Scale",
        "LinkNet: Fast Link Prediction, code at https://github.com/x/linknet and a demo",
    ],
)
def test_daily_papers_title_with_a_url_is_its_own_paper(title):
    text = CHROME + "Forgetting In Fine-Tuning\n\n" + ABSTRACT_A + "\n\n" + title + "\n\n" + ABSTRACT_B + "\n"
    papers, report = hf_papers(text)
    assert papers["title"].tolist() == ["Forgetting In Fine-Tuning", title]
    assert papers["abstract"].tolist() == [ABSTRACT_A, ABSTRACT_B]
    assert (report.read, report.kept) == (2, 2)


@pytest.mark.parametrize(
    "caption",
    [
        "Code: https://github.com/a/b",
        "Project page and code: https://a.github.io",
        "Our code is available at https://x.io",
    ],
)
def test_link_caption_between_abstract_paragraphs_stays_in_the_abstract(caption):
    text = CHROME + "Forgetting In Fine-Tuning\n\n" + ABSTRACT_A + "\n\n" + caption + "\n\n" + ABSTRACT_B + "\n"
    papers, _ = hf_papers(text)
    assert papers["title"].tolist() == ["Forgetting In Fine-Tuning"]
    assert papers["abstract"].iloc[0].startswith(ABSTRACT_A)
    assert papers["abstract"].iloc[0].endswith(ABSTRACT_B)


def test_url_title_without_an_abstract_after_it_stays_in_the_abstract_before():
    line = "LinkNet: Fast Link Prediction at Scale (https://linknet.github.io)"
    text = (
        CHROME + "Forgetting In Fine-Tuning\n\n" + ABSTRACT_A + "\n\n" + line + "\n\nNext Paper Title\n\n" + ABSTRACT_B
    )
    papers, _ = hf_papers(text)
    assert papers["title"].tolist() == ["Forgetting In Fine-Tuning", "Next Paper Title"]
    assert papers["abstract"].iloc[0].startswith(ABSTRACT_A) and "LinkNet" in papers["abstract"].iloc[0]


def csv_table(tmp_path: Path, text: str, **columns):
    from pipeline.config import ColumnMapping, InputSpec, ParseConfig
    from pipeline.parse import parse
    from pipeline.sources import collect_sources

    path = tmp_path / "papers.csv"
    path.write_text(text)
    mapping = ColumnMapping(**columns) if columns else None
    return parse(collect_sources([InputSpec(path=str(path), columns=mapping)]), ParseConfig()).papers


def test_label_column_holding_a_list_uses_its_first_entry(tmp_path):
    text = (
        "title,abstract,categories\n"
        "Paper one,An abstract about combinatorics,\"['math.CO', 'math.RT']\"\n"
        'Paper two,An abstract about learning,"[""cs.LG"", ""stat.ML""]"\n'
        "Paper three,An abstract about a plain label,cs.CL\n"
        "Paper four,An abstract about brackets,[not a list\n"
    )
    papers = csv_table(tmp_path, text, title="title", abstract="abstract", label="categories")
    assert papers["label"].tolist() == ["math.CO", "cs.LG", "cs.CL", "[not a list"]


def test_label_list_in_json_uses_its_first_entry(tmp_path):
    from pipeline.config import InputSpec, ParseConfig
    from pipeline.parse import parse
    from pipeline.sources import collect_sources

    path = tmp_path / "papers.jsonl"
    path.write_text('{"title": "Paper one", "abstract": "An abstract", "label": ["math.CO", "math.RT"]}\n')
    assert parse(collect_sources([InputSpec(path=str(path))]), ParseConfig()).papers["label"].tolist() == ["math.CO"]


def test_authors_list_repr_in_csv_is_split_as_in_json(tmp_path):
    text = (
        "title,abstract,authors\n"
        "Paper one,An abstract about graphs,\"['Ann Lee', 'Bo Chen']\"\n"
        'Paper two,An abstract about words,"Cy Diaz, Di Eve"\n'
        'Paper three,An abstract about lists,"[""O\'Neil, Pat"", ""Q. Ross""]"\n'
    )
    papers = csv_table(tmp_path, text)
    assert papers["authors"].tolist() == ["Ann Lee; Bo Chen", "Cy Diaz, Di Eve", "O'Neil, Pat; Q. Ross"]


# -- item 14: publishing the report ------------------------------------------------------------------
def disk_full_on(monkeypatch, name: str) -> None:
    import errno

    from pipeline import files as files_module

    real = files_module.atomic_write_bytes

    def write(path, data):
        if Path(path).name == name:
            full = OSError(errno.ENOSPC, "No space left on device")
            raise files_module.output_error(Path(path), full) from full
        real(path, data)

    monkeypatch.setattr(files_module, "atomic_write_bytes", write)  # what publish_report writes through


def test_first_report_failing_on_a_full_disk_does_not_claim_a_previous_one(store, monkeypatch):
    disk_full_on(monkeypatch, "map.html")
    with pytest.raises(OutputError) as caught:
        store.publish_report({"index.html": b"new", "map.html": b"new"})
    message = str(caught.value)
    assert "(No space left on device at map.html); free some space and run again; no report was published" in message
    assert "previous" not in message
    assert not (store.run_dir / "index.html").exists()


def test_later_report_failing_on_a_full_disk_keeps_the_previous_one(store, monkeypatch):
    store.publish_report({"index.html": b"old", "topics/01-a.html": b"old"})
    disk_full_on(monkeypatch, "01-a.html")
    with pytest.raises(OutputError, match="free some space and run again; the previous report is left as it was"):
        store.publish_report({"index.html": b"new", "topics/01-a.html": b"new"})
    assert (store.run_dir / "index.html").read_bytes() == b"old"


# Run as an unprivileged user: root may delete entries of a read-only folder.
READ_ONLY_TOPICS = """
import os, sys
from pathlib import Path
from pipeline.errors import OutputError
from pipeline.store import ArtifactStore
from pipeline.stages import STAGE_NAMES
if os.getuid() == 0:  # imports first: the unprivileged user may not read the interpreter's files
    os.setgid(65534)
    os.setuid(65534)
run = Path(sys.argv[1])
store = ArtifactStore(run, run.parent / ".cache", STAGE_NAMES)
store.publish_report({"index.html": b"old", "topics/01-a.html": b"old"})
os.chmod(run / "topics", 0o555)
try:
    store.publish_report({"index.html": b"new", "topics/01-a.html": b"new"})
except OutputError as exc:
    print("error:", exc)
    sys.exit(2)
"""


def test_read_only_topics_folder_fails_and_leaves_no_retired_folder(tmp_path):
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="papertopics-readonly-"))  # reachable by the unprivileged user
    try:
        run = folder / "run"
        if os.getuid() == 0:
            os.chmod(folder, 0o777)
        root = Path(__file__).resolve().parents[1]
        child = subprocess.run(
            [sys.executable, "-c", READ_ONLY_TOPICS, str(run)],
            capture_output=True,
            text=True,
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
            timeout=120,
        )
        assert child.returncode == 2, child.stdout + child.stderr
        assert "the previous report's folder is read-only" in child.stdout
        assert "the previous report is left as it was" in child.stdout
        assert sorted(path.name for path in run.iterdir() if path.name.startswith(".")) == []
        assert (run / "index.html").read_bytes() == b"old"
        assert (run / "topics" / "01-a.html").read_bytes() == b"old"
    finally:
        for path in folder.rglob("*"):
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(folder)
