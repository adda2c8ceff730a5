"""The optional LLM labeller against a small OpenAI-compatible server the test starts on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pipeline.config import LLMConfig
from pipeline.errors import PapertopicsError
from pipeline.label import llm as llm_labeller
from pipeline.label.llm import (
    LLMLabelError,
    check_base_url,
    clean_name,
    llm_names,
    llm_topic_names,
    names_from_settings,
)
from pipeline.schema import OUTLIER_NAME

TOPICS = [
    {
        "keywords": ["graph neural", "message passing", "node classification"],
        "titles": ["Graph attention networks", "How powerful are graph neural networks?"],
        "name": "Graph neural networks, message passing",
    },
    {
        "keywords": ["protein folding", "amino acid"],
        "titles": ["Highly accurate protein structure prediction"],
        "name": "Protein folding, amino acid",
    },
]


class FakeServer:
    """Mimics POST /v1/chat/completions; each request takes the next scripted behaviour."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.script: list[tuple[str, Any]] = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.loads(raw)
                server.requests.append((self.path, dict(self.headers), body))
                kind, value = server.script.pop(0) if server.script else ("name", "Unscripted name")
                if kind == "sleep":
                    server.release.wait(value)
                    return
                if kind == "raw":
                    self._send(*value)
                    return
                self._send(200, json.dumps({"choices": [{"message": {"role": "assistant", "content": value}}]}))

            def _send(self, status: int, payload: str, location: str | None = None) -> None:
                data = payload.encode("utf-8")
                try:
                    self.send_response(status)
                    if location:
                        self.send_header("Location", location)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up
                    pass

            def log_message(self, *args: Any) -> None:  # keep pytest's output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    yield fake
    fake.close()


def answer(content: str) -> tuple[str, str]:
    return ("name", content)


# --- the happy path -----------------------------------------------------------------------


def test_names_come_from_the_server_for_each_topic_in_order(server):
    server.script = [answer("Graph Neural Networks"), answer("Protein structure prediction")]
    names = llm_topic_names(TOPICS, server.base_url, "llama3.2", timeout=5)
    assert names == ["Graph Neural Networks", "Protein structure prediction"]
    assert len(server.requests) == 2


def test_the_request_is_an_openai_chat_completion_with_keywords_and_titles(server):
    server.script = [answer("Graph learning"), answer("Protein folding")]
    llm_topic_names(TOPICS, server.base_url + "/", "qwen2.5:7b", timeout=5)
    path, headers, body = server.requests[0]
    assert path == "/v1/chat/completions"
    assert headers["Content-Type"] == "application/json"
    assert body["model"] == "qwen2.5:7b" and body["temperature"] == 0
    assert [message["role"] for message in body["messages"]] == ["system", "user"]
    prompt = body["messages"][1]["content"]
    for text in TOPICS[0]["keywords"] + TOPICS[0]["titles"]:
        assert text in prompt
    assert "protein" not in prompt  # one topic per request


def test_only_five_titles_are_sent():
    messages = llm_labeller.build_messages(["kw"], [f"Title {i}" for i in range(9)])
    assert "Title 4" in messages[1]["content"] and "Title 5" not in messages[1]["content"]


# --- cleaning the answer ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ('**"Graph Neural Networks"**', "Graph Neural Networks"),
        ("Topic name: protein folding.", "Protein folding"),
        ("<think>The keywords are about qubits, so...</think>\n\nQuantum error correction", "Quantum error correction"),
        ("1. Large language models\n2. Language modelling", "Large language models"),
        ("# Title: `Diffusion models`", "Diffusion models"),
        ("  “Reinforcement learning for robotics”  \n", "Reinforcement learning for robotics"),
        ("**Topic name:** 'Speech recognition'", "Speech recognition"),
        ("Cryptography", "Cryptography"),
        ("Here is a name for this topic:\n\nSemantic segmentation", "Semantic segmentation"),
    ],
)
def test_answers_are_cleaned_into_a_short_name(raw, name):
    assert clean_name(raw) == name


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   \n  ",
        "I think a good name for this topic would be graph learning",  # more than five words
        "!!!",
        "12345",
        "Supercalifragilisticexpialidocious-hyperparameter-optimisation-frameworks",  # over 60 characters
        "<think>only thinking, no answer</think>",
    ],
)
def test_junk_answers_are_no_name(raw):
    assert clean_name(raw) is None


