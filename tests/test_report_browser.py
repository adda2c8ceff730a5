"""The report in a real browser: Debian's headless Chromium, driven by Playwright, pages from file://.

Two reports are opened: the seed pages run through the whole pipeline, and a synthetic
10,000-paper run built straight from tables (dates, three sources, a coarse level, a
hierarchy, hostile titles). Every page must load with no console error and no request
outside file://; the map must be searchable, filterable and one point per paper.
Screenshots go to test-output/ (gitignored).

``test_map_75k`` (also marked slow) builds a 75,000-paper report and measures the map's
size and time to interactive; the numbers land in test-output/map-75k.json.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import statistics
from collections.abc import Mapping
from pathlib import Path

import pytest
from test_report import XSS_IMG, make_config, make_summary, make_synthetic_tables

from pipeline.files import JoinedBytes
from pipeline.report import build_report

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")

ROOT = Path(__file__).resolve().parents[1]
TEST_OUTPUT = ROOT / "test-output"
SAMPLES = ROOT / "data" / "samples"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PWN = "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">"
MAP_PAGE_LIMIT_BYTES = 25_000_000
MAP_TTI_TARGET_S = 3.0  # the target, held by the page's main-thread busy time (load-independent)
MAP_TTI_GUARD_S = 10.0  # wall time on the shared 2-core machine, where other work takes turns on the CPU


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (tests/setup_browser.sh installs it)")
    return path


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Watched:
    """A page with everything it logged, every request it made and every dialog it opened."""

    def __init__(self, browser, width: int = 1280, height: int = 800) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.blocked: list[str] = []
        # Anything that is not a local file is refused (and recorded), so a test can never reach out.
        self.context.route(lambda url: not url.startswith("file://"), self._refuse)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def _refuse(self, route) -> None:
        self.blocked.append(route.request.url)
        route.abort()

    def open(self, path: Path) -> Watched:
        self.page.goto(path.as_uri())
        if path.name == "map.html":
            self.page.wait_for_selector("#document-map[data-ready='1']", timeout=60_000)
        elif 'class="figure"' in path.read_text(encoding="utf-8"):
            self.page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0")
        return self

    def check_clean(self, what: str) -> None:
        assert self.errors == [], f"{what}: console errors {self.errors}"
        assert self.dialogs == [], f"{what}: dialogs {self.dialogs}"
        outside = [url for url in self.requests if not url.startswith(("file://", "data:", "blob:"))]
        assert outside == [], f"{what}: requests outside file:// {outside}"
        assert self.page.evaluate("document.body.getAttribute('data-pwned')") is None, what

    def close(self) -> None:
        self.context.close()


def write_report(files: Mapping[str, bytes | JoinedBytes], folder: Path) -> Path:
    for relative, content in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(content))
    return folder


def read_papers_csv(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "papers.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory) -> Path:
    """The seed pages through the whole pipeline (parse, embed, cluster, label, report)."""
    from pipeline.config import parse_config
    from pipeline.runner import run_pipeline

    out = tmp_path_factory.mktemp("seed-run")
    config = parse_config({"name": "seed", "output_dir": str(out), "inputs": [str(SAMPLES / "*.txt")]})
    return Path(run_pipeline(config).run_dir)


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory) -> Path:
    """10,000 made-up papers, with a hostile title (a representative) and a hostile topic name."""
    papers, assignments, topics, hierarchy = make_synthetic_tables(10_000, seed=7)
    papers.loc[5, "title"] = XSS_IMG
    topic = int(assignments.loc[5, "topic"]) if int(assignments.loc[5, "topic"]) >= 0 else 0
    assignments.loc[5, "topic"] = topic
    row = topics.index[topics["topic"] == topic][0]
    topics.at[row, "representative_ids"] = [papers.loc[5, "paper_id"], *topics.at[row, "representative_ids"][:2]]
    topics.at[row, "size"] = int((assignments["topic"] == topic).sum())
    topics.loc[topics["topic"] == (topic + 1) % (len(topics) - 1), "name"] = PWN
    metrics = {"n_topics": len(topics) - 1, "outlier_share": 0.05, "largest_topic_share": 0.03, "npmi": 0.08,
               "diversity": 0.81}  # fmt: skip
    files = build_report(papers, assignments, topics, make_summary(name="synthetic-10k"), make_config(),
                         hierarchy=hierarchy, metrics=metrics)  # fmt: skip
    return write_report(files, tmp_path_factory.mktemp("synthetic-10k"))


@pytest.fixture(scope="module", params=["seed", "synthetic"])
def run_dir(request) -> Path:
    return request.getfixturevalue(f"{request.param}_run")


# --------------------------------------------------------------------------- every page


def test_every_page_loads_offline_without_errors(browser, run_dir):
    pages = sorted(run_dir.glob("*.html")) + sorted((run_dir / "topics").glob("*.html"))
    assert len(pages) >= 5
    for path in pages:
        watched = Watched(browser).open(path)
        try:
            watched.check_clean(str(path.relative_to(run_dir)))
            assert any(url.endswith(path.name) for url in watched.requests)
        finally:
            watched.close()


def test_screenshots_of_the_dashboard_and_the_map(browser, run_dir):
    TEST_OUTPUT.mkdir(exist_ok=True)
    for page, name in (("index.html", "dashboard"), ("map.html", "map")):
        watched = Watched(browser, 1280, 800).open(run_dir / page)
        try:
            target = TEST_OUTPUT / f"{run_dir.name.split('-')[0]}-{name}.png"
            watched.page.screenshot(path=str(target))
            assert target.stat().st_size > 10_000  # a drawn page, not a blank one
        finally:
            watched.close()


# --------------------------------------------------------------------------- the map


def test_map_has_one_point_per_paper(browser, run_dir):
    watched = Watched(browser).open(run_dir / "map.html")
    try:
        assert watched.page.evaluate("papertopicsMap.points()") == len(read_papers_csv(run_dir))
        drawn = watched.page.evaluate(
            "document.getElementById('document-map').data.slice(0, -1).reduce((n, t) => n + t.x.length, 0)"
        )
        assert drawn == len(read_papers_csv(run_dir))
    finally:
        watched.close()


def test_typing_a_known_title_highlights_that_paper(browser, run_dir):
    title = read_papers_csv(run_dir)[-1]["title"].lstrip("'")
    watched = Watched(browser).open(run_dir / "map.html")
    try:
        watched.page.fill("#map-search", title)
        watched.page.wait_for_function("document.getElementById('search-count').textContent.includes('match')")
        highlighted = watched.page.evaluate("papertopicsMap.highlighted().map(papertopicsMap.title)")
        assert title in highlighted
        assert all(title.lower() in h.lower() for h in highlighted)
        assert title in watched.page.inner_text("#search-results")
        # The other points are dimmed, the matches drawn on top in a trace of their own.
        opacity = watched.page.evaluate("document.getElementById('document-map').data[1].marker.opacity")
        assert opacity < 0.2
        watched.check_clean("map search")
    finally:
        watched.close()


def zoom_to_first_point(page, trace: int) -> tuple[float, float]:
    """Zoom the map around the first point of `trace` and return its position on the screen.

    Zooming first matters: in a dense map another point could sit under the cursor.
    """
    page.evaluate(
        """(i) => { const t = document.getElementById('document-map').data[i];
          return Plotly.relayout('document-map', {'xaxis.range': [t.x[0] - 40, t.x[0] + 40],
                                                  'yaxis.range': [t.y[0] - 40, t.y[0] + 40]}); }""",
        trace,
    )
    return page.evaluate(
        """(i) => { const gd = document.getElementById('document-map'), fl = gd._fullLayout;
          const box = gd.getBoundingClientRect(), t = gd.data[i];
          return [box.left + fl._size.l + fl.xaxis.l2p(t.x[0]), box.top + fl._size.t + fl.yaxis.l2p(t.y[0])]; }""",
        trace,
    )


def test_hovering_a_point_shows_its_card(browser, synthetic_run):
    watched = Watched(browser).open(synthetic_run / "map.html")
    try:
        page = watched.page
        x, y = zoom_to_first_point(page, 3)
        title = page.evaluate("papertopicsMap.title(papertopicsMap.paperOf(3, 0))")
        page.mouse.move(x - 40, y - 40)
        page.mouse.move(x, y, steps=4)
        page.wait_for_selector("#hover-card:not([hidden])", timeout=5_000)
        lines = page.inner_text("#hover-card").splitlines()
        assert lines[0] == title and lines[-1] == "Click the point to open the paper"
        assert len(lines) == 5  # title, authors, topic · date, the abstract's start, the hint
        assert "2023-" in lines[2] or "2024-" in lines[2]
    finally:
        watched.close()


def test_clicking_a_point_opens_its_paper(browser, synthetic_run):
    watched = Watched(browser).open(synthetic_run / "map.html")
    try:
        page = watched.page
        x, y = zoom_to_first_point(page, 5)
        index = page.evaluate("papertopicsMap.paperOf(5, 0)")
        page.mouse.move(x - 30, y - 30)
        page.mouse.move(x, y, steps=3)
        page.wait_for_selector("#hover-card:not([hidden])", timeout=5_000)  # plotly clicks what it hovers
        with watched.context.expect_page() as popup:
            page.mouse.click(x, y)
        popup.value.wait_for_load_state("domcontentloaded")
        # The new tab asked for the paper's arXiv page (and was refused: tests stay offline).
        papers = {p["title"]: p["url"] for p in read_papers_csv(synthetic_run)}
        assert set(watched.blocked) == {papers[page.evaluate(f"papertopicsMap.title({index})")]}
    finally:
        watched.close()


def test_map_labels_switch_from_groups_to_topics_when_zooming_in(browser, synthetic_run):
    data = json.loads((synthetic_run / "map.html").read_text(encoding="utf-8").split('id="map-data">')[1]
                      .split("</script>")[0])  # fmt: skip
    watched = Watched(browser).open(synthetic_run / "map.html")
    try:
        page = watched.page
        shown = "Array.from(document.querySelectorAll('#document-map .annotation-text')).map(a => a.textContent)"
        assert page.evaluate("papertopicsMap.labelLevel()") == "coarse"
        assert len(page.evaluate(shown)) == len(data["labels"]["coarse"])
        assert all(text.startswith("Group ") for text in page.evaluate(shown))
        page.evaluate("Plotly.relayout('document-map', {'xaxis.range': [4000, 6000], 'yaxis.range': [4000, 6000]})")
        page.wait_for_function("papertopicsMap.labelLevel() === 'fine'")
        fine = page.evaluate(shown)
        assert fine and not any(text.startswith("Group ") for text in fine)
        page.click("#map-reset")  # back to the whole map
        page.wait_for_function("papertopicsMap.labelLevel() === 'coarse'")
        watched.check_clean("map zoom")
    finally:
        watched.close()


def test_map_filters_by_topic_and_by_date(browser, synthetic_run):
    papers = read_papers_csv(synthetic_run)
    watched = Watched(browser).open(synthetic_run / "map.html")
    try:
        page = watched.page
        page.select_option("#map-topic", "3")
        page.wait_for_function("papertopicsMap.points() !== 10000")
        assert page.evaluate("papertopicsMap.points()") == sum(p["topic"] == "3" for p in papers)
        page.select_option("#map-topic", "all")
        page.fill("#map-from", "2024-03-01")
        page.fill("#map-to", "2024-03-31")
        page.dispatch_event("#map-to", "change")
        in_march = sum("2024-03-01" <= p["date"] <= "2024-03-31" for p in papers)
        page.wait_for_function(f"papertopicsMap.points() === {in_march}")
        page.click("#map-reset")
        page.wait_for_function("papertopicsMap.points() === 10000")
        watched.check_clean("map filters")
    finally:
        watched.close()


def _map_data(run_dir: Path) -> dict:
    html = (run_dir / "map.html").read_text(encoding="utf-8")
    return json.loads(html.split('id="map-data">')[1].split("</script>")[0])


def test_brushing_the_date_histogram_filters_the_map(browser, synthetic_run):
    """Dragging across the bars under the map sets the one date filter (and its From/To inputs)."""
    papers = read_papers_csv(synthetic_run)
    bars = _map_data(synthetic_run)["dateHistogram"]
    watched = Watched(browser).open(synthetic_run / "map.html")
    try:
        page = watched.page
        page.wait_for_function("(document.getElementById('date-histogram').data || []).length === 1")
        first, last = len(bars["start"]) // 4, len(bars["start"]) // 2
        # The screen positions of the first bar's left edge and the last bar's right edge.
        x0, x1, y = page.evaluate(
            """([a, b]) => { const h = document.getElementById('date-histogram'), fl = h._fullLayout;
              const box = h.getBoundingClientRect(), px = (ms) => box.left + fl._size.l + fl.xaxis.l2p(ms);
              const middle = box.top + fl._size.t + fl._size.h / 2;
              return [px(Date.parse(a)) + 1, px(Date.parse(b) + 86400000) - 1, middle]; }""",
            [bars["start"][first], bars["end"][last]],
        )
        page.mouse.move(x0, y)
        page.mouse.down()
        page.mouse.move((x0 + x1) / 2, y, steps=5)
        page.mouse.move(x1, y, steps=5)
        page.mouse.up()
        page.wait_for_function("papertopicsMap.dateRange()[0] !== ''")
        start, end = page.evaluate("papertopicsMap.dateRange()")
        # The range snaps to whole bars, within a bar of where the drag began and ended.
        assert start in bars["start"] and end in bars["end"]
        assert abs(bars["start"].index(start) - first) <= 1 and abs(bars["end"].index(end) - last) <= 1
        in_range = sum(start <= p["date"] <= end for p in papers)
        assert 0 < in_range < len(papers) / 2
        page.wait_for_function(f"papertopicsMap.points() === {in_range}")
        assert (page.input_value("#map-from"), page.input_value("#map-to")) == (start, end)  # one filter
        shaded = page.evaluate("document.getElementById('date-histogram').data[0].selectedpoints")
        assert shaded == list(range(bars["start"].index(start), bars["end"].index(end) + 1))
        # Typing dates moves the same filter, and the bars' shading follows.
        page.fill("#map-from", "2024-03-01")
        page.fill("#map-to", "2024-03-31")
        page.dispatch_event("#map-to", "change")
        page.wait_for_function(
            f"papertopicsMap.points() === {sum('2024-03-01' <= p['date'] <= '2024-03-31' for p in papers)}"
        )
        shaded = page.evaluate("document.getElementById('date-histogram').data[0].selectedpoints")
        assert [bars["start"][k][:7] for k in shaded] == ["2024-03"] * len(shaded) and shaded
        page.mouse.click(x1, y)  # a click without a drag shows every date again
        page.wait_for_function(f"papertopicsMap.points() === {len(papers)}")
        assert page.evaluate("papertopicsMap.dateRange()") == ["", ""]
        assert page.input_value("#map-from") == ""
        watched.check_clean("date histogram")
    finally:
        watched.close()


def test_hostile_title_shows_as_text_and_runs_nothing(browser, synthetic_run):
    for relative in ("index.html", "map.html", "topics.html"):
        watched = Watched(browser).open(synthetic_run / relative)
        try:
            page = watched.page
            if relative == "map.html":
                page.fill("#map-search", "<img src=x")
                page.wait_for_function("document.getElementById('search-count').textContent.includes('match')")
                assert XSS_IMG in page.inner_text("#search-results")
                page.wait_for_timeout(300)
            else:
                # The hostile topic name, shown as text (cut short in the charts' tick labels).
                assert "<img src=x onerror=" in page.inner_text("body"), relative
            assert page.evaluate("document.querySelectorAll('img').length") == 0, relative
            watched.check_clean(relative)
        finally:
            watched.close()
    topic_pages = [p for p in (synthetic_run / "topics").glob("*.html") if XSS_IMG in p.read_text("utf-8")
                   or "&lt;img src=x onerror=alert(1)&gt;" in p.read_text("utf-8")]  # fmt: skip
    watched = Watched(browser).open(topic_pages[0])
    try:
        assert XSS_IMG in watched.page.inner_text("body")
        watched.check_clean(topic_pages[0].name)
    finally:
        watched.close()


# --------------------------------------------------------------------------- the dashboard


def test_clicking_a_topic_row_opens_its_page(browser, run_dir):
    watched = Watched(browser).open(run_dir / "index.html")
    try:
        page = watched.page
        row = page.locator("#topic-table tbody tr").first
        href = row.get_attribute("data-href")
        row.locator("td.num").nth(1).click()  # the papers cell: not a link itself
        page.wait_for_url(f"**/{href}")
        assert page.locator("h2.topic-title").count() == 1
        watched.check_clean("row click")
    finally:
        watched.close()


def test_topic_table_sorts_and_filters(browser, synthetic_run):
    watched = Watched(browser).open(synthetic_run / "index.html")
    try:
        page = watched.page
        sizes = "Array.from(document.querySelectorAll('#topic-table tbody tr:not(.outliers)'))" \
                ".map(r => Number(r.cells[2].dataset.value))"  # fmt: skip
        page.click("#topic-table th:nth-child(3) button")
        descending = page.evaluate(sizes)
        assert descending == sorted(descending, reverse=True) and len(set(descending)) > 1
        page.click("#topic-table th:nth-child(3) button")
        assert page.evaluate(sizes) == sorted(descending)
        assert page.locator("#topic-table tbody tr").last.get_attribute("class") == "outliers"
        page.fill("#topic-filter", "group 1 ")
        visible = page.locator("#topic-table tbody tr:visible").count()
        assert 0 < visible < len(descending)
        assert page.inner_text("#topic-count") == f"{visible} of {len(descending)} topics"
        watched.check_clean("table")
    finally:
        watched.close()


# --------------------------------------------------------------------------- 75,000 papers


@pytest.mark.slow
def test_map_75k(browser, tmp_path):
    """A 75,000-paper map stays under 25 MB and becomes interactive in seconds."""
    papers, assignments, topics, hierarchy = make_synthetic_tables(75_000, seed=11)
    files = build_report(papers, assignments, topics, make_summary(name="synthetic-75k"), make_config(),
                         hierarchy=hierarchy)  # fmt: skip
    map_bytes = len(files["map.html"])
    assert map_bytes <= MAP_PAGE_LIMIT_BYTES
    run_dir = write_report({k: v for k, v in files.items() if not k.startswith("topics/")}, tmp_path)
    walls, busy = [], []
    for _ in range(3):
        watched = Watched(browser, 1280, 800)
        # Main-thread busy time is what the page costs; wall time also counts waiting for a shared CPU.
        cdp = watched.context.new_cdp_session(watched.page)
        cdp.send("Performance.enable", {"timeDomain": "threadTicks"})
        try:
            watched.open(run_dir / "map.html")
            walls.append(watched.page.evaluate("papertopicsMap.readyMs") / 1000.0)
            metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
            busy.append(metrics["TaskDuration"])
            assert watched.page.evaluate("papertopicsMap.points()") == 75_000
            watched.page.fill("#map-search", papers.loc[123, "title"])
            watched.page.wait_for_function("document.getElementById('search-count').textContent.includes('match')")
            highlighted = watched.page.evaluate("papertopicsMap.highlighted().map(papertopicsMap.title)")
            assert papers.loc[123, "title"] in highlighted
            watched.check_clean("map 75k")
        finally:
            watched.close()
    TEST_OUTPUT.mkdir(exist_ok=True)
    result = {
        "papers": 75_000,
        "topics": len(topics) - 1,
        "map_html_bytes": map_bytes,
        "time_to_interactive_wall_s": [round(t, 2) for t in walls],
        "main_thread_busy_s": [round(t, 2) for t in busy],
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "target_s": MAP_TTI_TARGET_S,
    }
    (TEST_OUTPUT / "map-75k.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    # On an idle machine the wall time is the main thread's busy time; on the shared one it is more.
    assert statistics.median(busy) <= MAP_TTI_TARGET_S, result
    assert statistics.median(walls) <= MAP_TTI_GUARD_S, result


@pytest.fixture(scope="module")
def capped_run(tmp_path_factory) -> Path:
    """3,000 made-up papers with the map's points cap lowered to 500: a sample drawn, the rest as density."""
    papers, assignments, topics, hierarchy = make_synthetic_tables(3_000, seed=11)
    files = build_report(papers, assignments, topics, make_summary(name="capped-3k"), make_config(),
                         hierarchy=hierarchy, map_points_cap=500)  # fmt: skip
    return write_report(files, tmp_path_factory.mktemp("capped-3k"))


