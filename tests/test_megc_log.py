"""The MEGC per-fold log on its own: written from a predictions table, read back into the same rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mer.config import CLASSES
from mer.errors import MerError
from mer.evaluation.megc_log import MEGC_LOG_HEADER, read_megc_log, write_megc_log


def predictions(seed: int = 0) -> pd.DataFrame:
    """Folds listed out of natural order, awkward sample ids (colons, spaces, unicode), random labels."""
    rng = np.random.default_rng(seed)
    rows = []
    for fold in ("smic/s10", "casme2/sub2", "smic/s2", "casme2/sub10"):
        for k in range(int(rng.integers(1, 5))):
            sid = f"{fold.split('/')[1]}_EP{k:02d}" + (":take 2" if k == 1 else "") + ("_é" if k == 2 else "")
            rows.append({"fold": fold, "sample_id": sid, "label": rng.choice(CLASSES), "svm_pred": rng.choice(CLASSES)})
    return pd.DataFrame(rows)


def test_write_then_read_gives_the_same_rows(tmp_path: Path) -> None:
    preds = predictions()
    path = write_megc_log(preds, tmp_path / "log.txt", pred_col="svm_pred", run_name="r", classifier="svm")
    text = path.read_text()
    assert text.startswith(MEGC_LOG_HEADER + "\n# run: r; classifier: svm; classes: negative,positive,surprise\n")
    folds = [ln.split("\t")[0] for ln in text.splitlines() if not ln.startswith("#")]
    assert folds == ["casme2/sub2", "casme2/sub10", "smic/s2", "smic/s10"]  # natural order
    expected = preds.iloc[np.argsort([folds.index(f) for f in preds["fold"]], kind="stable")]
    expected = expected[["fold", "sample_id", "svm_pred", "label"]].rename(columns={"svm_pred": "pred"})
    pd.testing.assert_frame_equal(read_megc_log(path), expected.reset_index(drop=True))


def test_a_fold_without_rows_is_a_bare_line(tmp_path: Path) -> None:
    preds = predictions(1)
    folds = [*preds["fold"].unique(), "samm/006"]
    path = write_megc_log(preds, tmp_path / "log.txt", pred_col="svm_pred", run_name="r", classifier="svm", folds=folds)
    assert "samm/006" in path.read_text().splitlines()
    back = read_megc_log(path)
    assert len(back) == len(preds) and "samm/006" not in set(back["fold"])


def test_unwritable_ids_and_unreadable_lines_are_clear_errors(tmp_path: Path) -> None:
    preds = predictions().assign(sample_id=lambda d: d["sample_id"].where(d.index != 0, "bad\tid"))
    with pytest.raises(MerError, match="contains a tab or newline"):
        write_megc_log(preds, tmp_path / "log.txt", pred_col="svm_pred", run_name="r", classifier="svm")
    (tmp_path / "broken.txt").write_text(f"{MEGC_LOG_HEADER}\nfold1\ts1:pred=negative:true=positive\tnonsense\n")
    with pytest.raises(MerError, match="broken.txt:2: 'nonsense' is not"):
        read_megc_log(tmp_path / "broken.txt")
