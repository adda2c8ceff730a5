"""Config loading: defaults in one place, and one clear line for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.cli import main
from pipeline.config import RunConfig, load_config, parse_config
from pipeline.errors import ConfigError
from pipeline.preflight import preflight

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "papers.csv").write_text("title,abstract\nA,B\n")
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_default_config_loads_and_repeats_the_model_defaults(monkeypatch):
    monkeypatch.chdir(ROOT)
    config = load_config("configs/default.yaml")
    raw = yaml.safe_load((ROOT / "configs/default.yaml").read_text())
    # Every value written in default.yaml is the model's own default: they cannot drift apart.
    defaults = RunConfig(name="x", inputs=["a"]).model_dump()
    for section in ("parse", "embed", "cluster", "label", "report"):
        assert raw[section] == defaults[section], section
    assert set(raw) - {"name", "inputs"} == set(defaults) - {"name", "inputs"}
    assert config.inputs[0].path == "data/samples/*.txt"


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda path: path.name)
def test_every_shipped_config_is_valid_and_explains_its_settings(path):
    raw = yaml.safe_load(path.read_text())
    config = parse_config(raw, source=str(path))  # the corpora it reads may be absent on this machine
    assert config.name == path.stem  # outputs/<name>/ is where a user looks for the run of configs/<name>.yaml
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "- path:", "name:", "inputs:")) and not stripped.endswith(":"):
            assert "#" in stripped, f"{path.name}: setting without a comment: {line!r}"


def test_every_default_setting_has_a_comment():
    for line in (ROOT / "configs/default.yaml").read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and not stripped.endswith(":") and not stripped.startswith("- "):
            assert "#" in stripped, f"setting without a comment: {line!r}"


def test_bare_input_paths_are_accepted():
    config = parse_config({"name": "x", "inputs": ["a.csv", {"path": "b.jsonl", "format": "arxiv-daily"}]})
    assert [spec.path for spec in config.inputs] == ["a.csv", "b.jsonl"]
    assert config.inputs[1].format == "arxiv-daily"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\ninputs: [papers.csv]\ncluster:\n  min_cluster_sise: 5\n", "unknown key 'cluster.min_cluster_sise'"),
        ("name: x\ninputs: [papers.csv]\ncluster:\n  min_cluster_size: many\n", "key 'cluster.min_cluster_size'"),
        ("name: x\ninputs: [papers.csv]\ncluster:\n  n_neighbors: -3\n", "key 'cluster.n_neighbors'"),
        ("name: x\ninputs: [papers.csv]\nembed:\n  backend: word2vec\n", "'sentence-transformers'"),
        ("name: x\n", "missing required key 'inputs'"),
        ("name: ../escape\ninputs: [papers.csv]\n", "key 'name'"),
        ("name: x\ninputs: [papers.csv\n", "not valid YAML"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        (
            "name: x\ninputs: [papers.csv]\nlabel:\n  representation: mmr\n  keyword_min_share: 0.1\n",
            "keyword_min_share applies to representation 'none' only",
        ),
        ("name: x\ninputs: [papers.csv]\nlabel:\n  keyword_min_share: 1.5\n", "key 'label.keyword_min_share'"),
    ],
)
def test_mistakes_give_one_line_naming_file_and_key(tmp_path, monkeypatch, text, expected):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert expected in message
    assert str(path) in message
    assert "\n" not in message


def test_an_input_that_matches_nothing_stops_the_run_in_preflight_before_any_folder_is_made(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, f"name: x\noutput_dir: {tmp_path / 'out'}\ninputs: [nothing-here/*.jsonl]\n")
    config = load_config(path)  # the config itself is valid: whether its inputs exist is the machine's matter
    with pytest.raises(ConfigError) as caught:
        preflight(config, source=str(path))
    assert str(caught.value) == f"{path}: key 'inputs.0.path': 'nothing-here/*.jsonl' matches no file or folder"
    assert not (tmp_path / "out").exists()
    (tmp_path / "nothing-here").mkdir()
    (tmp_path / "nothing-here" / "a.jsonl").write_text("{}\n")
    preflight(config, source=str(path))
    assert (tmp_path / "out" / "x").is_dir()


def test_unknown_key_lists_the_allowed_keys(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, "name: x\ninputs: [papers.csv]\nlabel:\n  keywords: 5\n")
    with pytest.raises(ConfigError, match="allowed here: n_keywords, ngram_max"):
        load_config(path)


def test_cli_prints_one_line_and_exits_2_without_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, "name: x\ninputs: [papers.csv]\nembed:\n  modle: foo\n")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'embed.modle'" in err
    assert "Traceback" not in err


def test_missing_config_file_is_a_clear_error(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
