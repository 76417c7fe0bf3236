"""What a resumed LOSO run must share with the run that wrote its complete folds, and the refusals when it does not.

A run folder is resumable: `mer loso` skips complete folds. Resuming with another config (beyond how it executes),
another pre-trained checkpoint, other prepared data or another way of choosing hyper-parameters would pool folds made
from different inputs into one report, so each is recorded in `config.yaml` / `loso.json` and checked before any
fold runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mer.config import Config, class_names, flatten, load_config, to_dict
from mer.errors import MerError
from mer.files import file_sha256

# Config keys (or key prefixes ending in '.') that only say how a run executes, not what it computes: resuming may
# change them. data.prepared is where the data is read from, loso.nested where the sweep file is: what they hold
# is checked by the data fingerprint and the selection key instead. Worker counts cannot change results because each
# sample's augmentation is seeded from (seed, stage, epoch, position) alone (mer.data.transforms.draw_seed).
EXECUTION_KEYS = ("loso.workers", "train.threads", "logging.", "data.num_workers", "data.pin_memory",
                  "data.persistent_workers", "data.prepared", "face.workers", "loso.nested",
                  "loso.devices")  # fmt: skip
# loso.json fields a resumed run must share with the run that wrote the complete folds (what each one names).
RESUME_FACTS = {"pretrained_sha256": "pre-trained checkpoint", "data_fingerprint": "prepared data",
                "selection_key": "hyper-parameter selection"}  # fmt: skip


def prepared_fingerprint(prepared_dir: str | Path) -> str:
    """sha256 of `prepared.csv`: its rows, labels and content-addressed crop names (crops relative to the folder,
    so moving the folder keeps the fingerprint; re-preparing other data changes it)."""
    return file_sha256(Path(prepared_dir) / "prepared.csv")


def has_folds(out: Path) -> bool:
    """`out` already holds at least one complete fold (only then is there anything to mix with)."""
    return (out / "folds").is_dir() and any((out / "folds").rglob("metrics.json"))


def check_same_inputs(notes: dict[str, Any], out: Path) -> None:
    """Resuming with another pre-trained checkpoint, other prepared data or another way of choosing hyper-parameters
    would mix runs: refuse in one line naming what differs (runs from before these records are not checked)."""
    previous = out / "loso.json"
    if not previous.is_file() or not has_folds(out):
        return
    try:
        old = json.loads(previous.read_text())
    except (OSError, json.JSONDecodeError):
        raise MerError(f"{previous}: not valid JSON; it records what the complete folds were made from") from None
    for key, what in RESUME_FACTS.items():
        if key in old and old[key] != notes[key]:
            raise MerError(
                f"{out} holds folds made with another {what} ({key} {str(old[key])[:16]} → {str(notes[key])[:16]}); "
                "use a new --out folder or the same inputs to resume"
            )


def _execution_key(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in EXECUTION_KEYS)


def check_same_config(cfg: Config, out: Path) -> None:
    """Resuming into a folder made with another config would mix results: refuse with the difference."""
    previous = out / "config.yaml"
    if not previous.is_file() or not has_folds(out):
        return
    before = load_config(previous)
    old, new = flatten(to_dict(before)), flatten(to_dict(cfg))
    # a list of megc3 classes (configs before class schemes) and the megc3 scheme are the same classes
    old["data.classes"], new["data.classes"] = class_names(before.data), class_names(cfg.data)
    keys = sorted(k for k in set(old) | set(new) if not _execution_key(k))
    changed = [f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]
    if changed:
        raise MerError(
            f"{out} holds folds from another config ({'; '.join(changed[:3])}); "
            "use a new --out folder or the same config to resume"
        )
