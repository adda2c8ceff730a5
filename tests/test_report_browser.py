"""Report pages opened in headless Chromium from file://, with the network switched off."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from test_report import make_config, make_summary, make_tables

from pipeline.report import build_report

pytestmark = pytest.mark.browser

PWN = "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">"


def _dump_dom(page: Path) -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (tests/setup_browser.sh installs it)")
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--proxy-server=127.0.0.1:9", "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return result.stdout


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    papers, assignments, topics = make_tables()
    papers.loc[4, "title"] = PWN
    topics.loc[topics["topic"] == 2, "name"] = PWN
    out = tmp_path_factory.mktemp("report")
    for relative, content in build_report(papers, assignments, topics, make_summary(), make_config()).items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return out


@pytest.mark.parametrize("page", ["map.html", "topics.html"])
def test_figures_render_offline_from_the_local_plotly(report_dir, page):
    dom = _dump_dom(report_dir / page)
    assert "main-svg" in dom  # plotly.js loaded from assets/ and drew the figure
    assert 'data-pwned="1"' not in dom


def test_map_draws_escaped_topic_names_as_text(report_dir):
    dom = _dump_dom(report_dir / "map.html")
    assert "Graph neural networks" in dom  # annotation and legend text
    assert "&lt;img src=x onerror=" in dom  # the hostile topic name, shown as text
    assert 'data-pwned="1"' not in dom


def test_index_shows_hostile_titles_as_text(report_dir):
    dom = _dump_dom(report_dir / "index.html")
    assert "&lt;img src=x onerror=" in dom and "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert 'data-pwned="1"' not in dom
