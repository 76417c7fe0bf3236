"""Typed experiment config: dataclasses with defaults, merged from YAML files and dotted command-line overrides.

OmegaConf structured configs do the merging and type checking; this module adds `extends:` chains between YAML
files, named configs shipped with the package (`demo`, `paper`, ...) and readable one-line errors. What a run records
about the code and machine it ran on (`run_info.json`, resolved numerics) lives in `mer.provenance`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any  # noqa: UP035 - OmegaConf needs typing.Optional

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mer import class_schemes
from mer.config_text import (  # noqa: F401 - re-exported: the config's text in and out
    CONF_DIR,
    REPLACE_WHOLE,
    _merge,
    _parse_override,
    _read_yaml,
    _suggest,
    as_override,
    error_line,
    format_value,
    resolve_config_path,
)
from mer.constraints import (  # noqa: F401 - the allowed values, re-exported for the modules that import them here
    ALL_BACKBONES,
    BACKBONE_STAGES,
    BACKBONES,
    CLASSIFIERS,
    CONFIG_CONSTRAINTS,
    FEATURE_BACKBONES,
    FLOW_BACKBONE_STAGES,
    FLOW_METHODS,
    INPUT_CHANNELS,
    LOSO_PROTOCOLS,
    MISSING_APEX,
    MOTION_INPUTS,
    REGULARISERS,
    SVM_GAMMA_NAMES,
    SVM_KERNELS,
    check_constraints,
)
from mer.errors import ConfigError

CLASSES = class_schemes.SCHEMES["megc3"]  # the default scheme's classes (MEGC2019 composite)
CLASS_SCHEMES = tuple(class_schemes.SCHEMES)  # the values of data.classes (see mer.class_schemes)


@dataclass
class ModelConfig:
    """Which network, its input and head, and where its weights come from (a local file only)."""

    backbone: str = "mobilevit_s"
    in_chans: int = 1
    num_classes: int = 3
    drop_rate: float = 0.5
    weights: str | None = None  # local checkpoint to start from; never a hub download


@dataclass
class FaceConfig:
    """Face pipeline: MTCNN detection, rotation by the eye line, crop, resize and eye mask."""

    size: int = 256
    margin: float = 0.25  # extra border around the landmark-based face square (≈ the MTCNN box), fraction of its side
    rotate: bool = True
    refine_roll: bool = True  # refine the eye-line roll by left-right facial symmetry (MTCNN's eyes are 1–2° off)
    eye_mask: str = "rectangle"
    eye_mask_width: float = 0.5  # half-width of each eye's mask, as a fraction of the inter-eye distance
    eye_mask_height: float = 0.25  # half-height, as a fraction of the inter-eye distance
    min_face_size: int = 40
    device: str = "auto"
    batch_size: int = 16
    workers: int = 0  # processes for decoding/aligning; 0 = in the main process


@dataclass
class DataConfig:
    """Where datasets live and how samples are chosen; roots map dataset name to folder."""

    roots: dict[str, str] = field(default_factory=dict)
    megc_list: str | None = None  # combined_3class_gt.csv to select the MEGC2019 benchmark samples
    # class scheme: megc3 (negative, positive, surprise) | cas3_4 (+ others) | seven (basic emotions) | casme2_5;
    # a list of megc3 class names (configs written before schemes) still reads as megc3 with those classes
    classes: Any = class_schemes.DEFAULT
    smic_apex: str = "middle"  # SMIC has no apex labels at all: its middle frame (the paper) or "spot"
    missing_apex: str = "spot"  # clips without an apex label (CASME II "/", SAMM -1): spot | middle | skip
    prepared: str = "runs/prepared"  # folder written by `mer prepare` (manifest, crops, reports)
    image_size: int = 256  # network input size; crops are resized to it if they differ
    num_workers: int = 0
    pin_memory: bool = False
    persistent_workers: bool = False
    augment_on: str = "cpu"  # cpu: albumentations per sample; device: whole batches on the training device (kornia)
    # epoch: each class topped up to the largest per epoch; iteration: equal counts per batch; none: every training
    # sample once per epoch, shuffled (no top-ups)
    balance: str = "epoch"
    input: str = "apex"  # apex | apex_minus_onset | flow (u, v) | flow_strain (u, v, strain): onset→apex, aligned
    # farneback (OpenCV) | tvl1 (needs opencv-contrib-python-headless, [flow-tvl1]) | auto: tvl1 where installed, else
    # farneback, resolved when the config is loaded (so the run's config.yaml names the flow that ran)
    flow_method: str = "farneback"
    flow_fallback: str = "skip"  # a sample without usable motion (onset = apex, one frame, no onset face): skip | zero


@dataclass
class AugmentConfig:
    """Training-time augmentation: balancing shifts and flips, and the paper's pixel jitter."""

    max_shift: int = 8  # pixels, horizontal and vertical
    hflip: bool = True
    jitter_p: float = 0.0
    jitter_max: int = 20
    apply: str = "all"  # shifts/flips on every training sample (all) or only on the minority top-up copies (topups)
    jitter_stages: list[str] = field(default_factory=lambda: ["pretrain", "finetune"])  # stages the jitter runs in