def test_a_junk_answer_raises_naming_the_url(server):
    server.script = [answer("Sure! Here is a name for this topic: graph learning methods")]
    with pytest.raises(LLMLabelError, match=r"127\.0\.0\.1:\d+/v1/chat/completions.*no 1- to 5-word name"):
        llm_topic_names(TOPICS, server.base_url, "m", timeout=5)


def test_a_junk_answer_keeps_the_keyword_name_when_asked(server, caplog):
    server.script = [answer(""), answer("Protein folding")]
    with caplog.at_level("WARNING", logger="pipeline.label.llm"):
        names = llm_topic_names(TOPICS, server.base_url, "m", timeout=5, on_failure="keep")
    assert names == ["Graph neural networks, message passing", "Protein folding"]
    assert "keeping the keyword name 'Graph neural networks, message passing'" in caplog.text
    assert server.base_url in caplog.text


# --- server failures ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "payload", "message"),
    [
        (500, '{"error": "model crashed"}', r"HTTP 500 .*model crashed"),
        (404, '{"error": "model \\"m\\" not found"}', r"HTTP 404"),
        (200, "<html>not json</html>", r"did not answer JSON"),
        (200, '{"object": "chat.completion", "choices": []}', r"without choices\[0\]\.message\.content"),
        (200, '{"choices": [{"message": {"content": null}}]}', r"non-text message content"),
        (200, "[1, 2]", r"did not answer JSON"),
    ],
)
def test_server_errors_raise_naming_the_url(server, status, payload, message):
    server.script = [("raw", (status, payload))]
    with pytest.raises(LLMLabelError, match=message) as caught:
        llm_topic_names(TOPICS, server.base_url, "m", timeout=5)
    assert server.base_url in str(caught.value)


def test_redirects_are_not_followed(server):
    # followed, the POST would go to a closed local port and fail as "cannot reach"
    server.script = [("raw", (307, "", "http://127.0.0.1:9/v1/chat/completions"))]
    with pytest.raises(LLMLabelError, match=r"answered HTTP 307"):
        llm_topic_names(TOPICS, server.base_url, "m", timeout=5)
    server.script = [("raw", (302, "", "http://127.0.0.1:9/v1/chat/completions"))]
    with pytest.raises(LLMLabelError, match=r"answered HTTP 302"):
        llm_topic_names(TOPICS, server.base_url, "m", timeout=5)


def test_server_error_keeps_the_keyword_name_when_asked(server):
    server.script = [("raw", (500, "{}")), answer("Protein folding")]
    names = llm_topic_names(TOPICS, server.base_url, "m", timeout=5, on_failure="keep")
    assert names == ["Graph neural networks, message passing", "Protein folding"]


def test_a_timeout_raises_naming_the_url(server):
    server.script = [("sleep", 5)]
    with pytest.raises(LLMLabelError, match=r"127\.0\.0\.1.*did not answer within 0\.2 s"):
        llm_topic_names(TOPICS, server.base_url, "m", timeout=0.2)


def test_after_a_timeout_the_server_is_not_asked_again_when_keeping_names(server):
    server.script = [("sleep", 5)]
    names = llm_topic_names(TOPICS, server.base_url, "m", timeout=0.2, on_failure="keep")
    assert names == [topic["name"] for topic in TOPICS]
    assert len(server.requests) == 1


def test_a_server_that_is_not_running_raises_naming_the_url():
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(LLMLabelError, match=rf"cannot reach http://127\.0\.0\.1:{port}/v1/chat/completions"):
        llm_topic_names(TOPICS, f"http://127.0.0.1:{port}/v1", "m", timeout=2)


# --- local only ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/v1",
        "https://api.openai.com/v1",
        "http://10.1.2.3:11434/v1",
        "http://192.168.1.5:8000/v1",
        "http://localhost.example.com/v1",
        "ftp://localhost/v1",
        "localhost:11434/v1",
    ],
)
def test_non_local_urls_are_refused_before_anything_is_sent(monkeypatch, url):
    def no_network(*args: Any) -> None:
        raise AssertionError("nothing may be sent")

    monkeypatch.setattr(llm_labeller, "_post", no_network)
    with pytest.raises(LLMLabelError, match="LLM labeller: base url"):
        llm_topic_names(TOPICS, url, "m")


