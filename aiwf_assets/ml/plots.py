"""Plots for the Dagster UI, embedded in markdown metadata as data URIs.

The UI renders a markdown value inline only when it is shorter than 1000 characters;
longer ones hide behind "[Show Markdown]". Line and bar charts therefore go out as a
compact SVG drawn from the figure's own data (a few points per line, which fits);
figures that cannot be that small (long bar lists) as a PNG. The segment profile's heat
map is a markdown table of coloured squares, which fits.
"""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

INLINE_LIMIT = 1000  # the UI's limit for showing a markdown value inline
SVG_WIDTH, SVG_HEIGHT, SVG_MARGIN = 220, 110, 24
POINTS_TRIED = (24, 16, 12, 8, 6)


def as_markdown(fig: Figure, title: str) -> str:
    """The figure as markdown the UI shows inline when possible (SVG), else as a PNG."""
    for points in POINTS_TRIED:
        svg = svg_chart(fig.axes[0], points) if len(fig.axes) == 1 else None
        if svg is None:
            break
        encoded = base64.b64encode(svg.encode()).decode()
        markdown = f"**{title}**\n\n![{title}](data:image/svg+xml;base64,{encoded})"
        if len(markdown) < INLINE_LIMIT:
            plt.close(fig)
            return markdown
    return png_markdown(fig, title)


