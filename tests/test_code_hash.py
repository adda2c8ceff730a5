"""A stage's cache key follows the code it runs: its import closure's source, computed, not listed."""

from __future__ import annotations

import ast
import shutil
from datetime import date
from pathlib import Path

import pytest

from pipeline import code_hash as hashing
from pipeline.code_hash import closure, code_hash, import_statements, imported_names, module_files
from pipeline.stages import STAGES

ROOT = Path(__file__).resolve().parents[1]


def ast_imported_names(module: str, source: str, is_package: bool) -> set[str]:
    """The same reading as ``imported_names``, done by Python's parser: the reference."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return names


def test_the_import_reading_agrees_with_pythons_parser_on_every_module():
    modules = module_files()
    assert {"pipeline", "pipeline.stages.label", "pipeline.report.pages", "pipeline.code_hash"} <= set(modules)
    for module, path in modules.items():
        source = path.read_text(encoding="utf-8")
        package = path.name == "__init__.py"
        assert imported_names(module, source, package) == ast_imported_names(module, source, package), module


def test_no_module_imports_another_by_a_string_the_closure_cannot_see():
    for module, path in module_files().items():
        calls = [
            node
            for node in ast.walk(ast.parse(path.read_bytes()))
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(("import_module", "__import__"))
        ]
        assert not calls, f"{module} imports by name: its code hash would miss that module"


SAMPLE = '''"""A docstring that mentions code:
from pipeline.report import pages
import pipeline.runner
"""
from __future__ import annotations

import os, pipeline.schema as schema  # two at once
from typing import TYPE_CHECKING

from pipeline.label import (
    geometry,  # a submodule
    stop_words as words,
)
from . import files
from ..feed.update import drifted

if TYPE_CHECKING:
    from pipeline.engine import Engine

    import pipeline.store
else:
    from pipeline import memo


def later():
    from pipeline.terms import tokenize_texts  # a lazy import still runs when the function does

    text = """
    import pipeline.cli
    """
    return tokenize_texts, text
'''


def test_the_import_reading_covers_each_form_and_leaves_out_what_never_runs():
    module = "pipeline.stages.sample"
    names = imported_names(module, SAMPLE, is_package=False)
    assert names == ast_imported_names(module, SAMPLE, is_package=False)
    assert {"os", "pipeline.schema", "pipeline.label.geometry", "pipeline.label.stop_words", "pipeline.stages.files",
            "pipeline.feed.update.drifted", "pipeline.memo", "pipeline.terms"} <= names  # fmt: skip
    for never in ("pipeline.report", "pipeline.runner", "pipeline.engine", "pipeline.store", "pipeline.cli"):
        assert never not in names
    assert ("", "", ["os", "pipeline.schema"]) in import_statements(SAMPLE)


def test_each_stage_names_the_module_that_declares_it_and_runs_it():
    for stage in STAGES:
        assert stage.module == stage.run.__module__ == f"pipeline.stages.{stage.name}"


def test_a_stage_closure_holds_what_it_runs_and_not_the_other_stages():
    embed = closure("pipeline.stages.embed")
    # The gaps of the hand-written lists: embed vectors depend on schema.paper_texts,
    # the cluster stage on label.geometry.
    assert "pipeline.schema" in embed
    assert "pipeline.label.geometry" in closure("pipeline.stages.cluster")
    # The stage list's package runs before any stage module, but it runs no other stage's code.
    assert "pipeline.stages" in embed
    assert not {"pipeline.stages.report", "pipeline.stages.label", "pipeline.report", "pipeline.runner"} & set(embed)
    assert "pipeline.label" in closure("pipeline.stages.cluster")  # the parent package of label.geometry


@pytest.fixture
def two_trees(tmp_path):
    """Two copies of the package under two roots, and a function hashing each stage in one of them."""
    roots = []
    for name in ("a", "b"):
        root = tmp_path / name
        shutil.copytree(ROOT / "pipeline", root / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
        roots.append(root)

    def stage_hashes(root: Path) -> dict[str, str]:
        for cached in (hashing.module_files, hashing.closure, hashing.code_hash, hashing._module_imports):
            cached.cache_clear()  # the tree changed under the per-process cache
        return {stage.name: code_hash(stage.module, root) for stage in STAGES}

    return roots, stage_hashes


@pytest.mark.parametrize(
    ("relative", "moved"),
    [
        ("pipeline/report/pages.py", {"report"}),
        ("pipeline/report/templates/map.html", {"report"}),  # a package's data files are its code
        ("pipeline/schema.py", {"parse", "embed", "cluster", "label", "report"}),
        ("pipeline/label/geometry.py", {"cluster", "label"}),
        ("pipeline/parse/units.py", {"parse"}),
        ("pipeline/feed/update.py", {"cluster"}),
        ("pipeline/cluster/neighbours.py", {"cluster"}),  # the leaf the sampled fit and the update share
        ("pipeline/cluster/__init__.py", {"cluster"}),  # a package runs before its modules
        ("pipeline/terms.py", {"label", "report"}),
        ("pipeline/stages/report.py", {"report"}),
        ("pipeline/store.py", {"parse", "embed", "cluster", "label", "report"}),
        ("pipeline/runner.py", set()),
        ("pipeline/cli.py", set()),
    ],
)
def test_one_changed_byte_moves_the_keys_of_the_stages_that_run_it_and_no_other(two_trees, relative, moved):
    (same, changed), stage_hashes = two_trees
    path = changed / relative
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one byte
    path.write_bytes(bytes(data))
    before, after = stage_hashes(same), stage_hashes(changed)
    assert {name for name in before if before[name] != after[name]} == moved
    stage_hashes(ROOT)  # leave the per-process cache on the real tree


def test_the_same_source_under_another_root_hashes_the_same(two_trees):
    (first, second), stage_hashes = two_trees
    assert stage_hashes(first) == stage_hashes(second) == stage_hashes(ROOT)
    assert len(set(stage_hashes(ROOT).values())) == len(STAGES)


def test_the_runner_keys_each_stage_by_the_hash_of_its_own_module(tmp_path, monkeypatch):
    from pipeline import runner
    from pipeline.config import parse_config
    from pipeline.stage import StageContext
    from pipeline.stage_store import StageStore
    from pipeline.stages import STAGE_NAMES
    from pipeline.stages.parse import STAGE
    from pipeline.store import ArtifactStore

    config = parse_config({"name": "t", "output_dir": str(tmp_path), "inputs": ["data/samples/*.txt"]})
    store = ArtifactStore(config.run_dir, config.cache_dir, STAGE_NAMES)
    context = StageContext(config, StageStore(store, "parse", (), ()), [], date(2026, 2, 1), engine=None)  # type: ignore[arg-type]
    asked = []
    monkeypatch.setattr(runner, "code_hash", lambda module: asked.append(module) or "one")
    first = runner._stage_key(STAGE, store, context)
    monkeypatch.setattr(runner, "code_hash", lambda module: "two")
    assert asked == ["pipeline.stages.parse"]
    assert runner._stage_key(STAGE, store, context) != first


def test_sub_results_kept_between_runs_are_keyed_by_the_code_that_computes_them(monkeypatch):
    from pipeline.config import ParseConfig, parse_config
    from pipeline.label import cache
    from pipeline.parse import units
    from pipeline.sources import collect_sources

    config = parse_config({"name": "t", "inputs": [str(ROOT / "data" / "samples" / "*.txt")]})
    unit = collect_sources(config.inputs)[:1]
    real = hashing.code_hash

    def keys() -> dict[str, str]:
        return {
            "tokens": cache.tokens_namespace(),
            "term counts": cache.term_counts_key("texts", config),
            "label state": cache.counts_settings(config),
            "unit reads": units._unit_key(unit, unit[0].path, ParseConfig()),
        }

    before = keys()
    for changed, moved in [
        ("pipeline.report", set()),
        ("pipeline.terms", {"tokens"}),
        ("pipeline.token_rows", {"tokens"}),
        ("pipeline.label.cache", {"term counts", "label state"}),
        ("pipeline.parse.units", {"unit reads"}),
    ]:

        def fake(module: str, root: Path = hashing.SOURCE_ROOT, changed: str = changed) -> str:
            return "changed" if module == changed else real(module, root)

        monkeypatch.setattr(hashing, "code_hash", fake)
        monkeypatch.setattr(units, "code_hash", fake)
        after = keys()
        assert {name for name in before if before[name] != after[name]} == moved, changed
    # What those hashes cover: the label cache's closure holds the tokenizer and the code it memoises.
    assert {"pipeline.terms", "pipeline.token_rows", "pipeline.label.keywords", "pipeline.label.phrases",
            "pipeline.label.class_counts", "pipeline.memo"} <= set(closure("pipeline.label.cache"))  # fmt: skip
    assert {"pipeline.parse.hf_pages", "pipeline.parse.tables", "pipeline.parse.arxiv"} <= set(
        closure("pipeline.parse.units")
    )