@dataclass
class StageConfig:
    """One training stage (macro pre-training or micro fine-tuning)."""

    epochs: int = 30
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0  # decoupled (AdamW-style) weight decay; needs regularization decoupled | both
    regularization: str = "l2"  # regularisers on: l2 | decoupled | both | none (a scale set for one that is off fails)
    l2: float = 0.0  # Keras kernel_regularizer: l2 · Σw² over conv + linear kernels; needs regularization l2 | both
    lr_decay: float = 0.0  # Keras 2.2.4 optimizer `decay`: lr / (1 + lr_decay · optimizer steps); 0 = off
    train_bn: bool = False  # frozen BatchNorm normalises with batch statistics (before #13) instead of running stats
    scheduler: str = "none"
    val_subjects: float = 0.2  # fraction of training-side subjects held out for checkpoint selection
    patience: int = 0  # early-stopping patience in epochs; 0 = off
    unfreeze: dict[int, str] = field(default_factory=dict)  # epoch -> "head" | "stage<N>" | "top<N>" | "all"
    unfreeze_lr_factor: float = 1.0
    limit_batches: float = 1.0  # fraction of batches per epoch (smoke runs)


@dataclass
class TrainConfig:
    """Both stages plus the Lightning Trainer settings they share."""

    pretrain: StageConfig = field(default_factory=StageConfig)
    finetune: StageConfig = field(
        default_factory=lambda: StageConfig(
            epochs=20, batch_size=64, optimizer="adam", lr=0.007, l2=0.01, unfreeze={0: "head", 3: "top2", 6: "all"}
        )
    )
    accelerator: str = "auto"
    devices: int = 1
    precision: str = "auto"  # auto: bf16-mixed on CUDA (16-mixed without bf16), 32-true elsewhere
    deterministic: bool = True
    channels_last: bool | str = "auto"  # auto: on for CUDA, off elsewhere
    compile: bool = False
    threads: int = 0  # torch CPU threads; 0 = leave torch's default
    tf32: bool = False  # TF32 matmuls/convolutions on Ampere+ GPUs: faster, but results change between GPU generations


@dataclass
class SVMConfig:
    """SVM on the network's embeddings; its hyper-parameters are chosen on training subjects only."""

    C: list[float] = field(default_factory=lambda: [0.1, 1.0, 10.0, 100.0])
    kernel: list[str] = field(default_factory=lambda: ["linear", "rbf"])
    gamma: list[str] = field(default_factory=lambda: ["scale"])
    inner_folds: int = 4
    class_weight: str | None = "balanced"


