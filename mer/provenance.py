"""Run provenance: the mer commit, package versions, the numerics a run resolves on this machine, `run_info.json`.

One layer above `mer.config` (it reads a `Config`, nothing reads it back into one). A **regime** is what decides a
fold's numbers besides its config and inputs: the mer commit and whether the tree was dirty, the versions of the
packages that compute results, and the resolved numerics (`train.precision: auto` becomes bf16-mixed on one GPU,
16-mixed on another and 32-true on a CPU). Each LOSO fold records its regime; a resume whose regime differs from
the folds already there is refused (`mer.evaluation.resume.check_same_regime`).
"""

from __future__ import annotations

import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from mer.config import FEATURE_BACKBONES, Config, TrainConfig, to_yaml
from mer.files import atomic_write_json, atomic_write_text

# Packages whose version decides a fold's numbers (a regime difference); `versions()` records more for the report.
REGIME_PACKAGES = ("torch", "lightning", "timm", "numpy", "scikit-learn", "albumentations")
REPORTED_PACKAGES = ("mer-lightning", "torch", "torchvision", "lightning", "timm", "facenet-pytorch", "scikit-learn",
                     "numpy", "pandas", "optuna", "albumentations", "opencv-python-headless")  # fmt: skip
CONFIG_FILE = "config.yaml"  # the resolved config every run folder (prepare, pretrain, loso, trial) holds
RUN_INFO_FILE = "run_info.json"  # the last call's provenance in that folder
# Regime fields that are recorded but do not make two regimes differ (the GPU model is shown, the device type counts).
INFORMATIONAL = ("device_name",)
# How hyper-parameters were chosen (a `selection` record: loso.json, a nested fold's metrics.json, the `meta` of a
# pretrained.pt): by hand, by a study's best trial, by a study that could not be opened, or per fold (nested).
SELECTION_METHODS = ("fixed", "from-study", "unverified", "nested")
CHECKPOINT_SELECTION = "selection"  # the key of a pretrained.pt's `meta` that holds its selection record


def git_state() -> tuple[str | None, bool]:
    """(the project's git commit, whether tracked files differ from it); (None, False) outside a checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None, False
    return commit or None, bool(dirty)


def git_commit() -> str | None:
    """The project's git commit (with '+dirty' if the tree has changes), or None outside a checkout."""
    commit, dirty = git_state()
    return None if commit is None else commit + ("+dirty" if dirty else "")


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str]:
    """Versions of Python and the packages that decide results."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in REPORTED_PACKAGES:
        v = _version(pkg)
        if v is not None:
            out[pkg] = v
    return out


def resolve_precision(train: TrainConfig, cuda: bool, bf16: bool = True) -> tuple[str, bool]:
    """(precision, channels_last) with 'auto' resolved: bf16-mixed (16-mixed without bf16) + channels_last on CUDA,
    32-true and the default memory format elsewhere. `cuda`: the Trainer runs on a CUDA device."""
    precision = train.precision
    if precision == "auto":
        precision = ("bf16-mixed" if bf16 else "16-mixed") if cuda else "32-true"
    channels_last = cuda if train.channels_last == "auto" else bool(train.channels_last)
    return precision, channels_last


def trainer_on_cuda(train: TrainConfig) -> tuple[bool, bool]:
    """(the Trainer will run on CUDA, that device supports bf16) for `train.accelerator` on this machine."""
    import torch  # function-local: `mer --help` and config loading need no torch

    cuda = train.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return cuda, bool(cuda and torch.cuda.is_bf16_supported())


def _device(train: TrainConfig, cuda: bool | None) -> tuple[str, str, bool]:
    """(device type, device name, bf16 support) the Trainer will use; `cuda` False forces the CPU (hidden GPUs)."""
    import torch

    on_cuda, bf16 = trainer_on_cuda(train) if cuda is not False else (False, False)
    if on_cuda:
        return "cuda", torch.cuda.get_device_name(), bf16
    mps = train.accelerator == "mps" and torch.backends.mps.is_available()
    return ("mps", "mps", False) if mps else ("cpu", "cpu", False)


def regime(cfg: Config, cuda: bool | None = None) -> dict[str, Any]:
    """The regime a fold of `cfg` runs under in this process: mer commit and dirty flag, key package versions and the
    resolved numerics (precision with `auto` resolved, TF32, deterministic, device type; the device name is shown
    only). `cuda=False`: the folds will run with the GPUs hidden (`loso.devices: [cpu]`). A feature backbone
    (LBP-TOP + SVM) trains no network: its numerics are `none`.
    """
    commit, dirty = git_state()
    out: dict[str, Any] = {
        "mer_commit": commit,
        "dirty": dirty,
        "mer_version": _version("mer-lightning"),
        "versions": {p: _version(p) for p in REGIME_PACKAGES},
    }
    if cfg.model.backbone in FEATURE_BACKBONES:  # no network: nothing runs on a device
        return {**out, "precision": "none", "tf32": None, "deterministic": None, "device": "cpu", "device_name": "cpu"}
    device, name, bf16 = _device(cfg.train, cuda)
    precision, _ = resolve_precision(cfg.train, device == "cuda", bf16)
    return {**out, "precision": precision, "tf32": bool(cfg.train.tf32 and device == "cuda"),
            "deterministic": cfg.train.deterministic, "device": device, "device_name": name}  # fmt: skip


def _flat(rec: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in rec.items():
        if key in INFORMATIONAL:
            continue
        if isinstance(value, Mapping):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


# The order differences are named in: numerics first (what `auto` hides), then the code, then package versions.
_ORDER = ("precision", "tf32", "deterministic", "device", "mer_commit", "dirty", "mer_version")


def regime_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """`key: old → new` for every regime field that differs (device name excluded): numerics, code, versions."""
    a, b = _flat(old), _flat(new)
    rank = lambda k: (_ORDER.index(k) if k in _ORDER else len(_ORDER), k)  # noqa: E731
    return [f"{k}: {a.get(k)} → {b.get(k)}" for k in sorted(set(a) | set(b), key=rank) if a.get(k) != b.get(k)]


def regime_key(rec: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """A hashable form of a regime's compared fields (two folds with the same key ran under the same regime)."""
    return tuple(sorted((k, repr(v)) for k, v in _flat(rec).items()))


