"""Topics over time: papers per topic and period, each topic's share, and rising topics.

Only ISO dates count ("YYYY-MM-DD", or "YYYY-MM" when only the month is known); a page's
raw date such as "Aug 12" has no year and is left out of every time chart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.schema import OUTLIER_TOPIC

# Periods short enough to show change, long enough to hold several papers each.
_DAY_SPAN_MAX = 21  # days: up to three weeks of papers are shown per day
_WEEK_SPAN_MAX = 120  # days: up to about four months per week, then per month
_MONTH_SPAN_MAX = 8 * 366  # days: beyond eight years a monthly chart is noise, so per year
RISING_FACTOR = 1.5
RISING_MIN_PAPERS = 3
PERIOD_WORDS = {"day": "day", "week": "week (starting Monday)", "month": "month", "year": "year"}


def iso_dates(dates: pd.Series) -> tuple[pd.Series, bool]:
    """Each date as a Timestamp (NaT unless ISO and valid), and whether any valid one is month-only.

    Column-wise (pandas' string methods and ``to_datetime``): 75,000 dates in 0.05 s, not 0.5 s.
    """
    text = pd.Series(
        [value.strip() if isinstance(value, str) else "" for value in dates.tolist()], index=dates.index, dtype=object
    )
    full = text.str.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
    month = text.str.fullmatch(r"[0-9]{4}-[0-9]{2}")
    # Invalid dates (2024-02-30, month 13) become NaT instead of an error.
    stamps = pd.to_datetime(text.where(full), format="%Y-%m-%d", errors="coerce")
    month_stamps = pd.to_datetime(text.where(month), format="%Y-%m", errors="coerce")
    stamps = stamps.where(full, month_stamps)
    return stamps, bool(month_stamps.notna().any())


def choose_period(stamps: pd.Series, month_only: bool) -> str:
    """The period for the span of ``stamps``: day, week, month or year (month at least for month-only dates)."""
    span = (stamps.max() - stamps.min()).days if stamps.notna().any() else 0
    if span > _MONTH_SPAN_MAX:
        return "year"
    if month_only or span > _WEEK_SPAN_MAX:
        return "month"
    return "week" if span > _DAY_SPAN_MAX else "day"


def _period_labels(stamps: pd.Series, period: str) -> tuple[pd.Series, list[str]]:
    """The label of each stamp's period, and every period label from first to last (gaps included)."""
    freq = {"day": "D", "week": "W-SUN", "month": "M", "year": "Y"}[period]
    periods = stamps.dt.to_period(freq)
    full = pd.period_range(periods.min(), periods.max(), freq=freq)

    def label(p: pd.Period) -> str:
        if period == "week":
            return p.start_time.strftime("%Y-%m-%d")  # the Monday that starts the week
        return str(p)

    return periods.map(label), [label(p) for p in full]


@dataclass(frozen=True)
class Timeline:
    """Papers per topic and period for the papers with an ISO date.

    ``counts`` is a DataFrame indexed by topic (int, every topic of the run, outliers
    included) with one int column per period label, oldest first; ``totals`` the
    dated papers per period (outliers included): shares are counts / totals.
    """

    period: str
    periods: list[str]
    counts: pd.DataFrame
    totals: pd.Series
    n_dated: int
    n_papers: int

    def shares(self) -> pd.DataFrame:
        """Each topic's share (0..1) of the dated papers per period; 0 where a period has none."""
        totals = self.totals.replace(0, np.nan)
        return self.counts.div(totals, axis=1).fillna(0.0)

    @property
    def recent_periods(self) -> list[str]:
        """The last quarter of the periods (at least one): the window "rising" looks at."""
        n_recent = max(1, len(self.periods) // 4)
        return self.periods[-n_recent:]


def pair_counts(rows: pd.Series, columns: pd.Series) -> pd.DataFrame:
    """``pd.crosstab(rows, columns)``: how often each (row, column) pair occurs, pairs with a missing value left out.

    Counted by one ``bincount``: crosstab counts group by group in Python (1.3 s at 75,000 papers).
    Rows and columns are the values that occur, sorted, named as the two series.
    """
    keep = (rows.notna() & columns.notna()).to_numpy()
    row_codes, row_values = pd.factorize(rows[keep], sort=True)
    column_codes, column_values = pd.factorize(columns[keep], sort=True)
    n_rows, n_columns = len(row_values), len(column_values)
    counts = np.bincount(row_codes * n_columns + column_codes, minlength=n_rows * n_columns)
    return pd.DataFrame(
        counts.reshape(n_rows, n_columns).astype(np.int64),
        index=pd.Index(row_values, name=rows.name),
        columns=pd.Index(column_values, name=columns.name),
    )


def build_timeline(dates: pd.Series, topic_of: pd.Series, topic_ids: list[int]) -> Timeline | None:
    """Counts per topic and period, or None when fewer than two periods hold dated papers.

    Args:
        dates: the papers' date strings.
        topic_of: each paper's topic (int), aligned with ``dates``.
        topic_ids: every topic of the run, so that topics without dated papers get a row.
    """
    stamps, month_only = iso_dates(dates)
    dated = stamps.notna()
    if dated.sum() == 0:
        return None
    period = choose_period(stamps[dated], month_only)
    labels, periods = _period_labels(stamps[dated], period)
    if len(periods) < 2:
        return None
    counts = pair_counts(topic_of[dated].astype(int), labels).reindex(
        index=sorted(topic_ids), columns=periods, fill_value=0
    )
    counts = counts.astype(int)
    counts.index.name, counts.columns.name = "topic", "period"
    totals = labels.value_counts().reindex(periods, fill_value=0).astype(int)
    return Timeline(period, periods, counts, totals, int(dated.sum()), len(dates))


@dataclass(frozen=True)
class Trend:
    """A topic's share of the dated papers in the recent window and before it."""

    recent_share: float
    earlier_share: float
    recent_papers: int
    rising: bool

    @property
    def change(self) -> float:
        """Recent minus earlier share, in percentage points (sorts the trend column)."""
        return 100.0 * (self.recent_share - self.earlier_share)


def trends(timeline: Timeline) -> dict[int, Trend]:
    """The trend of every real topic.

    A topic is *rising* when its share of the papers in the most recent quarter of the
    periods (at least one period) is at least ``RISING_FACTOR`` times its share in the
    periods before, with at least ``RISING_MIN_PAPERS`` papers in that recent window.
    """
    recent = timeline.recent_periods
    earlier = [p for p in timeline.periods if p not in recent]
    recent_total = int(timeline.totals[recent].sum())
    earlier_total = int(timeline.totals[earlier].sum())
    result = {}
    for topic, row in timeline.counts.iterrows():
        if topic == OUTLIER_TOPIC:
            continue
        recent_papers = int(row[recent].sum())
        recent_share = recent_papers / recent_total if recent_total else 0.0
        earlier_share = int(row[earlier].sum()) / earlier_total if earlier_total else 0.0
        rising = (
            recent_papers >= RISING_MIN_PAPERS
            and earlier_total > 0
            and recent_share >= RISING_FACTOR * earlier_share
            and recent_share > earlier_share
        )
        result[int(topic)] = Trend(recent_share, earlier_share, recent_papers, rising)
    return result


def rising_rule(timeline: Timeline) -> str:
    """One sentence saying what "rising" means for this run, with its actual window."""
    recent = timeline.recent_periods
    window = recent[0] if len(recent) == 1 else f"{recent[0]} to {recent[-1]}"
    return (
        f"Rising: a topic whose share of the dated papers in the latest {len(recent)} of "
        f"{len(timeline.periods)} periods (per {PERIOD_WORDS[timeline.period]}: {window}) is at least "
        f"{RISING_FACTOR:g} times its share in the periods before, with at least {RISING_MIN_PAPERS} papers "
        "in that window."
    )


def sparkline(values: list[float], width: int = 96, height: int = 22) -> str:
    """SVG polyline points ("x,y x,y ...") for ``values`` scaled into width × height, 1 px margin."""
    if not values:
        return ""
    top = max(values) or 1.0
    step = (width - 2) / max(len(values) - 1, 1)
    return " ".join(
        f"{1 + i * step:.1f},{height - 1 - (height - 2) * value / top:.1f}" for i, value in enumerate(values)
    )


def bar_chart(labels: list[str], values: list[int], width: int = 640, height: int = 120) -> list[dict[str, object]]:
    """SVG rectangles (x, y, w, h, label, value) for a bar per value in a width × height box."""
    if not values:
        return []
    top = max(values) or 1
    step = width / len(values)
    gap = min(2.0, step * 0.2)
    return [
        {
            "x": f"{i * step + gap / 2:.1f}",
            "w": f"{max(step - gap, 0.5):.1f}",
            "y": f"{height - height * value / top:.1f}",
            "h": f"{height * value / top:.1f}",
            "label": label,
            "value": value,
        }
        for i, (label, value) in enumerate(zip(labels, values, strict=True))
    ]
