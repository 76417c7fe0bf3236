"""Allowed values and ranges of every setting, in one table per file kind, checked once when the file is loaded.

Modelled on scikit-learn's `_parameter_constraints`: a mapping from a dotted key to a constraint (`OneOf` a set of
values, an `Interval`, or `Each` element of a list). This module owns the value sets; the modules that act on a
setting import them from here (the regularisers of `mer.models.module`, the readers' `missing_apex` policies, the
sweep's classifiers). It imports nothing from mer, so every layer may use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mer.errors import ConfigError

# Backbone → number of stages between stem and head in timm's coarse parameter groups (what `stage<N>` / `top<N>`
# unfreeze depths count). A static table so that config needs no timm; tests/test_backbones.py checks it against
# `mer.models.backbones.MERNet.stage_groups()` for every backbone.
BACKBONE_STAGES: dict[str, int] = {
    "mobilevit_xxs": 5,
    "mobilevit_xs": 5,
    "mobilevit_s": 5,
    "mobilenetv2_100": 7,
    "mobilenetv3_large_100": 7,
    "resnet18": 4,
    "deit_tiny_patch16_224": 12,
}
BACKBONES = tuple(BACKBONE_STAGES)  # the timm networks (`mer.models.backbones.MERNet`)
# The small flow networks of issue #17 (`mer.models.ststnet`, `mer.models.off_apexnet`): stages as for timm above.
FLOW_BACKBONE_STAGES: dict[str, int] = {"ststnet": 0, "off_apexnet": 2}
FEATURE_BACKBONES = ("lbptop",)  # no network: fixed features (LBP-TOP of the aligned clip) straight into the SVM
ALL_BACKBONES = (*BACKBONES, *FLOW_BACKBONE_STAGES, *FEATURE_BACKBONES)
# data.input → what the network sees, and how many channels (model.in_chans follows it, see `input_channels`).
INPUT_CHANNELS: dict[str, int] = {"apex": 1, "apex_minus_onset": 1, "flow": 2, "flow_strain": 3}
MOTION_INPUTS = tuple(k for k in INPUT_CHANNELS if k != "apex")  # computed by `mer prepare` from onset and apex
FLOW_METHODS = ("farneback", "tvl1")
FLOW_METHOD_CHOICES = (*FLOW_METHODS, "auto")  # data.flow_method; auto is resolved to one of FLOW_METHODS on load
BALANCE = ("epoch", "iteration", "none")  # data.balance (mer.data.datamodule)
LBP_METHODS = ("uniform", "nri_uniform", "ror", "default")  # scikit-image's LBP codes (mer.face.lbptop)
SVM_KERNELS = ("linear", "rbf", "poly", "sigmoid")  # sklearn's SVC kernels that work on embeddings (no precomputed)
SVM_GAMMA_NAMES = ("scale", "auto")
LOSO_PROTOCOLS = ("composite", "per_dataset", "lodo", "dfme")  # loso.protocol (mer.evaluation.loso.plan_folds)
MISSING_APEX = ("spot", "middle", "skip")  # what a reader does with a clip that has no apex label
SMIC_APEX = ("middle", "spot")  # SMIC has no apex labels at all: its middle frame (the paper) or spotted
CLASSIFIERS = ("svm", "softmax")  # what a LOSO run's headline (and a sweep's objective) scores
STAGES = ("pretrain", "finetune")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "cosine", "step", "plateau")
REGULARIZATION = ("l2", "decoupled", "both", "none")
# Which `regularization` values switch each regulariser on (the stage key holding its scale → those values).
REGULARISERS: dict[str, tuple[str, ...]] = {"l2": ("l2", "both"), "weight_decay": ("decoupled", "both")}


def _show(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class OneOf:
    """The value is one of `values`."""

    values: tuple[Any, ...]

    def problem(self, value: Any) -> str | None:
        """Why `value` is refused (the text after the key), or None when it is allowed."""
        ok = any(value is v or (type(value) is type(v) and value == v) for v in self.values)
        return None if ok else f"'{_show(value)}' is not allowed; choose one of: {self.listing()}"

    def listing(self) -> str:
        """The allowed values, comma-separated."""
        return ", ".join(_show(v) for v in self.values)

    def rule(self) -> str:
        """`must be one of: a, b`."""
        return f"must be one of: {self.listing()}"


@dataclass(frozen=True)
class Interval:
    """A number between `low` and `high` (None: unbounded); `closed` as in scikit-learn: both, left, right, neither."""

    low: float | None = None
    high: float | None = None
    closed: str = "both"
    integer: bool = False
    optional: bool = False  # null is allowed too

    def problem(self, value: Any) -> str | None:
        """Why `value` is refused, or None when it is allowed."""
        if value is None and self.optional:
            return None
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and self.integer and not float(value).is_integer():
            number = False
        if number and math.isfinite(value) and self._inside(value):
            return None
        return f"{_show(value)} is not allowed; {self.rule()}"

    def _inside(self, v: float) -> bool:
        lo_ok = self.low is None or (v >= self.low if self.closed in ("both", "left") else v > self.low)
        hi_ok = self.high is None or (v <= self.high if self.closed in ("both", "right") else v < self.high)
        return lo_ok and hi_ok

    def rule(self) -> str:
        """`must be an integer >= 2`, `must be > 0 and <= 1`, ..."""
        parts = []
        if self.low is not None:
            parts.append(f"{'>=' if self.closed in ('both', 'left') else '>'} {_show(self.low)}")
        if self.high is not None:
            parts.append(f"{'<=' if self.closed in ('both', 'right') else '<'} {_show(self.high)}")
        return f"must be {'an integer' if self.integer else 'a number'} {' and '.join(parts)}".rstrip()


@dataclass(frozen=True)
class Each:
    """A list whose every element meets `inner`; `at_least` elements (0: an empty list is fine)."""

    inner: OneOf | Interval
    at_least: int = 0

    def problem(self, value: Any) -> str | None:
        """Why the list is refused (every bad element named), or None when it is allowed."""
        items = list(value or [])
        if len(items) < self.at_least:
            count = "one value" if self.at_least == 1 else f"{self.at_least} values"
            return f"give at least {count}; every value {self.inner.rule()}"
        bad = [v for v in items if self.inner.problem(v) is not None]
        return f"{bad} not allowed; every value {self.inner.rule()}" if bad else None

    def rule(self) -> str:
        """The rule for one element."""
        return self.inner.rule()


Constraint = OneOf | Interval | Each

_STAGE = {
    "optimizer": OneOf(OPTIMIZERS),
    "regularization": OneOf(REGULARIZATION),
    "scheduler": OneOf(SCHEDULERS),
    "l2": Interval(0),
    "weight_decay": Interval(0),
    "lr_decay": Interval(0),
}

# The experiment config (`mer.config.Config`): dotted key → constraint.
CONFIG_CONSTRAINTS: dict[str, Constraint] = {
    "model.backbone": OneOf(ALL_BACKBONES),
    "data.input": OneOf(tuple(INPUT_CHANNELS)),
    "data.flow_method": OneOf(FLOW_METHOD_CHOICES),
    "data.flow_fallback": OneOf(("skip", "zero")),
    "face.eye_mask": OneOf(("none", "rectangle", "ellipse")),
    "face.device": OneOf(("auto", "cpu", "cuda")),
    "data.smic_apex": OneOf(SMIC_APEX),
    "data.augment_on": OneOf(("cpu", "device")),
    "data.missing_apex": OneOf(MISSING_APEX),
    **{f"train.{stage}.{key}": c for stage in STAGES for key, c in _STAGE.items()},
    "train.precision": OneOf(("auto", "32-true", "16-mixed", "bf16-mixed")),
    "train.accelerator": OneOf(("auto", "cpu", "gpu", "cuda", "mps")),
    "train.channels_last": OneOf(("auto", True, False)),
    "loso.classifier": OneOf(CLASSIFIERS),
    "loso.protocol": OneOf(LOSO_PROTOCOLS),
    "data.balance": OneOf(BALANCE),
    "lbptop.grid": Each(Interval(1, integer=True), at_least=2),
    "lbptop.radius": Each(Interval(0, closed="neither"), at_least=3),
    "lbptop.points": Each(Interval(1, integer=True), at_least=3),
    "lbptop.method": OneOf(LBP_METHODS),
    "lbptop.frames": Interval(3, integer=True),
    "lbptop.size": Interval(8, integer=True),
    "augment.apply": OneOf(("all", "topups")),
    "augment.jitter_stages": Each(OneOf(STAGES)),
    "logging.wandb_mode": OneOf(("offline", "online", "auto", "disabled")),
    "svm.C": Each(Interval(0, closed="neither"), at_least=1),
    "svm.kernel": Each(OneOf(SVM_KERNELS), at_least=1),
    "svm.inner_folds": Interval(2, integer=True),  # grouped inner cross-validation needs at least 2 folds
    "svm.class_weight": OneOf((None, "balanced")),
}


def select(obj: Any, key: str) -> Any:
    """The value at dotted `key` of nested dataclasses / mappings."""
    for part in key.split("."):
        obj = obj[part] if isinstance(obj, Mapping) else getattr(obj, part)
    return obj


def check_value(key: str, value: Any, constraint: Constraint, where: str | None = None) -> None:
    """ConfigError `<where or key>: <why>` when `value` breaks `constraint`."""
    problem = constraint.problem(value)
    if problem is not None:
        raise ConfigError(f"{where or key}: {problem}")


def check_constraints(obj: Any, table: Mapping[str, Constraint], where: str = "") -> None:
    """Check every key of `table` in `obj` (a loaded config); the first broken one is a one-line ConfigError."""
    for key, constraint in table.items():
        check_value(key, select(obj, key), constraint, f"{where}: {key}" if where else key)