def test_a_capped_map_draws_the_sample_over_a_density_and_search_finds_an_undrawn_paper(browser, capped_run):
    data = _map_data(capped_run)
    drawn_ids = set(data["id"])
    outside = next(row for row in read_papers_csv(capped_run) if row["paper_id"] not in drawn_ids)
    title = outside["title"].lstrip("'")
    watched = Watched(browser).open(capped_run / "map.html")
    try:
        page = watched.page
        assert page.evaluate("papertopicsMap.points()") == 500
        traces = page.evaluate("document.getElementById('document-map').data.map(t => [t.type, (t.x || []).length])")
        assert sum(count for kind, count in traces if kind == "scattergl") == 500  # not all 3,000
        assert traces[-1][0] == "heatmap"  # the density layer
        assert page.evaluate("papertopicsMap.restState()") == "waiting"  # map-papers.js is not loaded up front
        page.fill("#map-search", title)
        page.wait_for_function("document.getElementById('search-count').textContent.includes('match')")
        assert page.evaluate("papertopicsMap.restState()") == "loaded"
        highlighted = page.evaluate("papertopicsMap.highlighted()")
        assert any(i >= 500 for i in highlighted)  # an undrawn paper, drawn as a match
        assert title in page.evaluate("papertopicsMap.highlighted().map(papertopicsMap.title)")
        assert title in page.inner_text("#search-results")
        # Its id finds it too.
        page.fill("#map-search", outside["paper_id"].lstrip("'"))
        page.wait_for_function(f"papertopicsMap.highlighted().map(papertopicsMap.title).includes({json.dumps(title)})")
        watched.check_clean("capped map search")
    finally:
        watched.close()
