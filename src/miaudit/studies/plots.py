"""Figure helpers shared by the studies and the report: matplotlib on the Agg backend (no display)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: never open a window, whatever the user's matplotlibrc says
from matplotlib.figure import Figure  # noqa: E402

from miaudit.io_utils import atomic_path  # noqa: E402


def new_figure(width: float = 6.4, height: float = 4.2) -> Figure:
    """A figure not tied to pyplot's global state (safe in tests and threads)."""
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def save_png(draw: Callable[[Figure], Any], path: Path, *, width: float = 6.4, height: float = 4.2) -> Path:
    """Draw on a fresh figure and write it as a PNG, atomically."""
    fig = new_figure(width, height)
    draw(fig)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        fig.savefig(f, format="png")
    return path


def context_line(ctx: dict[str, Any]) -> str:
    """The caption every study figure carries: data set, model, seeds, attacks."""
    seeds = ctx.get("seeds", [])
    return (
        f"{ctx.get('dataset')} ({ctx.get('records')} records, {ctx.get('num_classes')} classes), "
        f"model {ctx.get('model') or 'per row'}, {len(seeds)} seed(s); mean ± std over seeds; "
        f"attacks {', '.join(ctx.get('attacks', []))} ({ctx.get('threat_model')})"
    )
