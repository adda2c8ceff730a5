"""Every benchmark script still imports: a module moved in pipeline/ must not leave a bench broken."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.parametrize("script", sorted(path.name for path in BENCH.glob("*.py")))
def test_bench_script_imports(script, monkeypatch):
    name = f"bench_{script[:-3]}"
    spec = importlib.util.spec_from_file_location(name, BENCH / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)  # top-level code only: every script runs its work under __main__
    if '__name__ == "__main__"' in (BENCH / script).read_text(encoding="utf-8"):
        assert callable(getattr(module, "main", None))
    else:  # a helper the scripts and tests share (bench/octis.py)
        assert not hasattr(module, "main")