@dataclass
class LosoConfig:
    """Leave-one-subject-out evaluation."""

    classifier: str = "svm"  # which prediction the headline metrics use
    # composite: LOSO over every dataset together | per_dataset: LOSO within each dataset | lodo: leave one dataset
    # out | dfme: DFME's official train → testA / testB split
    protocol: str = "composite"
    workers: int = 1
    devices: list[str] = field(default_factory=list)  # fold placement: GPU ids ("0", "1") or ["cpu"]; empty = auto
    group_size: int = 1  # subjects per held-out fold (1 = LOSO)
    folds: list[str] = field(default_factory=list)  # restrict to these held-out subjects; empty = all
    transfer: bool = True  # start every fold from the pre-trained checkpoint; false = from scratch (ablation)
    seeds: list[int] = field(default_factory=list)  # run the protocol once per seed into seed<k>/; empty = `seed`
    nested: str | None = None  # sweep file: each fold's hyper-parameters from its own inner study (--nested)


@dataclass
class LbptopConfig:
    """LBP-TOP features (`model.backbone: lbptop`), in Zhao & Pietikäinen's LBP-TOP_{P_XY,P_XT,P_YT,R_X,R_Y,R_T}
    notation. Defaults: the CASME II baseline's LBP-TOP_{4,4,4,1,1,4} on 5×5 blocks (conf/method/lbptop.yaml cites
    each value)."""

    grid: list[int] = field(default_factory=lambda: [5, 5])  # blocks: rows, columns
    radius: list[float] = field(default_factory=lambda: [1.0, 1.0, 4.0])  # R_X, R_Y, R_T (R_X = R_Y: XY is a circle)
    points: list[int] = field(default_factory=lambda: [4, 4, 4])  # P_XY, P_XT, P_YT
    method: str = "nri_uniform"  # scikit-image's name for the uniform patterns u2 (P(P-1)+3 bins); uniform: riu2
    frames: int = 30  # at most this many frames, evenly spaced over onset..offset
    size: int = 128  # frames resized to at most this side first (LBP-TOP time grows with H·W·T)


@dataclass
class LoggingConfig:
    """Where metrics go: CSV always, TensorBoard and W&B on request (W&B offline unless logged in)."""

    tensorboard: bool = False
    wandb: bool = False
    wandb_project: str = "mer"
    wandb_entity: str | None = None
    wandb_mode: str = "auto"
    wandb_group: str | None = None  # W&B group of every run; empty = the run's name (a sweep: its study)
    progress_bar: bool = True


@dataclass
class Config:
    """The whole experiment."""

    name: str = "default"
    seed: int = 42
    out: str = "runs"
    # STORAGE_URL::STUDY whose best trial chose the values set here (`mer sweep --best` prints it with them): `mer
    # loso` checks the study's subjects against its test subjects, `mer pretrain` records it in pretrained.pt
    selected_by: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    svm: SVMConfig = field(default_factory=SVMConfig)
    loso: LosoConfig = field(default_factory=LosoConfig)
    lbptop: LbptopConfig = field(default_factory=LbptopConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)


def stage_count(backbone: str) -> int:
    """Stages between stem and head of a backbone (0 for the feature-only `lbptop`)."""
    return {**BACKBONE_STAGES, **FLOW_BACKBONE_STAGES}.get(backbone, 0)


def input_channels(data: DataConfig) -> int:
    """Channels the network sees for `data.input` (apex, apex_minus_onset: 1; flow: u, v; flow_strain: + strain)."""
    return INPUT_CHANNELS[data.input]


def _follow_input(cfg: Config) -> None:
    """`model.in_chans` follows `data.input`; a value set to neither 1 (the default) nor that is a config error."""
    want = INPUT_CHANNELS.get(cfg.data.input)
    if want is None or cfg.model.in_chans == want:
        return
    if cfg.model.in_chans != 1:
        raise ConfigError(
            f"model.in_chans={cfg.model.in_chans} does not fit data.input={cfg.data.input} ({want} channels); "
            f"leave model.in_chans at 1 (it follows data.input) or set it to {want}"
        )
    cfg.model.in_chans = want


