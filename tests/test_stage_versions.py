"""A stage's code cannot change without a decision about its cache key.

Each stage's cache key holds its ``code_version``: bumped, every cached result of the stage is
recomputed; forgotten, a run reuses results that the changed code would compute otherwise.
``tests/stage_versions.json`` records, per stage, its code version and a hash of the source of
the modules it declares (``Stage.modules``). When the source changes, this test fails until
the record is updated with

    python tests/test_stage_versions.py              # after bumping code_version in pipeline/stages/<stage>.py
    python tests/test_stage_versions.py --same-output  # the change cannot change any output (a refactor)

The second form is the explicit statement that the old cached results stay valid.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = Path(__file__).with_name("stage_versions.json")


def module_files(name: str) -> list[Path]:
    """The source files of a module, or of every module in a package."""
    module = importlib.import_module(name)
    path = Path(module.__file__ or "")
    if path.name == "__init__.py":
        return sorted(path.parent.rglob("*.py")) + sorted(path.parent.rglob("templates/*"))
    return [path]


def source_hash(modules: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for name in modules:
        for path in module_files(name):
            digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def current() -> dict[str, dict[str, object]]:
    from pipeline.stages import STAGES

    return {stage.name: {"code_version": stage.code_version, "source": source_hash(stage.modules)} for stage in STAGES}


def test_every_stage_declares_the_modules_it_runs():
    from pipeline.stages import STAGES

    for stage in STAGES:
        assert f"pipeline.stages.{stage.name}" in stage.modules
        assert all(module_files(name) for name in stage.modules)


def test_a_stage_whose_code_changed_has_a_recorded_decision():
    recorded = json.loads(RECORD.read_text())
    for name, now in current().items():
        before = recorded.get(name)
        assert before is not None, f"stage {name} has no recorded version: run python tests/test_stage_versions.py"
        assert now["source"] == before["source"] or now["code_version"] != before["code_version"], (
            f"stage {name}'s code changed but its code_version ({now['code_version']}) did not: bump it in "
            f"pipeline/stages/{name}.py if the same inputs may give other outputs, then run "
            "python tests/test_stage_versions.py (or add --same-output for a change that cannot change any output)"
        )
        assert now == before, f"stage {name}: record the new version with python tests/test_stage_versions.py"


def test_the_check_catches_a_change(monkeypatch, tmp_path):
    recorded = current()
    changed = tmp_path / "stage_versions.json"
    changed.write_text(json.dumps({name: {**entry, "source": "0" * 64} for name, entry in recorded.items()}))
    monkeypatch.setattr(sys.modules[__name__], "RECORD", changed)
    try:
        test_a_stage_whose_code_changed_has_a_recorded_decision()
    except AssertionError as exc:
        assert "code changed" in str(exc)
    else:
        raise AssertionError("a changed source with the same code_version passed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--same-output", action="store_true", help="record changed code under the same version")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    recorded = json.loads(RECORD.read_text()) if RECORD.is_file() else {}
    now = current()
    for name, entry in now.items():
        before = recorded.get(name)
        if before and before["source"] != entry["source"] and before["code_version"] == entry["code_version"]:
            if not args.same_output:
                print(f"{name}: code changed, code_version not bumped; bump it or pass --same-output", file=sys.stderr)
                return 1
    RECORD.write_text(json.dumps(now, indent=2, sort_keys=True) + "\n")
    print("recorded " + ", ".join(f"{name} v{entry['code_version']}" for name, entry in now.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
