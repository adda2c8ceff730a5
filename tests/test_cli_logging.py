"""Only papertopics' own messages reach the screen; everything logged reaches the run's run.log."""

from __future__ import annotations

import logging

import pytest
import yaml

from pipeline import cli, runner
from pipeline.errors import ConfigError
from tests.conftest import SAMPLES


@pytest.fixture
def first_run(tmp_path, monkeypatch):
    """A config, and a pipeline that logs what a first run logs, then stops with a user error."""

    def run_pipeline(*_args, **_kwargs):
        logging.getLogger("pipeline.runner").info("embedding 64 new texts (0 found in the cache)")
        logging.getLogger("pipeline.runner").debug("papertopics debug detail")
        # onnxruntime's quantiser logs through the root logger, its fusion code through module loggers.
        logging.getLogger().info('Quantization parameters for tensor:"EmbedLayerNormalization_0_output" not specified')
        logging.getLogger("fusion_utils").info("Fused Gelu: 6")
        logging.getLogger("fusion_utils").error("a library error")
        raise ConfigError("stopped here")

    monkeypatch.setattr(runner, "run_pipeline", run_pipeline)
    raw = {"name": "t", "output_dir": str(tmp_path / "out"), "inputs": [str(SAMPLES / "*.txt")]}
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_library_messages_go_to_the_run_log_not_the_screen(tmp_path, capsys, first_run):
    handlers_before = list(logging.getLogger().handlers)
    assert cli.main(["run", str(first_run)]) == cli.EXIT_USER_ERROR
    screen = capsys.readouterr().err
    assert "embedding 64 new texts" in screen and "a library error" in screen and "stopped here" in screen
    assert "Quantization parameters" not in screen and "Fused Gelu" not in screen and "debug detail" not in screen
    log = (tmp_path / "out" / "t" / "run.log").read_text(encoding="utf-8")
    for line in ("embedding 64 new texts", "Quantization parameters", "Fused Gelu", "papertopics debug detail"):
        assert line in log
    assert logging.getLogger().handlers == handlers_before  # main() leaves logging as it found it


def test_verbose_shows_everything_on_the_screen_too(tmp_path, capsys, first_run):
    assert cli.main(["run", "-v", str(first_run)]) == cli.EXIT_USER_ERROR
    screen = capsys.readouterr().err
    assert "Quantization parameters" in screen and "Fused Gelu" in screen and "debug detail" in screen