def tvl1_available() -> bool:
    """Whether OpenCV's Dual TV-L1 (contrib module `cv2.optflow`, the `flow-tvl1` extra) is installed."""
    import cv2  # local: only `data.flow_method: auto` and the flow code ask

    return hasattr(cv2, "optflow") and hasattr(cv2.optflow, "DualTVL1OpticalFlow_create")


def _follow_flow(cfg: Config) -> None:
    """`data.flow_method: auto` → tvl1 where OpenCV's contrib module is installed, else farneback (the flow
    networks' authors used TV-L1); resolved once, so the saved config says which flow ran."""
    if cfg.data.flow_method == "auto":
        cfg.data.flow_method = "tvl1" if tvl1_available() else "farneback"


def _check_lbptop(lb: LbptopConfig) -> None:
    """lbptop: two grid values, three radii and points; XY a circle (R_X = R_Y); R_T a whole multiple of both."""
    if len(lb.grid) != 2 or len(lb.radius) != 3 or len(lb.points) != 3:
        raise ConfigError(
            f"lbptop: grid takes 2 values (rows, cols), radius 3 (R_X, R_Y, R_T), points 3 (P_XY, P_XT, P_YT); "
            f"got grid={list(lb.grid)}, radius={list(lb.radius)}, points={list(lb.points)}"
        )
    r_x, r_y, r_t = (float(v) for v in lb.radius)
    if r_x != r_y:
        raise ConfigError(f"lbptop.radius: R_X={r_x} and R_Y={r_y} must be equal (the XY neighbourhood is a circle)")
    k = r_t / r_x
    if k < 1 or abs(k - round(k)) > 1e-9:
        raise ConfigError(f"lbptop.radius: R_T={r_t} must be a whole multiple (≥ 1) of R_X = R_Y = {r_x}")


def _check_input(cfg: Config) -> None:
    """Backbone and input agree: LBP-TOP reads the clip itself, OFF-ApexNet has one stream per flow component."""
    backbone, mode = cfg.model.backbone, cfg.data.input
    if backbone in FEATURE_BACKBONES and mode != "apex":
        raise ConfigError(
            f"model.backbone={backbone} computes its own features from the aligned onset..offset clip; "
            f"data.input={mode} would be ignored: leave data.input=apex"
        )
    if cfg.data.augment_on == "device" and mode in MOTION_INPUTS:
        raise ConfigError(
            f"data.augment_on=device augments apex crops only; data.input={mode} is augmented per sample "
            "(a flip negates u, no pixel jitter): set data.augment_on=cpu"
        )
    if backbone == "off_apexnet" and mode not in ("flow", "flow_strain"):
        raise ConfigError(
            f"model.backbone=off_apexnet has one stream per flow component; data.input={mode} is not a flow: "
            "use data.input=flow (the paper's u, v) or flow_strain"
        )


def _check_unfreeze(cfg: Config) -> None:
    """Unfreeze depths are well formed and reach no deeper than the backbone's stage count."""
    if cfg.model.backbone in FEATURE_BACKBONES:
        return  # nothing is trained
    k = stage_count(cfg.model.backbone)
    for stage in ("pretrain", "finetune"):
        for epoch, what in getattr(cfg.train, stage).unfreeze.items():
            key = f"train.{stage}.unfreeze.{epoch}"
            prefix = next((p for p in ("stage", "top") if what.startswith(p) and what[len(p) :].isdigit()), None)
            if what not in ("head", "all") and prefix is None:
                raise ConfigError(
                    f"{key}: '{what}' is not allowed; use head, stage<N> (e.g. stage4), top<N> (the last N stages) "
                    "or all"
                )
            if prefix is not None and not 1 <= int(what[len(prefix) :]) <= k:
                if k == 0:
                    raise ConfigError(f"{key}: '{what}' is not allowed: {cfg.model.backbone} has no stages; use head "
                                      "or all")  # fmt: skip
                raise ConfigError(
                    f"{key}: '{what}' is not allowed: {cfg.model.backbone} has {k} stages; use head, "
                    f"stage1..stage{k}, top1..top{k} or all"
                )


