"""Helpers the test files share: synthetic prepared sets (aligned-crop stand-ins, so training needs no face
detection), their `mer prepare` folder form, the tiny training config, and synthetic LOSO run folders with the
report sections they produce."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import optuna
import pandas as pd
import yaml
from optuna.trial import TrialState

from mer.config import Config, load_config
from mer.data.manifest import make_frame, save_manifest
from mer.provenance import write_run_info
from mer.sweep import open_storage

CLASSES = ("negative", "positive", "surprise")
NET_SIZE = 64  # the inference and export tests' network input side


def small_config() -> Config:
    """The config of the inference/export tests' untrained network: mobilevit_xxs on NET_SIZE² crops."""
    return load_config(None, ["model.backbone=mobilevit_xxs", f"face.size={NET_SIZE}", f"data.image_size={NET_SIZE}"])


def make_prepared(
    root: Path,
    subjects: dict[str, str],
    per_class: int = 4,
    size: int = 64,
    seed: int = 0,
    skew: bool = False,
    classes: Sequence[str] = CLASSES,
) -> pd.DataFrame:
    """Write class-patterned grayscale crops and return a prepared table (manifest columns + `crop`).

    `subjects` maps subject id (e.g. 'casme2/sub01') to kind ('micro'|'macro'). Class c draws a bright bar at a
    class-specific place plus noise, so a small network can learn it. `skew` gives class 0 three times the samples.
    """
    rng = np.random.default_rng(seed)
    rows, crops = [], []
    for subject, kind in subjects.items():
        dataset = subject.split("/")[0]
        for ci, label in enumerate(classes):
            n = per_class * (3 if skew and ci == 0 else 1)
            for k in range(n):
                img = rng.normal(110, 20, (size, size)).clip(0, 255)
                y0 = size // 6 + ci * size // (len(classes) + 1)
                img[y0 : y0 + size // 8, size // 5 : 4 * size // 5] += 90
                img = img.clip(0, 255).astype(np.uint8)
                sample_id = f"{subject.replace('/', '_')}_{label}_{k}"
                path = root / "crops" / f"{sample_id}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(path), img)
                rows.append(
                    {
                        "dataset": dataset,
                        "subject": subject,
                        "sample_id": sample_id,
                        "kind": kind,
                        "emotion": label,
                        "label": label,
                        "frames": [str(path)],
                        "onset": 0,
                        "apex": 0,
                        "offset": 0,
                    }  # fmt: skip
                )
                crops.append(str(path))
    df = make_frame(rows)
    df["crop"] = crops
    return df


# What only the tests change on top of conf/tiny.yaml: two threads, two short epochs, batch 16, no progress bars.
TEST_OVERRIDES = (
    "train.threads=2",
    "train.pretrain.epochs=2",
    "train.pretrain.batch_size=16",
    "train.finetune.epochs=2",
    "train.finetune.batch_size=16",
    "logging.progress_bar=false",
)


def tiny_config(*extra: str) -> Config:
    """The shipped `tiny` overlay (mobilevit_xxs on 64² crops) with the tests' settings, then `extra` overrides."""
    return load_config(["default", "tiny"], [*TEST_OVERRIDES, *extra])


def write_prepared_dir(root: Path, df: pd.DataFrame) -> Path:
    """Save a table from `make_prepared` as a `mer prepare` folder (prepared.csv with crops relative to it)."""
    out = df.copy()
    out["crop"] = [str(Path(c).resolve().relative_to(root.resolve())) for c in out["crop"]]
    out["face_note"] = ""
    save_manifest(out, root / "prepared.csv")
    return root


# ---------------------------------------------------------------- LOSO run folders (report tests)

SUBJECTS = ["casme2/sub01", "casme2/sub02", "samm/006", "samm/007", "smic/s1", "smic/s2"]
SECTIONS = [
    "## Scores (pooled over all folds)",
    "## Per-class scores (composite)",
    "## Confusion matrices (composite)",
    "## Comparison with published results",
    "## Per-fold results",
    "## Time per fold",
    "## MEGC log",
    "## Provenance",
    "## Resolved config",
]


def make_run(
    root: Path, seed: int = 0, name: str = "synthetic", subjects: list[str] = SUBJECTS, notes: dict | None = None
) -> Path:
    """A run folder: config.yaml, run_info.json, folds/<subject>/{predictions.csv, metrics.json} (random preds)."""
    rng = np.random.default_rng(seed)
    cfg = load_config("demo", [f"name={name}", f"seed={seed}"])
    write_run_info(cfg, root, command=f"mer loso --out {root.name}")
    if notes is not None:
        (root / "loso.json").write_text(json.dumps(notes))
    for i, subject in enumerate(subjects):
        dataset = subject.split("/")[0]
        n = int(rng.integers(3, 8))
        labels = rng.choice(CLASSES, size=n)
        svm = np.where(rng.random(n) < 0.7, labels, rng.choice(CLASSES, size=n))
        soft = np.where(rng.random(n) < 0.5, labels, rng.choice(CLASSES, size=n))
        probs = rng.dirichlet(np.ones(3), size=n)
        folder = root / "folds" / subject
        folder.mkdir(parents=True)
        pd.DataFrame(
            {
                "sample_id": [f"EP{i:02d}_{k:02d}" for k in range(n)],
                "dataset": dataset,
                "subject": subject,
                "label": labels,
                "svm_pred": svm,
                "softmax_pred": soft,
                "prob_negative": probs[:, 0],
                "prob_positive": probs[:, 1],
                "prob_surprise": probs[:, 2],
            }
        ).to_csv(folder / "predictions.csv", index=False)
        metrics = {
            "fold": subject,
            "held_out": [subject],
            "n_test": n,
            "n_train": 40 - n,
            "svm_accuracy": float(np.mean(svm == labels)),
            "softmax_accuracy": float(np.mean(soft == labels)),
            "seconds": 10.0 + i,
            "svm_params": {"C": 1.0, "kernel": "rbf", "gamma": "scale", "inner_cv_f1": 0.5, "fallback": None},
            "best_epoch": i % 3,
        }
        (folder / "metrics.json").write_text(json.dumps(metrics))
    return root


# ---------------------------------------------------------------- sweeps and LOSO runs

MICRO = {f"{d}/s{i}": "micro" for d in ("casme2", "samm") for i in range(3)}
BASE = ["default", "tiny"]  # tiny.yaml: mobilevit_xxs, max_shift 2, linear SVM; TINY shrinks it further
TINY = {
    "data.image_size": 32,
    "face.size": 32,
    "train.threads": 1,  # 2 threads on 2 shared cores: OpenMP spin-waits make trials 10-20x slower
    "train.finetune.epochs": 1,
    "train.finetune.batch_size": 16,
    "train.finetune.val_subjects": 0.0,
    "train.finetune.unfreeze": {0: "all"},
    "logging.progress_bar": False,
    "svm.C": [1.0],
    "svm.inner_folds": 2,
}
GRID = {"train.finetune.lr": [0.001, 0.003], "train.finetune.l2": [1.0e-4, 1.0e-2]}


def spec_dict(out: Path, **changes) -> dict:
    """A tiny grid sweep (4 points, 2 inner folds) writing to `out`."""
    raw = {
        "study": "t",
        "base": list(BASE),
        "overrides": dict(TINY),
        "sampler": {"type": "grid", "seed": 0},
        "inner_folds": 2,
        "search": dict(GRID),
        "out": str(out),
    }
    raw.update(changes)
    return raw


def write_spec(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def trials(out: Path, name: str = "t", url: str | None = None) -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(url or f"sqlite:///{out / 'study.db'}", create=False)
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def point(t: optuna.trial.FrozenTrial) -> tuple:
    return tuple(sorted(t.params.items()))


def complete(ts: list) -> list:
    return [t for t in ts if t.state == TrialState.COMPLETE]


def grid_points() -> set[tuple]:
    return {tuple(sorted({"train.finetune.lr": a, "train.finetune.l2": b}.items())) for a in GRID["train.finetune.lr"]
            for b in GRID["train.finetune.l2"]}  # fmt: skip


def all_predictions(out: Path) -> pd.DataFrame:
    """Every fold's predictions.csv of a LOSO run folder, in sample order."""
    files = sorted((out / "folds").rglob("predictions.csv"))
    return pd.concat([pd.read_csv(f) for f in files]).sort_values("sample_id").reset_index(drop=True)


def kill_in_trial(proc: subprocess.Popen, running: Callable[[], list[int]]) -> int | None:
    """SIGKILL `proc` inside one of its trials and return that trial's number, or None (and `proc` goes on) when
    `running()` lists none. The process is frozen (SIGSTOP) and `running()` read again before the kill, so a trial
    that ended between the read and the signal is never taken for a killed one, however slow the polling is."""
    if not running():
        return None
    proc.send_signal(signal.SIGSTOP)
    try:
        held = running()
    except Exception:  # noqa: BLE001 - frozen inside a database write (SQLite locks readers out): resume, try again
        held = []
    if not held:
        proc.send_signal(signal.SIGCONT)
        return None
    proc.send_signal(signal.SIGKILL)
    return held[0]
