"""Checks that could otherwise fail only late, run once before any work.

``load_config`` checks the config on its own (keys, types, ranges); ``preflight`` checks it
against the machine: that each input matches a file or folder, that the run folder and the
cache folder can be written, and that an enabled LLM labeller points at a server on this
machine. Without it a read-only cache folder was reported after embedding and clustering,
and a remote LLM url after the whole run but the label stage.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pipeline.config import RunConfig
from pipeline.errors import ConfigError, shorten
from pipeline.files import TEMP_SUFFIX, output_error
from pipeline.label.llm import LLMLabelError, check_base_url
from pipeline.sources import first_match


def preflight(config: RunConfig, source: str = "<config>") -> None:
    """Raise the project's one-line error for the first problem a run would meet late.

    ``source`` names the config file in messages. Creates the run and cache folders when
    they are missing (the run would create them first thing anyway).

    Raises:
        ConfigError: an input path or pattern matches no file or folder (checked first, before
            any folder is created).
        OutputError: the run folder or the cache folder cannot be created or written.
        ConfigError: ``label.llm.enabled`` with a base url that is not a local http(s) url
            (unless ``label.llm.allow_remote``).
    """
    check_inputs(config, source)
    if config.label.llm.enabled:
        _check_llm_url(config, source)
    from pipeline.embed.models import model_cache_dir

    for folder in (config.run_dir, config.cache_dir, model_cache_dir(config.embed)):
        _check_writable(folder)


def check_inputs(config: RunConfig, source: str) -> RunConfig:
    """``config`` if each of its inputs matches a file or folder, else ConfigError naming the first that does not."""
    for index, spec in enumerate(config.inputs):
        if first_match(spec.path) is None:
            raise ConfigError(f"{source}: key 'inputs.{index}.path': '{shorten(spec.path)}' matches no file or folder")
    return config


def _check_llm_url(config: RunConfig, source: str) -> None:
    llm = config.label.llm
    try:
        check_base_url(llm.base_url, llm.allow_remote)
    except LLMLabelError as exc:
        message = str(exc).replace(repr(llm.base_url), shorten(repr(llm.base_url)))
        raise ConfigError(f"{source}: key 'label.llm.base_url': {message}") from None


def _check_writable(folder: Path) -> None:
    """Create ``folder`` if needed and write and delete a hidden file in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # A real write: os.access says yes to root on a read-only mount. The name is a
        # temporary file's, which the next run sweeps should this process die right here.
        descriptor, probe = tempfile.mkstemp(prefix=".preflight.", suffix=TEMP_SUFFIX, dir=folder)
        os.close(descriptor)
        os.unlink(probe)
    except OSError as exc:
        raise output_error(folder, exc) from None
