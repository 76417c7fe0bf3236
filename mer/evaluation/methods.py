"""`mer compare conf/method/*.yaml`: several methods through one leakage-free harness in one resumable command.

For each method config (a YAML file; `--config` overlays and `key=value` overrides stacked on every one): prepare its
input into `OUT/prepared/<input>/` (one folder per distinct prepare setting, shared by methods that need the same;
an existing folder prepared with the same settings, such as the configured `data.prepared`, is used as it is, and a
new one starts from the crops already cached in the others), pre-train into `OUT/pretrain/<method>/` when the method
transfers (`loso.transfer`), run LOSO over `loso.seeds` into `OUT/runs/<method>/` (`run_seeds`: complete seeds and
folds are skipped), then write the Methods table (`compare_runs`) to OUT/compare.{md,html,csv,json}.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mer.config import MOTION_INPUTS, Config, as_override, load_config, to_yaml
from mer.errors import ConfigError, MerError
from mer.evaluation.bootstrap import RESAMPLES, SEED
from mer.evaluation.compare import compare_runs
from mer.evaluation.pool import shared_fold_pool
from mer.evaluation.seeds import run_seeds
from mer.prepare import run_prepare
from mer.train import run_pretrain

# Face settings that change how a run executes, not the crops it gets.
FACE_EXECUTION_KEYS = ("device", "batch_size", "workers")


@dataclass(frozen=True)
class Method:
    """One method of a comparison: its name (the file's stem, which names its folders), file and resolved config."""

    name: str
    path: Path
    cfg: Config


def load_methods(
    paths: Sequence[str | Path], overlays: Sequence[str] = (), overrides: Sequence[str] = ()
) -> list[Method]:
    """Each method file with the overlays stacked on it and the overrides on top; a bad file is a one-line error."""
    if not paths:
        raise MerError("give at least one method config, e.g. mer compare conf/method/*.yaml")
    methods: list[Method] = []
    for item in paths:
        path = Path(item)
        if not path.is_file():
            raise ConfigError(f"method file not found: {path} (give YAML files such as conf/method/ststnet.yaml)")
        if path.suffix not in (".yaml", ".yml"):
            raise ConfigError(f"{path}: a method file is a YAML config (.yaml), e.g. conf/method/ststnet.yaml")
        try:
            cfg = load_config([path, *overlays], list(overrides))
        except ConfigError as exc:
            text = str(exc)
            raise ConfigError(text if str(path.resolve()) in text or str(path) in text else f"{path}: {text}") from None
        other = next((m for m in methods if m.name == path.stem), None)
        if other is not None:
            raise ConfigError(f"{path} and {other.path} are both named '{path.stem}' (each method's folders are "
                              "named after its file): rename one")  # fmt: skip
        methods.append(Method(path.stem, path, cfg))
    return methods


def _resolved(path: str | None) -> str | None:
    return str(Path(path).expanduser().resolve()) if path else None


def prepare_key(cfg: Config) -> dict[str, Any]:
    """The settings that decide what `mer prepare` writes: sample set, face crops, input, flow and LBP-TOP features."""
    lbptop = cfg.model.backbone == "lbptop"
    data: dict[str, Any] = {
        "roots": {k: _resolved(v) for k, v in sorted(cfg.data.roots.items())},
        "megc_list": _resolved(cfg.data.megc_list),
        "smic_apex": cfg.data.smic_apex,
        "missing_apex": cfg.data.missing_apex,
        "input": cfg.data.input,
    }
    if cfg.data.input in MOTION_INPUTS:
        data["flow_method"] = cfg.data.flow_method
    if cfg.data.input in MOTION_INPUTS or lbptop:
        data["flow_fallback"] = cfg.data.flow_fallback
    face = {k: v for k, v in asdict(cfg.face).items() if k not in FACE_EXECUTION_KEYS}
    return {"data": data, "face": face, "lbptop": asdict(cfg.lbptop) if lbptop else False}


def prepare_name(cfg: Config) -> str:
    """A readable folder name for a prepare setting: `apex`, `flow_strain-farneback`, `apex-lbptop`."""
    name = cfg.data.input + (f"-{cfg.data.flow_method}" if cfg.data.input in MOTION_INPUTS else "")
    return name + ("-lbptop" if cfg.model.backbone == "lbptop" else "")


def _digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]


def prepared_matches(folder: Path, key: dict[str, Any]) -> bool:
    """`folder` holds a finished `mer prepare` output (prepared.csv) made with the settings in `key`."""
    if not (folder / "prepared.csv").is_file() or not (folder / "config.yaml").is_file():
        return False
    try:
        return prepare_key(load_config(folder / "config.yaml")) == key
    except MerError:  # a config of another version or hand-edited: not known to match
        return False


