"""Sweep files (`sweeps/*.yaml`): what is searched, how, and how each trial is scored.

A sweep file names an Optuna study, a base experiment config (+ overrides), a sampler (`grid` with explicit
values or `tpe` with ranges), the training stage whose hyper-parameters are swept, a pruner, the objective
(grouped inner folds over training subjects, or the leaky plain LOSO that papers used) and its metric. Any
dotted config key can be a search dimension; every key and value is checked against `mer.config.Config`
before a single trial runs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from mer.config import Config, as_override, error_line, format_value, ignored_keys, load_config, resolve_config_path
from mer.constraints import CLASSIFIERS, STAGES, Constraint, Interval, OneOf, check_constraints
from mer.data.prepared import ARRAY_COLUMNS
from mer.errors import ConfigError

SAMPLERS = ("grid", "tpe")
OBJECTIVES = ("inner_loso", "leaky_loso")
METRICS = ("uf1", "uar", "accuracy")
DIRECTIONS = ("maximize", "minimize")
PRUNERS = ("none", "median", "hyperband", "threshold")

Scalar = str | int | float | bool | None
# Overrides that change speed or logging, not results: a study may be resumed with other values of these (worker
# counts too: augmentation is seeded per sample from seed, stage, epoch and position, mer.data.transforms.draw_seed).
# data.prepared (where the prepared table is read from) is here because the table's content is in the identity
# (data_fingerprint: ids, labels and each crop's pipeline hash + content key).
NO_EFFECT = (
    "train.threads",
    "logging.",
    "data.num_workers",
    "data.pin_memory",
    "data.persistent_workers",
    "data.prepared",
)
# Keys `mer prepare` used to make the crops: trials train on the prepared data, so searching them changes nothing.
PREPARE_KEYS = ("face.", "data.roots", "data.megc_list", "data.smic_apex", "data.prepared")


@dataclass
class ParamSpace:
    """One search dimension: explicit `values` (grid points or TPE choices) or a numeric range for TPE."""

    key: str
    values: list[Scalar] | None = None
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None

    @property
    def kind(self) -> str:
        """'choices' (explicit values), 'int' (integer range) or 'float' (real range)."""
        if self.values is not None:
            return "choices"
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high))
        return "int" if ints and (self.step is None or isinstance(self.step, int)) else "float"

    def describe(self) -> str:
        """Short human form: `[16, 32, 64]` or `1e-4..0.05 log`."""
        if self.values is not None:
            return "[" + ", ".join(format_value(v) for v in self.values) + "]"
        extra = " log" if self.log else (f" step {self.step}" if self.step is not None else "")
        return f"{format_value(self.low)}..{format_value(self.high)}{extra}"


@dataclass
class PrunerConfig:
    """Optuna pruner settings. Steps are inner folds (pooled metric so far), see `docs/sweeps.md`."""

    type: str = "none"
    n_startup_trials: int = 5  # median: trials that are never pruned, to gather statistics
    n_warmup_steps: int = 0  # median/threshold: no pruning before this step
    interval_steps: int = 1
    min_resource: int = 1  # hyperband
    max_resource: int | str = "auto"
    reduction_factor: int = 3
    lower: float | None = None  # threshold: prune when the reported value is below (maximize) ...
    upper: float | None = None  # ... or above this
    epochs: bool = False  # also report val/uf1 per epoch of inner fold 0 (PyTorchLightningPruningCallback)


@dataclass
class SweepConfig:
    """A parsed sweep file (see `sweeps/paper_grid.yaml` for every field with comments)."""

    study: str
    search: dict[str, ParamSpace]
    base: str | list[str] = "default"  # a config name/path, or several stacked (paper + ablation/resnet18)
    overrides: list[str] = field(default_factory=list)
    sampler: str = "grid"
    seed: int = 0
    n_startup_trials: int = 10  # TPE: random trials before the model is used
    n_trials: int | None = None  # study budget (COMPLETE + PRUNED); grid: default = grid size
    stage: str = "finetune"
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    objective: str = "inner_loso"
    metric: str = "uf1"
    direction: str = "maximize"
    classifier: str = "svm"
    inner_folds: int = 4
    exclude_subjects: list[str] = field(default_factory=list)
    out: str | None = None
    prepared: str | None = None
    pretrained: str | None = None
    source: str = "<sweep>"  # where it was read from, for error messages

    @property
    def leaky(self) -> bool:
        """True when trials are scored on the LOSO test folds themselves (papers' practice; biased)."""
        return self.objective == "leaky_loso"

    @property
    def out_dir(self) -> Path:
        """Folder for the default storage and the trials' files."""
        return Path(self.out or f"runs/sweeps/{self.study}")

    def grid(self) -> list[dict[str, Scalar]]:
        """Every grid point (sorted keys, values in file order); empty for TPE."""
        if self.sampler != "grid":
            return []
        keys = sorted(self.search)
        combos = itertools.product(*(self.search[k].values or [] for k in keys))
        return [dict(zip(keys, c, strict=True)) for c in combos]

    def budget(self) -> int | None:
        """Trials the study needs in total: n_trials, capped by (or defaulting to) the grid size."""
        if self.sampler == "grid":
            size = len(self.grid())
            return min(size, self.n_trials) if self.n_trials else size
        return self.n_trials

    def base_overrides(self, cli_overrides: list[str] | tuple[str, ...] = ()) -> list[str]:
        """The overrides every trial starts from: the sweep file's (its `prepared` as data.prepared), then the
        command line's."""
        prepared = [as_override("data.prepared", self.prepared)] if self.prepared else []
        return [*self.overrides, *prepared, *cli_overrides]

    def identity(self, cli_overrides: list[str] | tuple[str, ...] = (), extra: dict[str, Any] | None = None) -> str:
        """JSON of everything that makes trials comparable; a resumed study must have the same."""
        overrides = [o for o in self.base_overrides(cli_overrides) if not o.split("=", 1)[0].startswith(NO_EFFECT)]
        ident = {
            "base": self.base,
            "overrides": overrides,
            "search": {k: asdict(v) for k, v in sorted(self.search.items())},
            "sampler": self.sampler,
            "seed": self.seed if self.sampler == "grid" else None,
            "stage": self.stage,
            "objective": self.objective,
            "metric": self.metric,
            "direction": self.direction,
            "classifier": self.classifier,
            "inner_folds": self.inner_folds if self.objective == "inner_loso" else None,
            "exclude_subjects": sorted(self.exclude_subjects),
            **(extra or {}),
        }
        return json.dumps(ident, sort_keys=True, default=str)


def apply_flags(
    spec: SweepConfig,
    *,
    out: str | Path | None = None,
    base: str | Sequence[str] | None = None,
    holdout: Sequence[str] = (),
    pretrained: str | Path | None = None,
) -> SweepConfig:
    """The sweep with the command line's values of its own keys: `--out` → out, `--config` (one or several,
    stacked) → base, `--holdout` → added to exclude_subjects, `--pretrained` → pretrained."""
    changes: dict[str, Any] = {}
    if out is not None:
        changes["out"] = str(out)
    if base:
        changes["base"] = base if isinstance(base, str) else (list(base) if len(base) > 1 else base[0])
    if holdout:
        changes["exclude_subjects"] = sorted(set(spec.exclude_subjects) | set(holdout))
    if pretrained:
        changes["pretrained"] = str(pretrained)
    return replace(spec, **changes)


def _number(value: Any, where: str) -> Any:
    """YAML 1.1 reads `1e-4` as a string: turn numeric strings into floats, leave other values alone."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: {value} is not a finite number")
    return value


def _scalar(value: Any, where: str) -> Scalar:
    value = _number(value, where)
    if value is not None and not isinstance(value, (str, int, float, bool)):
        raise ConfigError(f"{where}: {value!r} is not a single value (search values must be numbers, strings or bools)")
    return value


def _parse_space(key: str, raw: Any, sampler: str, where: str) -> ParamSpace:
    here = f"{where}: search.{key}"
    if isinstance(raw, (list, tuple)):
        raw = {"choices": list(raw)}
    if not isinstance(raw, dict):
        raw = {"choices": [raw]}
    allowed = {"choices", "values", "low", "high", "log", "step"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{here}: unknown field(s) {unknown}; use a list of values or low/high/log/step")
    values = raw.get("choices", raw.get("values"))
    if values is not None:
        if not isinstance(values, (list, tuple)) or len(values) == 0:
            raise ConfigError(f"{here}: has no values (empty grid); give at least one value, e.g. [0.001, 0.01]")
        vals = [_scalar(v, here) for v in values]
        if len({json.dumps(v) for v in vals}) != len(vals):
            raise ConfigError(f"{here}: repeats a value in {vals}")
        return ParamSpace(key, values=vals)
    if sampler == "grid":
        raise ConfigError(f"{here}: the grid sampler needs explicit values (a list); ranges are for 'sampler: tpe'")
    if "low" not in raw or "high" not in raw:
        raise ConfigError(f"{here}: a range needs both 'low' and 'high' (or give a list of choices)")
    low, high, step = (_number(raw.get(k), here) for k in ("low", "high", "step"))
    log = bool(raw.get("log", False))
    for name, v in (("low", low), ("high", high), ("step", step)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ConfigError(f"{here}: {name} must be a number, got {v!r}")
    if not low < high:
        raise ConfigError(f"{here}: low ({low}) must be smaller than high ({high})")
    if log and low <= 0:
        raise ConfigError(f"{here}: a log range needs low > 0 (got {low})")
    if log and step is not None:
        raise ConfigError(f"{here}: use either log or step, not both")
    return ParamSpace(key, low=low, high=high, log=log, step=step)


# The sweep file's keys on their own (`mer.constraints`'s table form); `sweep_from_dict` checks them once.
SWEEP_CONSTRAINTS: dict[str, Constraint] = {
    "sampler": OneOf(SAMPLERS),
    "stage": OneOf(STAGES),
    "objective": OneOf(OBJECTIVES),
    "metric": OneOf(METRICS),
    "direction": OneOf(DIRECTIONS),
    "classifier": OneOf(CLASSIFIERS),
    "pruner.type": OneOf(PRUNERS),
    "seed": Interval(0, integer=True),
    "n_startup_trials": Interval(0, integer=True),
    "inner_folds": Interval(2, integer=True),
    "n_trials": Interval(1, integer=True, optional=True),
}


def _shorthands(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """The file's short forms in `SweepConfig`'s shape: `sampler: {type, seed, n_startup_trials}` → sampler, seed,
    n_startup_trials; `pruner: median` → {type: median}; `overrides` as a mapping → `key=value` items; a
    comma-separated `exclude_subjects` → a list. A null value means the default."""
    raw = {k: v for k, v in raw.items() if v is not None and k != "search"}
    if "source" in raw:  # set by the loader, never by the file
        raise ConfigError(f"{where}: unknown field(s) ['source']")
    sampler = raw.get("sampler")
    if isinstance(sampler, dict):
        extra = sorted(set(sampler) - {"type", "seed", "n_startup_trials"})
        if extra:
            raise ConfigError(f"{where}: unknown sampler field(s) {extra}; allowed: type, seed, n_startup_trials")
        raw.update({k: sampler[k] for k in ("seed", "n_startup_trials") if k in sampler})
        raw["sampler"] = sampler.get("type", "grid")
    if isinstance(raw.get("pruner"), str):
        raw["pruner"] = {"type": raw["pruner"]}
    if isinstance(raw.get("overrides"), dict):
        raw["overrides"] = [as_override(str(k), v) for k, v in raw["overrides"].items()]
    for key in ("overrides", "exclude_subjects"):
        if isinstance(raw.get(key), str):
            raw[key] = raw[key].replace(",", " ").split() if key == "exclude_subjects" else [raw[key]]
    return raw


def sweep_from_dict(raw: dict[str, Any], source: str = "<sweep>", base_dir: Path | None = None) -> SweepConfig:
    """Build and check a `SweepConfig` from a parsed YAML mapping: merged into the `SweepConfig` schema by OmegaConf
    (unknown fields, wrong types), then `SWEEP_CONSTRAINTS` and the search spaces; each error one line."""
    where = source
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping (study, base, sampler, search, ...) at the top level")
    if not raw.get("study"):
        raise ConfigError(f"{where}: 'study' (the Optuna study name) is missing")
    schema = OmegaConf.structured(SweepConfig(study="", search={}))
    try:
        spec: SweepConfig = OmegaConf.to_object(OmegaConf.merge(schema, _shorthands(raw, where)))  # type: ignore[assignment]
    except ConfigKeyError as exc:
        cls = PrunerConfig if str(exc.full_key).startswith("pruner.") else SweepConfig
        allowed = ", ".join(sorted(f.name for f in fields(cls) if f.name != "source"))
        raise ConfigError(f"{where}: unknown field(s) ['{exc.full_key}']; allowed: {allowed}") from None
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{where}: {error_line(exc)}") from None
    check_constraints(spec, SWEEP_CONSTRAINTS, where)
    if spec.pruner.type == "threshold" and spec.pruner.lower is None and spec.pruner.upper is None:
        raise ConfigError(f"{where}: the threshold pruner needs 'lower' or 'upper'")
    if spec.sampler == "tpe" and not spec.n_trials:
        raise ConfigError(f"{where}: the tpe sampler needs n_trials (the study's budget)")
    search_raw = raw.get("search")
    if not isinstance(search_raw, dict) or not search_raw:
        raise ConfigError(
            f"{where}: 'search' is empty; map config keys to values, e.g. train.finetune.lr: [0.001, 0.01]"
        )
    search = {str(k): _parse_space(str(k), v, spec.sampler, where) for k, v in search_raw.items()}
    bases = [str(b) for b in spec.base] if isinstance(spec.base, list) else [str(spec.base)]
    if not bases:
        raise ConfigError(f"{where}: base is an empty list; give a config name or path (e.g. paper)")
    bases = [str(base_dir / b) if base_dir is not None and (base_dir / b).is_file() else b for b in bases]
    base = bases[0] if len(bases) == 1 else bases
    return replace(spec, search=search, base=base, source=source)


def load_sweep(path: str | Path) -> SweepConfig:
    """Read a sweep YAML file; `base` is looked up next to the file first, then as a shipped config name."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file not found: {path} (e.g. sweeps/demo_grid.yaml)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from None
    return sweep_from_dict(raw, source=str(path), base_dir=path.parent)


def base_config(spec: SweepConfig, cli_overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The config every trial starts from (base file ← sweep overrides ← command-line overrides)."""
    try:
        for item in [spec.base] if isinstance(spec.base, str) else spec.base:
            resolve_config_path(item)
        return load_config(spec.base, spec.base_overrides(cli_overrides))
    except ConfigError as exc:
        raise ConfigError(f"{spec.source}: base config: {exc}") from None


def trial_overrides(params: dict[str, Any]) -> list[str]:
    """A trial's parameters as dotted `key=value` overrides (sorted by key)."""
    return [as_override(k, v) for k, v in sorted(params.items())]


def check_space(spec: SweepConfig, cli_overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Check every search key and boundary value against the config; returns the base config.

    An unknown key, a value of the wrong type, a choice the config does not allow, a key of the stage that is
    not swept (train.pretrain.* with `stage: finetune`), or a key whose value has no effect under the chosen
    settings (see `_no_effect`) is a one-line `ConfigError` naming the sweep file.
    """
    cfg = base_config(spec, cli_overrides)
    overrides = spec.base_overrides(cli_overrides)
    for key, space in spec.search.items():
        if spec.stage == "finetune" and key.startswith("train.pretrain."):
            raise ConfigError(
                f"{spec.source}: search key '{key}' has no effect with 'stage: finetune' (use stage: pretrain)"
            )
        for value in _probes(space):
            try:
                load_config(spec.base, [*overrides, as_override(key, value)])
            except ConfigError as exc:
                raise ConfigError(f"{spec.source}: search key '{key}': {exc}") from None
    for key in spec.search:
        reason = _no_effect(spec, key, cfg, overrides)
        if reason:
            raise ConfigError(f"{spec.source}: search key '{key}' has no effect: {reason}")
    return cfg


def _probes(space: ParamSpace) -> list[Any]:
    return list(space.values) if space.values is not None else [space.low, space.high]


def _reason(spec: SweepConfig, key: str, cfg: Config) -> str | None:
    """Why `key` changes nothing in a trial run with `cfg`, or None when it matters."""
    if key.startswith(PREPARE_KEYS):
        return "it is used by `mer prepare`; trials train on the prepared crops (prepare again to compare settings)"
    if key.startswith("svm.") and spec.classifier == "softmax":
        return "the sweep scores the network's own predictions (classifier: softmax), not the SVM's"
    stages = ("finetune",) if spec.stage == "finetune" else ("pretrain", "finetune")  # what a trial trains
    if key.startswith("augment.jitter") and not set(stages) & set(cfg.augment.jitter_stages):
        return f"the pixel jitter is off in a {spec.stage} trial (augment.jitter_stages={cfg.augment.jitter_stages})"
    return ignored_keys(cfg).get(key)


def _no_effect(spec: SweepConfig, key: str, cfg: Config, overrides: list[str]) -> str | None:
    """The reason `key` has no effect in any trial, or None if it matters in one.

    Whether a key is used never depends on its own value, so the base config `cfg` decides, unless another searched
    key can switch it on: then each value of every other searched key is tried (`momentum` is fine when `optimizer`
    is searched over sgd and adam)."""
    reason = _reason(spec, key, cfg)
    if reason is None:
        return None
    for other in spec.search:
        if other == key:
            continue
        for value in _probes(spec.search[other]):
            if _reason(spec, key, load_config(spec.base, [*overrides, as_override(other, value)])) is None:
                return None
    return reason


def data_fingerprint(rows: Any) -> str:
    """Short hash of the data a study is scored on (resuming on other data is refused): sample ids, subjects, labels
    and what `mer prepare` made of them, each crop / motion input / LBP-TOP feature by its cache name (the crop
    pipeline's settings hash + content key, `mer.face.cache.cache_name`), so crops prepared with other settings (eye
    mask off, another size) are other data, while moving the prepared folder is not."""
    from mer.face.cache import cache_name  # the cache layout's owner; imported here to keep `mer sweep --help` light

    cols = [c for c in ("sample_id", "subject", "label", "kind", "motion_input") if c in rows.columns]
    table = rows[cols].astype(str)
    for col in ("crop", *ARRAY_COLUMNS):
        if col in rows.columns:
            table[col] = [cache_name(p) if isinstance(p, str) else "" for p in rows[col]]
    text = table.sort_values(cols).to_csv(index=False)
    return hashlib.sha1(text.encode()).hexdigest()[:12]
