"""The loss/eval plot: a real PNG drawn from real metric points."""

from __future__ import annotations

import struct
import subprocess
import sys
import threading

from training.plots import plot_png, series
from training.store import MetricPoint

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def points(evals: bool = True) -> list[MetricPoint]:
    found = [MetricPoint(step, step / 50, "train", "loss", 2.0 / (1 + step / 10), 0.0) for step in range(1, 101)]
    found += [MetricPoint(step, step / 50, "train", "learning_rate", 5e-5, 0.0) for step in range(1, 101)]
    if evals:
        for step in (50, 100):
            found += [MetricPoint(step, step / 50, "eval", name, value * step / 100, 0.0)
                      for name, value in (("precision", 0.8), ("recall", 0.9), ("f1", 0.85), ("loss", 0.5))]
        found.append(MetricPoint(100, 2.0, "test", "f1", 0.8, 0.0))
    return found


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot_is_a_png_with_a_loss_and_an_eval_panel():
    data = plot_png(points(), "Training job #1 (ner-small)")
    width, height = png_size(data)
    assert width > height > 100 and len(data) > 10_000
    loss_only = plot_png(points(evals=False), "no evals yet")
    assert png_size(loss_only)[0] < width  # one panel instead of two


def test_series_groups_points_by_kind_and_name():
    found = series(points(), "eval")
    assert sorted(found) == ["f1", "loss", "precision", "recall"]
    assert found["f1"][0] == [50, 100] and found["f1"][1][1] == 0.85
    assert list(series(points(), "test")) == ["f1"]


def test_no_points_still_gives_an_image():
    assert plot_png([], "nothing yet").startswith(PNG_MAGIC)


def test_plots_can_be_drawn_from_several_threads_at_once():
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(plot_png(points(), "t"))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3 and all(r.startswith(PNG_MAGIC) for r in results)


def test_importing_the_module_does_not_import_matplotlib():
    code = "import sys, training.plots; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
