"""Shared fixtures. Tests run offline on data the project ships (data/samples) or generates."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
CORPORA = ROOT.parent / "shared" / "corpora"

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["ORT_DISABLE_TELEMETRY"] = "1"  # as the CLI sets it: no usage events to Microsoft
# Built models go to the user's cache folder (~/.cache/papertopics) unless this says otherwise:
# the tests keep theirs beside the repository, shared by every test (and every run of the
# tests), so that the int8 model is built once (about 15 s), not once per test.
TEST_CACHE = ROOT / "outputs" / ".cache"
os.environ["PAPERTOPICS_CACHE"] = str(TEST_CACHE)
# Numba compiles UMAP's code once per process unless it can cache it: in that same cache, as the CLI does.
os.environ.setdefault("NUMBA_CACHE_DIR", str(TEST_CACHE / "numba"))


@pytest.fixture
def seed_pages() -> list[Path]:
    pages = sorted(SAMPLES.glob("*.txt"))
    assert len(pages) == 2, "the two seed pages must be in data/samples"
    return pages


def corpora_path(*parts: str) -> Path:
    """A path inside ../shared/corpora, or a skip with the reason when it is absent."""
    path = CORPORA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared corpora are not on this machine")
    return path


def block_network(patch: pytest.MonkeyPatch) -> None:
    """Any connection attempt or name lookup fails loudly (a run must never use the network)."""

    def refuse(*_args, **_kwargs):
        raise OSError("network access is switched off in the tests")

    for name in ("connect", "connect_ex"):
        patch.setattr(socket.socket, name, refuse)
    patch.setattr(socket, "getaddrinfo", refuse)
    patch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def network_off(monkeypatch):
    """Use as autouse in a test module: its tests run with the network off."""
    block_network(monkeypatch)
