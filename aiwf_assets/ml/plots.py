"""Plots for the Dagster UI: matplotlib (Agg) to PNG, embedded as markdown data URIs."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402


def as_markdown(fig: Figure, title: str) -> str:
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


def segment_profile_plot(profile: pl.DataFrame, columns: Sequence[str]) -> str:
    """Heat map of per-segment feature means, standardised across segments."""
    values = profile.select(columns).to_numpy().astype(float)
    spread = values.std(axis=0)
    scaled = (values - values.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(profile) + 1.5))
    ax.imshow(scaled, cmap="coolwarm", aspect="auto", vmin=-2, vmax=2)
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(len(profile)), profile["description"].to_list())
    return as_markdown(fig, "Segment profile (standardised means)")


def bar_plot(values: Mapping[str, float], ylabel: str, title: str) -> str:
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(list(values), list(values.values()))
    ax.set(ylabel=ylabel)
    return as_markdown(fig, title)