def svg_chart(ax: Axes, points: int) -> str | None:
    """A minimal SVG of the axes' lines (at most `points` each) or vertical bars, with a
    legend and the y range; None for anything else (images, horizontal bars)."""
    lines = [line for line in ax.get_lines() if len(line.get_xdata(orig=False))]
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    if ax.images or (lines and bars) or not (lines or bars):
        return None
    if bars and not all(bar.get_y() == 0 for bar in bars):
        return None  # horizontal bars (long labels) do not fit
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    width, height = SVG_WIDTH - SVG_MARGIN, SVG_HEIGHT - SVG_MARGIN

    def at(x: float, y: float) -> str:
        left = (x - x0) / (x1 - x0) * width + SVG_MARGIN
        return f"{left:.0f},{(y1 - y) / (y1 - y0) * height:.0f}"

    shapes = []
    labels = []
    for line in lines:
        xs, ys = (np.asarray(v, dtype=float) for v in line.get_data(orig=False))
        keep = np.unique(np.linspace(0, len(xs) - 1, min(points, len(xs))).round().astype(int))
        colour = to_hex(line.get_color())
        path = " ".join(at(xs[i], ys[i]) for i in keep)
        shapes.append(f"<polyline points='{path}' fill='none' stroke='{colour}'/>")
        if not line.get_label().startswith("_"):
            labels.append((line.get_label(), colour))
    for bar, tick in zip(bars, ax.get_xticklabels(), strict=False):
        left = at(bar.get_x(), bar.get_height()).split(",")
        right = at(bar.get_x() + bar.get_width(), 0).split(",")
        shapes.append(
            f"<rect x='{left[0]}' y='{left[1]}' width='{int(right[0]) - int(left[0])}' "
            f"height='{int(right[1]) - int(left[1])}' fill='{to_hex(bar.get_facecolor())}'/>"
        )
        shapes.append(
            f"<text x='{int(left[0]) + 2}' y='{int(right[1]) - 3}' fill='white'>"
            f"{_escape(tick.get_text())} {bar.get_height():.2f}</text>"
        )
    legend = "".join(
        f"<text x='{SVG_MARGIN + 4}' y='{10 * (i + 1)}' fill='{c}'>{_escape(t)}</text>"
        for i, (t, c) in enumerate(labels)
    )
    axes = (
        f"<path d='M{SVG_MARGIN} 0V{height}H{SVG_WIDTH}' fill='none' stroke='#999'/>"
        f"<text y='8'>{y1:.3g}</text><text y='{height}'>{y0:.3g}</text>"
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {SVG_WIDTH} {SVG_HEIGHT}' "
        f"width='330' font-size='8'>{axes}{''.join(shapes)}{legend}</svg>"
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")


def png_markdown(fig: Figure, title: str) -> str:
    """Render a figure to a small PNG and embed it in markdown."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=72, bbox_inches="tight")
    plt.close(fig)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f"**{title}**\n\n![{title}](data:image/png;base64,{encoded})"


def roc_plot(labels: np.ndarray, scores: Mapping[str, np.ndarray]) -> str:
    fig, ax = plt.subplots(figsize=(4, 4))
    for name, score in scores.items():
        fpr, tpr, _ = roc_curve(labels, score)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="false positive rate", ylabel="true positive rate")
    ax.legend(loc="lower right")
    return as_markdown(fig, "ROC on the holdout")


def calibration_plot(labels: np.ndarray, probabilities: np.ndarray) -> str:
    observed, predicted = calibration_curve(labels, probabilities, n_bins=10, strategy="quantile")
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(predicted, observed, marker="o", label="model")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    ax.set(xlabel="predicted churn probability", ylabel="observed churn rate")
    ax.legend(loc="upper left")
    return as_markdown(fig, "Calibration on the holdout")


def importance_plot(names: Sequence[str], importances: np.ndarray, title: str) -> str:
    order = np.argsort(importances)[-15:]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.barh([names[i] for i in order], importances[order])
    ax.set(xlabel="permutation importance")
    return as_markdown(fig, title)


def forecast_plot(daily: pl.DataFrame) -> str:
    """`daily`: date, actual, forecast, seasonal_naive summed over products."""
    fig, ax = plt.subplots(figsize=(6, 3))
    dates = daily["date"].to_list()
    ax.plot(dates, daily["actual"], label="actual", color="black")
    ax.plot(dates, daily["forecast"], label="model")
    ax.plot(dates, daily["seasonal_naive"], label="seasonal naive", linestyle=":")
    ax.set(ylabel="units (all products)")
    ax.legend()
    fig.autofmt_xdate()
    return as_markdown(fig, "Forecast vs actual on the holdout")


# blue below -0.5 standard deviations, white within, red above 0.5
HEAT_LEVELS = ((-0.5, "\U0001F7E6"), (0.5, "\u2B1C"), (float("inf"), "\U0001F7E5"))


def heat_cell(z: float, with_value: bool) -> str:
    if not np.isfinite(z):
        return "n/a"
    mark = next(mark for bound, mark in HEAT_LEVELS if z < bound)
    return f"{mark} {z:+.1f}" if with_value else mark


def segment_profile_plot(profile: pl.DataFrame, columns: Sequence[str]) -> str:
    """Heat map of per-segment feature means, standardised across segments, as a markdown
    table of coloured squares (red above the segments' average, blue below): a heat map
    drawn as an image cannot be small enough for the UI to show it inline. The most
    detailed variant that fits is used: segment descriptions and values, then segment
    numbers and values, then numbers and colours only."""
    values = profile.select(columns).to_numpy().astype(float)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column without any value
        spread = np.nanstd(values, axis=0)
        scaled = (values - np.nanmean(values, axis=0)) / np.where(spread > 0, spread, 1.0)
    title = "**Segment profile (standardised means)**"
    legend = "\U0001F7E5 above, \U0001F7E6 below the segments' average (standard deviations)"
    variants = [
        ("segment", profile["description"].to_list(), True),
        ("segment", [str(s) for s in profile["segment"].to_list()], True),
        ("segment", [str(s) for s in profile["segment"].to_list()], False),
    ]
    for label, names, with_value in variants:
        header = f"| {label} | " + " | ".join(columns) + " |"
        rule = "|" + " --- |" * (len(columns) + 1)
        rows = [
            f"| {name} | " + " | ".join(heat_cell(z, with_value) for z in row) + " |"
            for name, row in zip(names, scaled, strict=True)
        ]
        markdown = "\n".join([title, "", legend, "", header, rule, *rows])
        if ui_length(markdown) < INLINE_LIMIT:
            break
    return markdown


def ui_length(text: str) -> int:
    """The length the UI measures (JavaScript: UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def bar_plot(values: Mapping[str, float], ylabel: str, title: str) -> str:
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(list(values), list(values.values()))
    ax.set(ylabel=ylabel)
    return as_markdown(fig, title)
