"""The MEGC per-fold log: one tab-separated line per LOSO fold, `<fold>` then `<sample_id>:pred=<p>:true=<t>`.

Lines starting with `#` are comments (format version, run, classifier, classes). `write_megc_log` writes it from
a predictions table, `read_megc_log` reads it back into the same rows, so a log can be checked or re-scored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mer.config import CLASSES
from mer.errors import MerError
from mer.files import atomic_write_text, natural_key

MEGC_LOG_HEADER = "# mer MEGC per-fold log, format 1"
LOG_COLUMNS = ("fold", "sample_id", "pred", "label")
_TOKEN = re.compile(r"(.*):pred=([^:]*):true=([^:]*)")


def write_megc_log(
    predictions: pd.DataFrame,
    path: str | Path,
    *,
    pred_col: str,
    run_name: str,
    classifier: str,
    folds: Sequence[str] | None = None,
    classes: Sequence[str] = CLASSES,
) -> Path:
    """Write the log of `predictions` (columns fold, sample_id, label and `pred_col`); returns the path.

    Folds in natural order (`folds`, default: those in `predictions`; a fold without rows gets a bare line),
    samples in their row order. A sample id holding a tab or newline cannot be written: MerError.
    """
    lines = [
        MEGC_LOG_HEADER,
        f"# run: {run_name}; classifier: {classifier}; classes: {','.join(classes)}",
        "# one line per fold: <fold>\\t<sample_id>:pred=<predicted>:true=<ground truth>\\t... (tab-separated)",
    ]
    names = list(dict.fromkeys(predictions["fold"])) if folds is None else list(folds)
    for fold in sorted(names, key=natural_key):
        part = predictions[predictions["fold"] == fold]
        tokens = []
        for sid, p, t in zip(part["sample_id"], part[pred_col], part["label"], strict=True):
            if re.search(r"[\t\r\n]", str(sid)):
                raise MerError(
                    f"sample_id {sid!r} in fold {fold} contains a tab or newline; the MEGC log cannot hold it"
                )
            tokens.append(f"{sid}:pred={p}:true={t}")
        lines.append("\t".join([str(fold), *tokens]))
    path = Path(path)
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def read_megc_log(path: str | Path) -> pd.DataFrame:
    """Read a log written by `write_megc_log` into rows of (fold, sample_id, pred, label), all strings."""
    path = Path(path)
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fold, *tokens = line.split("\t")
        for token in tokens:
            match = _TOKEN.fullmatch(token)
            if not match:
                raise MerError(f"{path}:{number}: '{token}' is not <sample_id>:pred=<label>:true=<label>")
            rows.append({"fold": fold, "sample_id": match[1], "pred": match[2], "label": match[3]})
    return pd.DataFrame(rows, columns=list(LOG_COLUMNS))