def _check_svm(svm: SVMConfig) -> None:
    """svm.gamma: each a name (scale, auto) or a positive number (the other SVM keys are in the constraints table)."""
    for gamma in svm.gamma:
        if gamma in SVM_GAMMA_NAMES:
            continue
        try:
            ok = float(gamma) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"svm.gamma: '{gamma}' is not allowed; use scale, auto or a positive number")


def class_names(data: DataConfig) -> list[str]:
    """The classes a run learns, in the network's output order: `data.classes`' scheme (or legacy list)."""
    return class_schemes.classes_of(data.classes)


def class_scheme(data: DataConfig) -> str:
    """The name of `data.classes`' scheme (megc3 for a legacy list of megc3 class names)."""
    return class_schemes.scheme_of(data.classes)


def _follow_classes(cfg: Config) -> None:
    """`model.num_classes` follows `data.classes`: left at 3 (the default) it becomes the scheme's class count."""
    try:
        n = len(class_names(cfg.data))
    except ValueError:
        return  # _check_classes names the bad value
    if cfg.model.num_classes == 3 and n != 3 and not isinstance(cfg.data.classes, (list, tuple)):
        cfg.model.num_classes = n


def _check_classes(cfg: Config) -> None:
    """A known scheme (or list of megc3 classes), datasets whose labels can express it, one network output per class."""
    try:
        names = class_names(cfg.data)
    except ValueError as err:
        raise ConfigError(f"data.classes: {err}") from None
    scheme = class_scheme(cfg.data)
    refused = class_schemes.refusal(scheme, [str(name).strip().lower() for name in cfg.data.roots])
    if refused:
        raise ConfigError(refused)
    if cfg.data.megc_list and scheme != class_schemes.DEFAULT:
        raise ConfigError(
            f"data.megc_list selects the MEGC2019 3-class samples; it needs data.classes=megc3, not {scheme}"
        )
    n = len(names)
    if cfg.model.num_classes != n:
        raise ConfigError(
            f"model.num_classes: {cfg.model.num_classes} does not match the {n} data.classes "
            f"({', '.join(names)}); set model.num_classes={n}"
        )


def _check_rules(cfg: Config) -> None:
    """The rules that tie keys together (each key on its own is `mer.constraints.CONFIG_CONSTRAINTS`'s business);
    ConfigError, one line naming the key: a mistake that would otherwise surface mid-run."""
    _check_input(cfg)
    _check_unfreeze(cfg)
    _check_svm(cfg.svm)
    _check_lbptop(cfg.lbptop)
    _check_classes(cfg)
    check_effective(cfg)


def check_effective(cfg: Config) -> None:
    """Refuse settings that would be silently ignored: a regulariser's scale set while `regularization` has it off,
    `lr_decay` with the plateau scheduler (whose reductions it would overwrite), devices neither GPU ids nor cpu."""
    for stage in ("pretrain", "finetune"):
        s: StageConfig = getattr(cfg.train, stage)
        key = f"train.{stage}"
        for name, modes in REGULARISERS.items():
            if getattr(s, name) > 0 and s.regularization not in modes:
                raise ConfigError(
                    f"{key}.{name}={getattr(s, name)} has no effect with {key}.regularization={s.regularization}; "
                    f"set {key}.regularization to {' or '.join(modes)}, or {key}.{name}=0"
                )
        if s.lr_decay > 0 and s.scheduler == "plateau":
            raise ConfigError(
                f"{key}.lr_decay cannot be combined with {key}.scheduler=plateau (the per-step decay would overwrite "
                "the plateau reductions); use scheduler none, cosine or step, or lr_decay=0"
            )
    devices = [str(d) for d in cfg.loso.devices]
    if devices != ["cpu"] and not all(d.isdigit() for d in devices):
        raise ConfigError(f"loso.devices: {devices} is neither GPU ids (e.g. [0, 1]) nor [cpu]")


