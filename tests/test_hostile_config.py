"""Config edges a hostile file can reach (issue 28, item 7): odd keys, over-long integers, the seed's bound.

Each is one line naming the key as written (escaped), never another key and never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.config import SEED_MAX, load_config, parse_config
from pipeline.errors import ConfigError


def write_config(tmp_path: Path, text: str) -> Path:
    (tmp_path / "papers.csv").write_text("title,abstract\nA paper title,An abstract of the paper\n")
    path = tmp_path / "run.yaml"
    path.write_text(f"name: x\ninputs: ['{tmp_path}/papers.csv']\n{text}", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"bad\\nkey": 1\n', r"unknown key 'bad\nkey' (allowed here: name, inputs"),
        ('"ok\\e[31mkey": 1\n', r"unknown key 'ok\x1b[31mkey' (allowed here: name, inputs"),
        ('embed:\n  "a\\nb": 1\n', r"unknown key 'embed.a\nb' (allowed here: backend, model"),
        # A key that is no Python name, or one that is also a pydantic union tag, is still that key.
        ("embed:\n  max-tokens: 64\n", "unknown key 'embed.max-tokens' (allowed here: backend, model"),
        ("embed:\n  int: 64\n", "unknown key 'embed.int' (allowed here: backend, model"),
    ],
)
def test_an_unknown_key_is_named_as_written_and_escaped(tmp_path, text, expected):
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, text))
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message and "\x1b" not in message


def test_the_printed_line_names_the_escaped_key(tmp_path, capsys):
    assert main(["run", str(write_config(tmp_path, '"bad\\nkey": 1\n'))]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and r"unknown key 'bad\nkey'" in lines[0]


@pytest.mark.parametrize("digits", [4_301, 50_000])
def test_an_integer_of_too_many_digits_is_one_line(tmp_path, capsys, digits):
    config = write_config(tmp_path, f"seed: {'1' * digits}\n")
    with pytest.raises(ConfigError, match=rf"line 3: an integer of {digits:,} characters, more than the 4,300 digits"):
        load_config(config)
    assert main(["run", str(config)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len([line for line in err.splitlines() if line.strip()]) == 1


def test_an_over_long_integer_given_in_code_is_described_not_printed():
    with pytest.raises(ConfigError) as caught:
        parse_config({"name": "x", "inputs": ["a.csv"], "cluster": {"n_neighbors": 10**5000}})
    message = str(caught.value)
    assert message.startswith("<config>: key 'cluster.n_neighbors': should be less than or equal to 1000")
    assert f"(got an integer of more than {sys.get_int_max_str_digits():,} digits)" in message


def test_the_seed_takes_exactly_what_numpy_and_umap_take():
    from sklearn.utils import check_random_state  # what UMAP turns its random_state into a generator with

    assert SEED_MAX == 2**32 - 1
    check_random_state(SEED_MAX)
    np.random.RandomState(SEED_MAX)
    for bad in (SEED_MAX + 1, -1):
        with pytest.raises(ValueError):
            np.random.RandomState(bad)
    assert parse_config({"name": "x", "inputs": ["a.csv"], "seed": SEED_MAX}).seed == SEED_MAX
    assert parse_config({"name": "x", "inputs": ["a.csv"], "seed": 0}).seed == 0
    with pytest.raises(ConfigError, match=r"key 'seed': should be less than or equal to 4294967295 \(got 4294967296\)"):
        parse_config({"name": "x", "inputs": ["a.csv"], "seed": SEED_MAX + 1})
