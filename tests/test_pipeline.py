"""The whole pipeline on the seed pages and on tiny corpora, through the CLI and the runner."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import yaml

import pipeline
from pipeline.cli import main
from pipeline.config import load_config
from pipeline.runner import run_pipeline
from pipeline.schema import OUTLIER_NAME

pytestmark = pytest.mark.slow


def make_config(tmp_path: Path, inputs: list, name: str = "t", **sections) -> Path:
    raw = {"name": name, "output_dir": str(tmp_path / "out"), "inputs": inputs, **sections}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def statuses(result) -> dict[str, str]:
    return {outcome.stage: outcome.status for outcome in result.outcomes}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory):
    """One CLI run of the seed pages, shared by the tests that only read its outputs."""
    tmp_path = tmp_path_factory.mktemp("seed")
    pages = sorted((Path(__file__).resolve().parents[1] / "data" / "samples").glob("*.txt"))
    config_path = make_config(tmp_path, [str(page) for page in pages], name="seeds")
    assert main(["run", str(config_path)]) == 0
    return config_path, tmp_path / "out" / "seeds"


def test_seed_run_writes_every_output(seed_run):
    _, run_dir = seed_run
    for name in ("index.html", "map.html", "topics.html", "topics.csv", "papers.csv", "manifest.json"):
        assert (run_dir / name).is_file(), name
    papers = read_csv(run_dir / "papers.csv")
    topics = read_csv(run_dir / "topics.csv")
    assert len(papers) == 64
    assert sum(int(row["size"]) for row in topics) == 64
    topic_files = sorted((run_dir / "topics").glob("*.csv"))
    assert len(topic_files) == len(topics)
    for row in topics:
        assert row["name"] and not re.match(r"-?\d+_", row["name"])  # "Graph neural ...", never "3_the_of_and"
    assert len({row["name"] for row in topics}) == len(topics)
    outliers = [row for row in topics if row["topic"] == "-1"]
    assert outliers and outliers[0]["name"] == OUTLIER_NAME  # 5 of the 64 seed papers are outliers
    assert all(row["name"] != OUTLIER_NAME for row in topics if row["topic"] != "-1")
    index = (run_dir / "index.html").read_text(encoding="utf-8")
    assert index.count(OUTLIER_NAME) == 1  # the outlier row of the topic table
    assert "map.html" in index and "topics.csv" in index
    assert "cdn.plot.ly" not in (run_dir / "map.html").read_text(encoding="utf-8")


def test_manifest_records_config_versions_seeds_inputs_and_stages(seed_run):
    _, run_dir = seed_run
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["seeds"]["seed"] == 42
    assert manifest["config"]["cluster"]["min_cluster_size"] == "auto"
    assert manifest["packages"]["bertopic"] != "not installed"
    assert len(manifest["inputs"]) == 2 and all(len(item["sha256"]) == 64 for item in manifest["inputs"])
    assert set(manifest["stages"]) == {"parse", "embed", "cluster", "label", "report"}
    assert manifest["stages"]["parse"]["counts"]["papers"] == 64
    assert all(stage["seconds"] >= 0 for stage in manifest["stages"].values())


def test_rerun_reuses_stages_and_a_label_change_reruns_label_and_report_only(seed_run, tmp_path):
    config_path, _ = seed_run
    config = load_config(config_path)
    again = run_pipeline(config)
    assert set(statuses(again).values()) == {"reused"}
    changed = config.model_copy(update={"label": config.label.model_copy(update={"n_keywords": 7})})
    result = run_pipeline(changed)
    assert statuses(result) == {
        "parse": "reused", "embed": "reused", "cluster": "reused", "label": "computed", "report": "computed",
    }  # fmt: skip
    forced = run_pipeline(changed, force_from="cluster")
    assert statuses(forced)["embed"] == "reused" and statuses(forced)["cluster"] == "computed"


def test_deleted_report_is_rebuilt(seed_run):
    config_path, run_dir = seed_run
    (run_dir / "map.html").unlink()
    result = run_pipeline(load_config(config_path))
    assert statuses(result)["report"] == "computed"
    assert (run_dir / "map.html").is_file()


def test_added_input_embeds_only_the_new_papers(tmp_path, seed_pages):
    first = load_config(make_config(tmp_path, [str(seed_pages[0])], name="grow"))
    assert run_pipeline(first, until="embed").outcomes[-1].counts["embedded"] == 23
    both = load_config(make_config(tmp_path, [str(page) for page in seed_pages], name="grow"))
    counts = run_pipeline(both, until="embed").outcomes[-1].counts
    assert counts == {"papers": 64, "embedded": 41, "from_cache": 23}


def test_label_reruns_tokenise_only_new_texts_and_reuse_term_counts(tmp_path, seed_pages, monkeypatch):
    import pipeline.label.keywords
    import pipeline.terms

    tokenised, counted = [], []
    tokenize, count = pipeline.terms.tokenize_texts, pipeline.label.keywords.term_counts
    monkeypatch.setattr(pipeline.terms, "tokenize_texts", lambda texts: tokenised.append(len(texts)) or tokenize(texts))
    monkeypatch.setattr(pipeline.label.keywords, "term_counts", lambda *args: counted.append(1) or count(*args))

    def run(pages, **label):
        config = load_config(make_config(tmp_path, [str(page) for page in pages], name="words", label=label))
        tokenised.clear()
        counted.clear()
        assert statuses(run_pipeline(config, until="label"))["label"] == "computed"
        return sum(tokenised), len(counted)

    assert run(seed_pages[:1]) == (23, 1)
    assert run(seed_pages[:1], n_keywords=8) == (0, 0)  # a label setting: cached tokens and counts
    assert run(seed_pages, n_keywords=8) == (41, 1)  # a new page: its papers only; new texts, new counts
    assert run(seed_pages, n_keywords=8, extra_stop_words=["agent"]) == (0, 1)  # other stop words: recount


@pytest.mark.parametrize(
    ("setting", "default", "other"), [("reduce_frequent_words", True, False), ("keyword_min_share", 0.0, 0.4)]
)
def test_cached_class_weights_follow_their_settings(tmp_path, seed_pages, setting, default, other):
    def keywords(value) -> list[list[tuple[str, float]]]:
        config = load_config(make_config(tmp_path, [str(seed_pages[0])], name="tfidf", label={setting: value}))
        run_pipeline(config, until="label")
        topics = pipeline.open_run(tmp_path / "out" / "tfidf").topics
        return [list(zip(row.keywords, row.keyword_weights, strict=True)) for row in topics.itertuples()]

    first = keywords(default)
    changed = keywords(other)  # a cache keyed without the setting would hand back the first weights
    assert changed != first
    assert keywords(default) == first


def write_table(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["title", "abstract"])
        writer.writerows(rows)
    return path


ABSTRACT = "We study how sparse attention patterns change the training dynamics of small transformer models."


@pytest.mark.parametrize("n_papers", [1, 2])
def test_one_and_two_papers_give_one_honest_topic(tmp_path, n_papers):
    rows = [(f"Paper number {i} on attention", ABSTRACT + f" Variant {i}.") for i in range(n_papers)]
    table = write_table(tmp_path / "few.csv", rows)
    inputs = [{"path": str(table), "format": "table", "columns": {"title": "title", "abstract": "abstract"}}]
    assert main(["run", str(make_config(tmp_path, inputs, name="few"))]) == 0
    topics = read_csv(tmp_path / "out" / "few" / "topics.csv")
    assert [int(row["size"]) for row in topics] == [n_papers]
    assert len(read_csv(tmp_path / "out" / "few" / "papers.csv")) == n_papers


def test_one_seed_page_of_23_papers_runs(tmp_path, seed_pages):
    config = load_config(make_config(tmp_path, [str(seed_pages[0])], name="page"))
    result = run_pipeline(config)
    assert result.outcomes[0].counts["papers"] == 23
    topics = read_csv(tmp_path / "out" / "page" / "topics.csv")
    assert sum(int(row["size"]) for row in topics) == 23
    assert 1 <= len([row for row in topics if int(row["topic"]) >= 0]) <= 8


def test_hostile_title_is_text_in_every_page(tmp_path):
    hostile = "<script>alert(1)</script> and <img src=x onerror=alert(1)>"
    rows = [(hostile, ABSTRACT), ("Benign paper about attention", ABSTRACT + " Again.")]
    table = write_table(tmp_path / "hostile.csv", rows)
    inputs = [{"path": str(table), "format": "table", "columns": {"title": "title", "abstract": "abstract"}}]
    assert main(["run", str(make_config(tmp_path, inputs, name="hostile"))]) == 0
    run_dir = tmp_path / "out" / "hostile"
    pages = [run_dir / "index.html", run_dir / "map.html", run_dir / "topics.html"]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "<script>alert(1)" not in text and "<img src=x" not in text, page.name
    # The title is listed in the index (HTML-escaped) and carried by the map as JSON whose "<" is \u003c.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0].read_text(encoding="utf-8")
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in pages[1].read_text(encoding="utf-8")


def test_same_config_twice_gives_byte_identical_csvs(tmp_path, seed_pages):
    outputs = []
    for name in ("first", "second"):
        config = load_config(make_config(tmp_path, [str(seed_pages[1])], name=name))
        run_pipeline(config)
        run_dir = tmp_path / "out" / name
        outputs.append({p.relative_to(run_dir).as_posix(): p.read_bytes() for p in run_dir.rglob("*.csv")})
    assert outputs[0] == outputs[1]
    assert len(outputs[0]) >= 3


def test_a_few_new_papers_join_the_existing_clusters(tmp_path, seed_pages):
    """41 papers clustered, then 2 more: they join by nearest neighbours; old papers keep their clusters."""
    page = seed_pages[1].read_text(encoding="utf-8")
    blocks = page.split("\n\n")
    # The page minus its last paper (title + abstract paragraphs) is the "earlier" listing.
    earlier = tmp_path / "earlier.txt"
    earlier.write_text("\n\n".join(blocks[:-4]) + "\n", encoding="utf-8")
    later = tmp_path / "later.txt"
    later.write_text(page, encoding="utf-8")
    extra = {"cluster": {"incremental_max_share": 0.5}}
    first = load_config(make_config(tmp_path, [str(earlier)], name="inc", **extra))
    run_pipeline(first, until="cluster")
    from pipeline.stages import STAGE_NAMES
    from pipeline.store import ArtifactStore

    store = ArtifactStore(first.run_dir, first.cache_dir, STAGE_NAMES)
    old_labels = dict(zip(store.read_table("cluster", "paper_ids.parquet")["paper_id"],
                          store.read_array("cluster", "labels.npy").tolist(), strict=True))  # fmt: skip
    grown = load_config(make_config(tmp_path, [str(later)], name="inc", **extra))
    result = run_pipeline(grown, until="cluster")
    counts = result.outcomes[-1].counts
    assert counts["incremental"] == len(set(range(41))) - len(old_labels)
    new_labels = dict(zip(store.read_table("cluster", "paper_ids.parquet")["paper_id"],
                          store.read_array("cluster", "labels.npy").tolist(), strict=True))  # fmt: skip
    assert {paper: new_labels[paper] for paper in old_labels} == old_labels
    assert "incremental" in store.read_json("cluster", "cluster.json")["notes"][-1]
    # Asked to recluster, it does so from scratch.
    forced = run_pipeline(grown, until="cluster", force_from="cluster")
    assert "incremental" not in forced.outcomes[-1].counts


def test_llm_labeller_names_topics_through_a_local_server(tmp_path, seed_pages):
    """label.llm.enabled: names come from the local OpenAI-compatible server, unique, slugs rebuilt."""
    import http.server
    import threading

    asked: list[dict] = []

    class FakeServer(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            asked.append(body)
            # Every topic gets the same answer: the run must still keep names unique.
            answer = {"choices": [{"message": {"content": "Neural Network Pruning"}}]}
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        llm = {"enabled": True, "base_url": f"http://127.0.0.1:{server.server_port}/v1", "model": "tiny"}
        config = load_config(make_config(tmp_path, [str(seed_pages[0])], name="llm", label={"llm": llm}))
        run_pipeline(config)
    finally:
        server.shutdown()
    topics = read_csv(tmp_path / "out" / "llm" / "topics.csv")
    real = [row for row in topics if int(row["topic"]) >= 0]
    from pipeline.label.llm import SYSTEM_PROMPT

    topic_requests = [body for body in asked if body["messages"][0]["content"] == SYSTEM_PROMPT]
    assert len(topic_requests) == len(real) and asked[0]["model"] == "tiny"  # the rest name the groups
    assert all(row["name"].startswith("Neural Network Pruning") for row in real)
    assert len({row["name"] for row in real}) == len(real)


def test_only_the_stages_that_read_the_input_files_get_their_bytes(tmp_path, seed_pages, monkeypatch):
    import dataclasses

    from pipeline import runner

    given: dict[str, int] = {}

    def spying(stage):
        def run(context):
            given[stage.name] = sum(len(source.data) for source in context.sources)
            return stage.run(context)

        return dataclasses.replace(stage, run=run)

    monkeypatch.setattr(runner, "STAGES", [spying(stage) for stage in runner.STAGES])
    result = run_pipeline(load_config(make_config(tmp_path, [str(seed_pages[0])], name="bytes")))
    size = seed_pages[0].stat().st_size
    assert given == {"parse": size, "embed": 0, "cluster": 0, "label": 0, "report": 0}
    # The manifest still says which files went in, and how large they were.
    assert [(entry["path"], entry["bytes"]) for entry in result.manifest["inputs"]] == [(str(seed_pages[0]), size)]


def test_evaluate_recomputes_the_metrics_of_a_finished_run(seed_run, capsys):
    _, run_dir = seed_run
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--json"]) == 0
    recomputed = json.loads(capsys.readouterr().out)
    written = json.loads((run_dir / "metrics.json").read_text())
    assert recomputed["n_topics"] == written["n_topics"] and recomputed["npmi"] == pytest.approx(written["npmi"])
    assert main(["evaluate", str(run_dir.parent / "no-such-run")]) == 2
    assert "no such run folder" in capsys.readouterr().err