def ignored_keys(cfg: Config) -> dict[str, str]:
    """Keys whose value has no effect under this config, with the reason (sweeps refuse to search them)."""
    out: dict[str, str] = {}
    for stage in ("pretrain", "finetune"):
        s: StageConfig = getattr(cfg.train, stage)
        key = f"train.{stage}"
        if s.optimizer != "sgd":
            out[f"{key}.momentum"] = f"only SGD uses momentum ({key}.optimizer={s.optimizer})"
        if not any(int(epoch) > 0 for epoch in s.unfreeze):
            out[f"{key}.unfreeze_lr_factor"] = f"nothing is unfrozen after epoch 0 ({key}.unfreeze={dict(s.unfreeze)})"
        if not s.unfreeze or s.unfreeze.get(0) == "all":
            out[f"{key}.train_bn"] = f"no layer is frozen ({key}.unfreeze={dict(s.unfreeze)})"
        if s.val_subjects <= 0:
            out[f"{key}.patience"] = f"no validation subjects to stop on ({key}.val_subjects={s.val_subjects})"
    a = cfg.augment
    if not a.jitter_stages:
        reason = "the pixel jitter runs in no stage (augment.jitter_stages=[])"
        out["augment.jitter_p"] = out["augment.jitter_max"] = reason
    else:
        if a.jitter_p <= 0:
            out["augment.jitter_max"] = f"the pixel jitter is off (augment.jitter_p={a.jitter_p})"
        if a.jitter_max <= 0:
            out["augment.jitter_p"] = f"the pixel jitter is off (augment.jitter_max={a.jitter_max})"
    return out


def load_config(
    path: str | Path | Sequence[str | Path] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    text: str | None = None,
) -> Config:
    """Defaults ← YAML file(s) in order (each with its `extends` chain) or YAML `text` ← `key=value` overrides.

    Several files stack: `["paper", "ablation/resnet18"]` is the paper's config with the ablation's changes on top.
    """
    merged = OmegaConf.structured(Config)
    paths = [] if path is None else [path] if isinstance(path, (str, Path)) else list(path)
    try:
        for item in paths:
            merged = _merge(merged, _read_yaml(resolve_config_path(item)))
        if text is not None:
            merged = _merge(merged, OmegaConf.create(yaml.safe_load(text) or {}))
        for item in overrides:
            key, value = _parse_override(item)
            if OmegaConf.select(merged, key, default="__missing__") == "__missing__":
                parent, _, leaf = key.rpartition(".")
                node = OmegaConf.select(merged, parent) if parent else merged
                is_free_dict = isinstance(node, DictConfig) and node._metadata.object_type in (None, dict)
                if not is_free_dict:
                    raise ConfigError(f"unknown config key '{key}'{_suggest(merged, key)}")
            OmegaConf.update(merged, key, value, merge=key not in REPLACE_WHOLE)
        cfg: Config = OmegaConf.to_object(merged)  # type: ignore[assignment]
        check_constraints(cfg, CONFIG_CONSTRAINTS)  # before _follow_input reads data.input
        _follow_input(cfg)
        _follow_flow(cfg)
        _follow_classes(cfg)
    except ConfigError:
        raise
    except OmegaConfBaseException as exc:
        raise ConfigError(error_line(exc)) from None
    _check_rules(cfg)
    return cfg


def to_dict(cfg: Config) -> dict[str, Any]:
    """Plain nested dict (for YAML, JSON, W&B)."""
    return dataclasses.asdict(cfg)


def to_yaml(cfg: Config) -> str:
    """YAML text that `load_config` reads back into an equal `Config`."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} → {'a.b': 1}; used for W&B config and sweep parameters."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out
