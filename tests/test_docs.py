"""The docs: the site builds strictly, the configuration reference is the model's, the README stays short."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from pipeline.config import RunConfig
from pipeline.config_doc import default_comments, reference_markdown
from tests.conftest import ROOT

README_MAX_LINES = 150


def _model_keys() -> dict[str, object]:
    """Every setting of the config model by dotted key, with its default (None when required)."""
    keys: dict[str, object] = {}
    defaults = RunConfig(name="x", inputs=["a"]).model_dump(mode="json")
    for section, values in defaults.items():
        if isinstance(values, dict):
            for key, value in values.items():
                if isinstance(value, dict):
                    keys.update({f"{section}.{key}.{inner}": v for inner, v in value.items()})
                else:
                    keys[f"{section}.{key}"] = value
        elif section != "inputs":
            keys[section] = values
    return keys


def test_reference_lists_every_key_with_the_models_default():
    page = reference_markdown()
    for key, default in _model_keys().items():
        row = next((line for line in page.splitlines() if line.startswith(f"| `{key}` |")), None)
        assert row is not None, key
        if key != "name":
            shown = yaml.safe_dump(default, default_flow_style=True).strip().removesuffix("...").strip()
            assert f"| `{shown}` |" in row, (key, row)
    for key in ("inputs.path", "inputs.format", "inputs.year", "inputs.columns.title"):
        assert f"| `{key}` |" in page


def test_reference_explains_every_default_from_the_commented_config():
    comments = default_comments()
    assert set(_model_keys()) - {"name"} <= set(comments)
    page = reference_markdown()
    assert '| `cluster.n_neighbors` | int (>= 2, <= 1000) or "auto" | `15` | UMAP\'s neighbourhood' in page
    assert '| `parse.on_error` | "skip" &#124; "fail" | `skip` |' in page


def test_readme_is_short_and_links_into_the_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_MAX_LINES
    for target in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / target).is_file(), target
    assert "pipeline.run(" in readme and "make run" in readme and "make test" in readme


@pytest.mark.slow
def test_the_docs_build_strictly(tmp_path):
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={"NO_MKDOCS_2_WARNING": "1", **__import__("os").environ},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reference = (site / "configuration" / "index.html").read_text(encoding="utf-8")
    assert "cluster.recluster_guide" in reference and "config-reference" not in reference
    api = (site / "notebook" / "index.html").read_text(encoding="utf-8")
    for name in ("pipeline.api.run", "pipeline.api.open_run", "pipeline.api.Run.update", "pipeline.api.Run.map"):
        assert name in api, name
