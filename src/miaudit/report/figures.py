"""The report's figures, drawn with matplotlib (Agg) and returned as PNG bytes."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from miaudit.studies.plots import new_figure


def png_bytes(draw: Callable[[Figure], Any], width: float = 10.0, height: float = 4.4) -> bytes:
    fig = new_figure(width, height)
    draw(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def roc_figure(curves: dict[str, dict[str, Any]], caption: str) -> bytes:
    """ROC curves of every attack, linear axes (left) and log-log axes (right; Carlini et al.,
    S&P 2022: the low-FPR region is where membership inference matters)."""

    def draw(fig: Figure) -> None:
        lin, log = fig.subplots(1, 2)
        floor = min((c["fpr_floor"] for c in curves.values()), default=1e-4)
        for name, c in curves.items():
            fpr, tpr = np.asarray(c["fpr"]), np.asarray(c["tpr"])
            label = f"{name} (AUC {c['auc']:.3f})"
            lin.plot(fpr, tpr, label=label, lw=1.2)
            log.plot(np.maximum(fpr, floor), np.maximum(tpr, floor), label=label, lw=1.2)
        lin.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8)
        log.plot([floor, 1], [floor, 1], color="grey", ls="--", lw=0.8)
        lin.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (linear)", xlim=(0, 1), ylim=(0, 1))
        log.set(xscale="log", yscale="log", xlabel="false positive rate", ylabel="true positive rate",
                title="ROC (log-log)", xlim=(floor, 1), ylim=(floor, 1))  # fmt: skip
        for ax in (lin, log):
            ax.grid(alpha=0.3, which="both")
        log.legend(fontsize=7, loc="lower right")
        fig.suptitle(caption, fontsize=8)

    return png_bytes(draw)


def defenses_figure(rows: list[dict[str, Any]], baseline: dict[str, Any] | None, caption: str) -> bytes:
    """Privacy-utility trade-off: each defense's test accuracy against its strongest attack's AUC."""

    def draw(fig: Figure) -> None:
        ax = fig.subplots()
        for row in rows:
            ax.scatter(row["test_accuracy"], row["auc"], zorder=3)
            ax.annotate(row["name"], (row["test_accuracy"], row["auc"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        if baseline is not None:
            ax.scatter(baseline["test_accuracy"], baseline["auc"], marker="*", s=120, color="black", zorder=4, label="no defense")
            ax.legend(fontsize=8)
        ax.axhline(0.5, color="grey", ls="--", lw=0.8)
        ax.set(xlabel="target test accuracy (utility)", ylabel="attack AUC (leakage)", title="Defense trade-off")
        ax.grid(alpha=0.3)
        fig.suptitle(caption, fontsize=8)

    return png_bytes(draw, 7.0, 4.4)
