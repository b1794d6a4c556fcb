"""The report's charts as PNG bytes: matplotlib's object API on the Agg canvas, the Okabe-Ito
palette (distinct for colour-blind readers), markers and labels so they read in grey print."""

from __future__ import annotations

import io

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lakeml.reporting.business import Campaign

BLUE, ORANGE, GREEN, VERMILLION, GREY = "#0072B2", "#E69F00", "#009E73", "#D55E00", "#555555"


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.14, right=0.96, bottom=0.16, top=0.88)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=90, facecolor="white")
    return out.getvalue()


def value_curve(curve: list[Campaign], budget: Campaign, best: Campaign, currency: str) -> bytes:
    fig = Figure(figsize=(6.4, 3.4))
    ax = fig.add_subplot()
    ax.plot([c.pct for c in curve], [c.net for c in curve], marker="o", color=BLUE, label="net")
    ax.axhline(0, color=GREY, linewidth=0.8)
    ax.plot([budget.pct], [budget.net], marker="s", markersize=9, color=ORANGE, linestyle="",
            label=f"budget: top {budget.pct:g}%")  # fmt: skip
    ax.plot([best.pct], [best.net], marker="*", markersize=13, color=VERMILLION, linestyle="",
            label=f"best: top {best.pct:g}%")  # fmt: skip
    ax.set_xlabel("customers contacted (% of the scored snapshot, highest risk first)")
    ax.set_ylabel(f"expected net value ({currency})")
    ax.set_title("Expected net value of a retention campaign by cutoff")
    ax.legend(loc="best", fontsize=8)
    return _png(fig)


def lift_by_decile(deciles: pd.DataFrame) -> bytes:
    fig = Figure(figsize=(6.4, 3.2))
    ax = fig.add_subplot()
    bars = ax.bar(deciles["decile"], deciles["lift"], color=BLUE, edgecolor="black", hatch="//")
    ax.bar_label(bars, labels=[f"{v:.1f}x" for v in deciles["lift"]], fontsize=7)
    ax.axhline(1, color=VERMILLION, linestyle="--", linewidth=1, label="random (1x)")
    ax.set_xlabel("decile of the test window (1 = highest scores)")
    ax.set_ylabel("lift over the churn rate")
    ax.set_xticks(list(deciles["decile"]))
    ax.set_title("Churn rate by decile, as a multiple of the average")
    ax.legend(fontsize=8)
    return _png(fig)


def calibration(table: pd.DataFrame) -> bytes:
    fig = Figure(figsize=(4.6, 3.4))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color=GREY, linestyle="--", linewidth=1, label="perfect")
    ax.plot(table["mean_predicted"], table["observed_rate"], marker="o", color=GREEN,
            label="model")  # fmt: skip
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed churn rate")
    ax.set_title("Calibration on the test window")
    ax.legend(fontsize=8)
    return _png(fig)


def drivers(table: pd.DataFrame, top: int) -> bytes:
    shown = table.head(top).iloc[::-1]
    fig = Figure(figsize=(6.4, 0.32 * len(shown) + 1.2))
    ax = fig.add_subplot()
    ax.barh(shown["feature"], shown["value"], color=ORANGE, edgecolor="black")
    ax.set_xlabel(str(table["kind"].iloc[0]) if "kind" in table else "weight")
    ax.set_title("What drives the model's scores")
    ax.tick_params(axis="y", labelsize=8)
    fig.subplots_adjust(left=0.35)
    FigureCanvasAgg(fig)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=90, facecolor="white")
    return out.getvalue()
