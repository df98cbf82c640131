"""A picture of detected sound events: each query's probability over time, its spans shaded.

Needs matplotlib (``pip install 'pe-av[plot]'``), imported only when a plot is drawn. The figure is
drawn with matplotlib's object interface on the Agg canvas (no pyplot, no global backend change)
and written atomically (:mod:`pe_av.atomic`).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes

__all__ = ["PLOT_INSTALL", "plot_events"]

#: how to get what plotting needs
PLOT_INSTALL = "pip install 'pe-av[plot]' (or: pip install matplotlib)"


def _matplotlib():
    """matplotlib's Figure and Agg canvas, or an ImportError that says how to install it."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(f"plotting events needs matplotlib, which cannot be imported ({exc}): {PLOT_INSTALL}") from exc
    return Figure, FigureCanvasAgg


def plot_events(detection, path: str | os.PathLike, *, width: int = 1000, row_height: int = 160, dpi: int = 100,
                overwrite: bool = False) -> Path:
    """Draw an :class:`~pe_av.tasks.events.EventDetection` to a PNG of ``width`` × ``row_height · queries``
    pixels: one row per query with its probability curve, the threshold as a dashed line and each
    detected event shaded. Refuses to replace an existing file unless ``overwrite``."""
    for name, value in (("width", width), ("row_height", row_height), ("dpi", dpi)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 16:
            raise ValueError(f"{name} must be an int of at least 16 pixels, got {value!r}")
    Figure, FigureCanvasAgg = _matplotlib()
    rows = len(detection.queries)
    figure = Figure(figsize=(width / dpi, row_height * rows / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    times = (np.arange(detection.scores.shape[1]) + 0.5) * detection.frame_period
    for ax, query, curve in zip(axes, detection.queries, detection.scores):
        ax.plot(times, curve, linewidth=1.0)
        ax.axhline(detection.threshold, linestyle="--", linewidth=0.8, color="gray")
        for event in detection.events:
            if event.query == query:
                ax.axvspan(event.onset_s, event.offset_s, alpha=0.25, color="tab:orange")
        ax.set_ylim(0, 1)
        ax.set_xlim(0, max(detection.duration, detection.frame_period))
        ax.set_ylabel("p", rotation=0)
        ax.set_title(query, fontsize=9, loc="left")
    axes[-1].set_xlabel("time (s)")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return atomic_write_bytes(Path(path), buffer.getvalue(), overwrite=overwrite)