def describe_regime(rec: Mapping[str, Any]) -> str:
    """One line: commit (+dirty), precision / TF32 / deterministic / device, then the key versions."""
    commit = str(rec.get("mer_commit") or f"mer {rec.get('mer_version') or 'unknown'}")[:12]
    numerics = (f"precision {rec.get('precision')}, tf32 {rec.get('tf32')}, deterministic {rec.get('deterministic')}, "
                f"{rec.get('device')} ({rec.get('device_name')})")  # fmt: skip
    pkgs = ", ".join(f"{k} {v}" for k, v in (rec.get("versions") or {}).items())
    return f"commit {commit}{'+dirty' if rec.get('dirty') else ''}; {numerics}; {pkgs}"


def write_run_info(cfg: Config, out_dir: str | Path, command: str | None = None, trains: bool = True) -> Path:
    """Write `config.yaml` (fully resolved) and `run_info.json` (versions, seed, git commit, command) to out_dir,
    each atomically (a resumed run compares against config.yaml, so it must never be half written).

    `trains=False` (`mer prepare`): no training precision is resolved, which would import torch to ask for CUDA."""
    out = Path(out_dir)
    atomic_write_text(out / CONFIG_FILE, to_yaml(cfg))
    numerics: dict[str, Any] = {"tf32": cfg.train.tf32, "deterministic": cfg.train.deterministic,
                                "threads": cfg.train.threads}  # fmt: skip
    info: dict[str, Any] = {
        "seed": cfg.seed,
        "git_commit": git_commit(),
        "command": command if command is not None else " ".join(sys.argv),
        "versions": versions(),
        "numerics": numerics,
    }
    if trains:
        precision, channels_last = resolve_precision(cfg.train, *trainer_on_cuda(cfg.train))  # "auto" resolved here
        info["numerics"] = {"precision": precision, **numerics}
        info["resolved"] = {"train.precision": precision, "train.channels_last": channels_last}
    atomic_write_json(out / RUN_INFO_FILE, info)
    return out / CONFIG_FILE


def fixed_selection() -> dict[str, Any]:
    """The selection record of values that come from the config alone (set by hand, no search)."""
    return {"method": "fixed"}


def from_study_selection(
    study: str,
    storage: str | None,
    objective: str,
    inner_subjects: Iterable[str] | None,
    params: Mapping[str, Any],
    **facts: Any,
) -> dict[str, Any]:
    """The record of values taken from a study: its objective, storage (password masked) and the subjects its trials
    were scored on (`inner_subjects` None: the study does not say); `facts` adds e.g. the trial or edited keys."""
    return {
        "method": "from-study",
        "study": study,
        "storage": storage,
        "objective": objective,
        "inner_subjects": sorted(inner_subjects) if inner_subjects is not None else None,
        "params": dict(params),
        **facts,
    }


def unverified_selection(reference: str, reason: str) -> dict[str, Any]:
    """The record of values said to come from study `reference` when that study could not be read (`reason`)."""
    return {"method": "unverified", "study": reference, "reason": reason}


def nested_selection(
    storage: str, study_prefix: str, sweep: str, folds: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The record of a nested run: the storage, the study prefix and, per outer fold, its study, test and inner
    subjects (`{fold: {"study", "test_subjects", "inner_subjects"}}`)."""
    return {"method": "nested", "storage": storage, "study_prefix": study_prefix, "sweep": sweep,
            "folds": {name: dict(rec) for name, rec in folds.items()}}  # fmt: skip


def config_selection(cfg: Config) -> dict[str, Any]:
    """The record a command that opens no study can write for `cfg`: fixed, or unverified when the config names the
    study that chose its values (`selected_by`; `mer loso` and `mer pretrain` open it instead)."""
    if cfg.selected_by:
        return unverified_selection(cfg.selected_by, "this command does not open studies")
    return fixed_selection()