@pytest.mark.parametrize(
    "url", ["http://localhost:11434/v1", "http://LOCALHOST:11434/v1/", "http://127.0.0.2:8080/v1", "http://[::1]:1/v1"]
)
def test_loopback_urls_are_local(url):
    assert check_base_url(url).endswith("/v1/chat/completions")


def test_remote_urls_need_explicit_permission():
    assert (
        check_base_url("https://llm.example.com/v1", allow_remote=True) == "https://llm.example.com/v1/chat/completions"
    )


# --- settings -----------------------------------------------------------------------------


def test_the_labeller_is_off_by_default_and_asks_nothing(monkeypatch):
    monkeypatch.setattr(llm_labeller, "_post", lambda *args: pytest.fail("nothing may be sent"))
    settings = LLMConfig()
    assert settings.enabled is False and settings.on_failure == "error" and settings.allow_remote is False
    assert names_from_settings(TOPICS, settings) is None


def test_settings_are_passed_through(server):
    server.script = [answer("Graph learning"), answer("Protein folding")]
    settings = LLMConfig(enabled=True, base_url=server.base_url, model="phi3", timeout_s=5)
    assert names_from_settings(TOPICS, settings) == ["Graph learning", "Protein folding"]
    assert server.requests[0][2]["model"] == "phi3"


def test_llm_names_rename_the_topics_table_and_keep_the_outlier_row(server):
    import numpy as np
    import pandas as pd

    papers = pd.DataFrame(
        {"paper_id": ["a", "b", "c"], "title": ["GAT", "GIN", "AlphaFold"], "abstract": ["Graph learning.", "", ""]}
    )
    topics = pd.DataFrame(
        {
            "topic": [-1, 0, 1],
            "name": [OUTLIER_NAME, "Graph neural networks", "Protein folding"],
            "slug": ["outliers", "graph-neural-networks", "protein-folding"],
            "keywords": [[], ["graph neural"], ["protein folding"]],
            "representative_ids": [["c"], ["a", "b"], ["c"]],
            "name_coverage": [np.nan, 0.5, 1.0],
            "name_lift": [np.nan, 2.0, 3.0],
        }
    )
    server.script = [answer("Graph learning"), answer("Graph learning")]
    settings = LLMConfig(enabled=True, base_url=server.base_url, model="phi3", timeout_s=5)
    renamed = llm_names(topics, papers, settings)
    assert renamed["name"].tolist() == [OUTLIER_NAME, "Graph learning", "Graph learning (1)"]  # unique
    assert renamed["slug"].tolist() == ["outliers", "graph-learning", "graph-learning-1"]
    prompts = [body["messages"][1]["content"] for _, _, body in server.requests]
    assert len(prompts) == 2 and "- GAT\n- GIN" in prompts[0] and "AlphaFold" in prompts[1]
    assert llm_names(topics, papers, LLMConfig()) is topics  # disabled: asks nothing, changes nothing
    assert renamed["name_coverage"].isna().tolist() == [True, True, True]  # stale without the assignments
    server.script = [answer("Graph learning"), answer("Protein folding")]
    assignments = pd.DataFrame({"paper_id": ["a", "b", "c"], "topic": [0, 0, 1]})
    audited = llm_names(topics, papers, settings, assignments)
    assert audited["name_coverage"].tolist()[1:] == [0.5, 0.0]  # "Graph learning": in 1 of topic 0's 2 papers


def test_keeping_names_needs_the_keyword_names():
    with pytest.raises(ValueError, match="keyword name"):
        llm_topic_names([{"keywords": ["a"], "titles": []}], "http://localhost:1/v1", "m", on_failure="keep")


def test_errors_are_user_facing_one_liners():
    assert issubclass(LLMLabelError, PapertopicsError)


def _grouped_tables():
    import pandas as pd

    papers = pd.DataFrame(
        {
            "paper_id": ["a", "b", "c", "d"],
            "title": ["GAT", "GIN", "AlphaFold", "<b>Enzyme</b> design"],
            "abstract": ["", "", "", ""],
        }
    )
    topics = pd.DataFrame(
        {
            "topic": [-1, 0, 1, 2],
            "name": [OUTLIER_NAME, "Graph neural networks", "Protein folding", "Enzyme design"],
            "size": [1, 5, 3, 2],
            "representative_ids": [["a"], ["a", "b"], ["c"], ["d"]],
            "coarse_topic": [-1, 0, 1, 1],
            "coarse_name": [OUTLIER_NAME, "Graph", "Protein", "Protein"],
        }
    )
    hierarchy = pd.DataFrame(
        {
            "parent_id": [3, 4],
            "parent_name": ["Protein", "Graph"],
            "child_left_id": [1, 0],
            "child_right_id": [2, 3],
            "distance": [0.5, 0.9],
            "topics": [[1, 2], [0, 1, 2]],
        }
    )
    return papers, topics, hierarchy