def seed_crop_cache(target: Path, sources: Sequence[Path]) -> int:
    """Link (or copy) every cached file of the sources' `crops/` that `target/crops/` lacks; returns how many.

    The cache is content-addressed, so a file with the same relative path is the same crop, detection or array."""
    added = 0
    for source in sources:
        root = source / "crops"
        if not root.is_dir() or root.resolve() == (target / "crops").resolve():
            continue
        for file in root.rglob("*"):
            dest = target / "crops" / file.relative_to(root)
            if not file.is_file() or dest.exists():
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(file, dest)
            except OSError:  # another file system, or links not allowed
                shutil.copy2(file, dest)
            added += 1
    return added


def plan_prepared(methods: Sequence[Method], out: Path) -> dict[str, Path]:
    """Method name → its prepared folder: the configured `data.prepared` when it matches, else `OUT/prepared/<input>`
    (one per distinct prepare setting; a name shared by two settings gets the setting's digest appended)."""
    keys = {m.name: prepare_key(m.cfg) for m in methods}
    names: dict[str, str] = {}  # digest → folder name
    plan: dict[str, Path] = {}
    for m in methods:
        digest = _digest(keys[m.name])
        configured = Path(m.cfg.data.prepared)
        if prepared_matches(configured, keys[m.name]):
            plan[m.name] = configured
            continue
        if digest not in names:
            name = prepare_name(m.cfg)
            names[digest] = f"{name}-{digest}" if name in names.values() else name
        plan[m.name] = out / "prepared" / names[digest]
    return plan


def _with(cfg: Config, *overrides: str) -> Config:
    return load_config(text=to_yaml(cfg), overrides=list(overrides))


def _prepare(method: Method, folder: Path, known: Sequence[Path]) -> Config:
    """The method's config on `folder`, preparing it first unless it already matches."""
    cfg = _with(method.cfg, as_override("data.prepared", str(folder)))
    if prepared_matches(folder, prepare_key(cfg)):
        print(f"[{method.name}] prepared {cfg.data.input} data: reusing {folder}")
        return cfg
    folder.mkdir(parents=True, exist_ok=True)
    linked = seed_crop_cache(folder, [p for p in known if p != folder])
    print(f"[{method.name}] preparing {prepare_name(cfg)} into {folder}"
          + (f" (started from {linked} cached files of the other prepared folders)" if linked else ""))  # fmt: skip
    run_prepare(cfg)
    return cfg


def _pretrain(method: Method, cfg: Config, folder: Path) -> Path | None:
    """The method's pre-trained weights: None without transfer, reused when `folder` finished with this config."""
    if not cfg.loso.transfer:
        return None
    weights = folder / "pretrained.pt"
    saved = folder / "config.yaml"
    done = (folder / "pretrain.json").is_file() and weights.is_file() and saved.is_file()
    if done and saved.read_text() == to_yaml(cfg):
        print(f"[{method.name}] pre-trained weights: reusing {weights}")
        return weights
    print(f"[{method.name}] pre-training into {folder}")
    return run_pretrain(cfg, folder)


def run_compare(
    methods: Sequence[Method],
    out: str | Path,
    *,
    seeds: Sequence[int] | None = None,
    resamples: int = RESAMPLES,
    bootstrap_seed: int = SEED,
) -> Path:
    """Prepare, pre-train (where the method transfers) and run LOSO over the seeds for every method, then the one
    comparison table; `seeds` replaces every method's `loso.seeds`. Rerunning skips finished work. Returns compare.md.
    """
    out = Path(out)
    plan = plan_prepared(methods, out)
    known = list(dict.fromkeys([*plan.values(), *(Path(m.cfg.data.prepared) for m in methods)]))
    runs = []
    with shared_fold_pool():  # methods with the same worker settings share one set of fold processes
        for i, method in enumerate(methods):
            print(f"method {i + 1}/{len(methods)}: {method.name} ({method.path})")
            cfg = _prepare(method, plan[method.name], known)
            weights = _pretrain(method, cfg, out / "pretrain" / method.name)  # before --seeds: the seeds reuse it
            if seeds is not None:
                cfg = _with(cfg, as_override("loso.seeds", list(seeds)))
            run_dir = out / "runs" / method.name
            run_seeds(cfg, run_dir, weights)
            runs.append(run_dir)
    md = compare_runs(runs, out, resamples=resamples, seed=bootstrap_seed)
    print(f"comparison of {len(runs)} methods → {md}")
    return md
