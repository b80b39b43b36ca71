"""Loss and evaluation curves of a training job as a PNG (matplotlib's Agg renderer, no display).

matplotlib is imported on the first plot only, so importing this module costs nothing; figures
are drawn on their own Agg canvas (not through pyplot), so plots can be made from any thread.
"""

from __future__ import annotations

import io
from collections import defaultdict

from training.store import MetricPoint

EVAL_FIRST = ("f1", "precision", "recall", "accuracy")
PANEL_SIZE = (5.2, 3.6)


def series(points: list[MetricPoint], kind: str) -> dict[str, tuple[list[int], list[float]]]:
    """The points of one kind ("train", "eval", "test") as {metric name: (steps, values)}."""
    found: dict[str, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
    for point in points:
        if point.kind == kind:
            steps, values = found[point.name]
            steps.append(point.step)
            values.append(point.value)
    return dict(found)


def plot_png(points: list[MetricPoint], title: str) -> bytes:
    """A PNG with the training and evaluation loss (left) and the other eval metrics (right),
    both against the optimizer step; with no points, a figure that says so."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    train, evals = series(points, "train"), series(points, "eval")
    scores = {name: s for name, s in evals.items() if name != "loss"}
    panels = 2 if scores else 1
    figure = Figure(figsize=(PANEL_SIZE[0] * panels, PANEL_SIZE[1]), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, panels, squeeze=False)[0]
    figure.suptitle(title)
    _loss_panel(axes[0], train.get("loss"), evals.get("loss"))
    if scores:
        _scores_panel(axes[1], scores)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _loss_panel(ax, train, evals) -> None:
    ax.set_title("Loss")
    ax.set_xlabel("step")
    if train:
        ax.plot(*train, label="train", linewidth=1, alpha=0.8)
    if evals:
        ax.plot(*evals, label="eval", marker="o", linewidth=1.5)
    if train or evals:
        ax.legend()
        ax.grid(alpha=0.3)
    else:
        ax.text(0.5, 0.5, "no loss recorded yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])


def _scores_panel(ax, scores: dict[str, tuple[list[int], list[float]]]) -> None:
    ax.set_title("Evaluation")
    ax.set_xlabel("step")
    names = [n for n in EVAL_FIRST if n in scores] + sorted(n for n in scores if n not in EVAL_FIRST)
    for name in names:
        ax.plot(*scores[name], label=name, marker="o", linewidth=1.5)
    ax.legend()
    ax.grid(alpha=0.3)
