"""The report's figures as PNG bytes: composite confusion matrices and per-fold accuracy bars.

Figures are drawn on matplotlib's Agg canvas (no pyplot state, no display needed). matplotlib is imported inside
the functions: it adds about 0.4 s of start-up, paid only when a figure is drawn (not by `mer report --compare`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mer.evaluation.metrics import COMPOSITE
from mer.evaluation.run_folder import CLASSIFIER_NAMES

Scores = dict[str, dict[str, dict[str, Any]]]  # {classifier: {"composite" or dataset: pooled scores}}


def _figure(figsize: tuple[float, float]) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy: start-up time, see the module docstring
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def confusion_png(scores: Scores) -> bytes:
    """One composite confusion matrix per classifier, side by side, titled with its UF1 and UAR."""
    from sklearn.metrics import ConfusionMatrixDisplay

    fig = _figure((4.3 * len(scores), 4.0))
    axes = fig.subplots(1, len(scores), squeeze=False)[0]
    for ax, (clf, pooled) in zip(axes, scores.items(), strict=True):
        comp = pooled[COMPOSITE]
        ConfusionMatrixDisplay(np.array(comp["confusion"]), display_labels=comp["classes"]).plot(
            ax=ax, cmap="Blues", colorbar=False, values_format="d"
        )
        ax.set_title(f"{CLASSIFIER_NAMES[clf]}: UF1 {comp['uf1']:.3f}, UAR {comp['uar']:.3f}", fontsize=10)
    return _png(fig)


def per_fold_png(table: pd.DataFrame, classifiers: Sequence[str], scores: Scores) -> bytes:
    """Bars of per-fold accuracy (`<clf>_acc` columns of `table`) coloured by dataset, pooled accuracy as lines."""
    from matplotlib.patches import Patch  # lazy: start-up time, see the module docstring

    n = len(table)
    fig = _figure((max(6.0, 0.22 * n + 2.5), 4.0))
    ax = fig.subplots()
    x = np.arange(n)
    datasets = table["dataset"].tolist()
    palette = {d: f"C{i}" for i, d in enumerate(dict.fromkeys(datasets))}
    clfs = list(classifiers)
    width = 0.8 / len(clfs)
    for k, clf in enumerate(clfs):
        offset = (k - (len(clfs) - 1) / 2) * width
        colors = [palette[d] for d in datasets]
        ax.bar(
            x + offset,
            table[f"{clf}_acc"].fillna(0).to_numpy(),
            width,
            color=colors,
            alpha=1.0 if k == 0 else 0.45,
            hatch=None if k == 0 else "//",
            edgecolor="black",
            linewidth=0.3,
        )
        pooled = scores[clf][COMPOSITE]["accuracy"]
        ax.axhline(pooled, color="black", linestyle="-" if k == 0 else "--", linewidth=0.8)
        ax.text(
            n - 0.5,
            pooled,
            f" pooled {CLASSIFIER_NAMES[clf]} {pooled:.3f}",
            va="bottom",
            ha="right",
            fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1},
        )
    ax.set_xticks(x, table["fold"].tolist(), rotation=90, fontsize=7 if n > 20 else 9)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    styles = ", ".join(f"{CLASSIFIER_NAMES[c]} {'hatched' if i else 'solid'}" for i, c in enumerate(clfs))
    ax.set_title(f"Per-fold accuracy ({styles}); diagnostic only, the headline metrics are pooled", fontsize=10)
    ax.legend(
        handles=[Patch(color=c, label=d) for d, c in palette.items()],
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        title="dataset",
        title_fontsize=8,
    )
    return _png(fig)