def test_llm_names_every_level_of_the_tree_once_per_group_of_topics(server):
    from pipeline.label.llm import llm_group_names

    papers, topics, hierarchy = _grouped_tables()
    server.script = [answer("Graph learning"), answer("Protein science"), answer("Machine learning for science")]
    settings = LLMConfig(enabled=True, base_url=server.base_url, model="phi3", timeout_s=5)
    named, tree = llm_group_names(topics, hierarchy, papers, settings)
    prompts = [body["messages"][1]["content"] for _, _, body in server.requests]
    assert len(prompts) == 3  # {0}, {1, 2} (a coarse group and a node: asked once) and the root {0, 1, 2}
    assert all(body["messages"][0]["content"].startswith("You name groups") for _, _, body in server.requests)
    assert prompts[1].startswith("Topics in this group: Protein folding; Enzyme design")  # largest first
    assert "- AlphaFold\n- <b>Enzyme</b> design" in prompts[1] and prompts[1].endswith("Group name:")
    assert named["coarse_name"].tolist() == [OUTLIER_NAME, "Graph learning", "Protein science", "Protein science"]
    assert tree["parent_name"].tolist() == ["Protein science", "Machine learning for science"]
    assert named["name"].tolist() == topics["name"].tolist()  # the topics' own names are llm_names' work
    assert llm_group_names(topics, hierarchy, papers, LLMConfig()) == (topics, hierarchy)  # disabled: unchanged


def test_llm_group_names_keep_the_phrase_names_when_the_server_fails_and_stay_distinct(server):
    from pipeline.label.llm import llm_group_names

    papers, topics, hierarchy = _grouped_tables()
    server.script = [answer("Life science"), answer("Life science"), ("raw", (500, "{}"))]
    settings = LLMConfig(enabled=True, base_url=server.base_url, model="m", timeout_s=5, on_failure="keep")
    named, tree = llm_group_names(topics, hierarchy, papers, settings)
    assert named["coarse_name"].tolist()[1:] == ["Life science", "Life science (1)", "Life science (1)"]
    assert tree["parent_name"].tolist() == ["Life science", "Graph"]  # the root's request failed: kept
    server.script = [("raw", (500, "{}"))]
    with pytest.raises(LLMLabelError, match="HTTP 500"):
        llm_group_names(topics, hierarchy, papers, settings.model_copy(update={"on_failure": "error"}))


@pytest.mark.slow
def test_a_run_with_the_llm_names_its_topics_groups_and_tree(server, tmp_path):
    from pathlib import Path

    import yaml

    from pipeline.config import load_config
    from pipeline.runner import run_pipeline
    from pipeline.stages import STAGE_NAMES
    from pipeline.store import ArtifactStore

    pages = sorted((Path(__file__).resolve().parents[1] / "data" / "samples").glob("*.txt"))
    llm = {"enabled": True, "base_url": server.base_url, "model": "m", "timeout_s": 5}
    raw = {"name": "llm", "output_dir": str(tmp_path / "out"), "inputs": [str(page) for page in pages],
           "label": {"llm": llm}}  # fmt: skip
    (tmp_path / "llm.yaml").write_text(yaml.safe_dump(raw))
    config = load_config(tmp_path / "llm.yaml")
    run_pipeline(config, until="label")
    store = ArtifactStore(config.run_dir, config.cache_dir, STAGE_NAMES)
    topics = store.read_table("label", "topics.parquet")
    hierarchy = store.read_table("label", "hierarchy.parquet")
    systems = [body["messages"][0]["content"] for _, _, body in server.requests]
    n_topics = int((topics["topic"] >= 0).sum())
    assert systems.count(llm_labeller.SYSTEM_PROMPT) == n_topics and llm_labeller.GROUP_PROMPT in systems
    real = topics[topics["topic"] >= 0]
    assert all(name.startswith("Unscripted name") for name in real["name"].tolist() + real["coarse_name"].tolist())
    assert len(hierarchy) and all(name == "Unscripted name" for name in hierarchy["parent_name"])
