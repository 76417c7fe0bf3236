"""What a resumed LOSO run must share with the run that wrote its complete folds, and the refusals when it does not.

A run folder is resumable: `mer loso` skips complete folds. Resuming with another config (beyond how it executes),
another pre-trained checkpoint, other prepared data or another way of choosing hyper-parameters would pool folds made
from different inputs into one report, so each is recorded in `config.yaml` / `loso.json` and checked before any
fold runs. So is the regime (mer commit, package versions, resolved numerics: `mer.provenance.regime`) that every
fold records in its metrics.json: a resume or array task under another regime is refused unless `--allow-mixed`,
and then the report is stamped MIXED.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mer.config import Config, class_names, flatten, load_config, to_dict
from mer.errors import MerError
from mer.evaluation.run_folder import CONFIG, NOTES, RunFolder, regimes_of
from mer.files import file_sha256
from mer.provenance import regime_differences

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


def check_same_inputs(notes: dict[str, Any], out: Path) -> None:
    """Resuming with another pre-trained checkpoint, other prepared data or another way of choosing hyper-parameters
    would mix runs: refuse in one line naming what differs (runs from before these records are not checked)."""
    folder = RunFolder(out)
    if not folder.file(NOTES).is_file() or not folder.has_folds():
        return
    try:
        old = folder.read_notes()
    except MerError:
        raise MerError(
            f"{folder.file(NOTES)}: not valid JSON; it records what the complete folds were made from"
        ) from None
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
    folder = RunFolder(out)
    previous = folder.file(CONFIG)
    if not previous.is_file() or not folder.has_folds():
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


def check_same_regime(out: Path, folders: Sequence[RunFolder], regime: dict[str, Any], allow_mixed: bool) -> bool:
    """Refuse, in one line naming the first fold and field that differ, to add folds made under `regime` to
    `folders` (the run folder, or every seed folder of a study) when their complete folds recorded another one.
    With `allow_mixed` the folds are pooled anyway (the report is then stamped MIXED); returns True when they will
    be mixed. Folds from before regimes were recorded are not compared."""
    for fold, old in regimes_of(folders, out).items():
        diffs = regime_differences(old, regime)
        if not diffs:
            continue
        more = f" (+{len(diffs) - 1} more)" if len(diffs) > 1 else ""
        if allow_mixed:
            print(f"note: {out} holds folds made under another regime (fold {fold}: {diffs[0]}{more}); --allow-mixed: "
                  "pooling them, the report will be stamped MIXED")  # fmt: skip
            return True
        raise MerError(
            f"{out} holds folds made under another regime (fold {fold}: {diffs[0]}{more}); resume with the same "
            "code, packages and numerics, use a new --out folder, or pass --allow-mixed to pool them (the report "
            "is then stamped MIXED)"
        )
    return False
