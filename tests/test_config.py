"""Config: YAML round trip, shipped configs, overrides and their errors, run provenance files."""

from __future__ import annotations

import json

import pytest
import yaml

from mer.config import CONF_DIR, Config, load_config, to_yaml
from mer.errors import ConfigError
from mer.provenance import write_run_info


def test_defaults_round_trip_through_yaml(tmp_path):
    cfg = load_config("default")
    assert cfg == Config()
    path = tmp_path / "c.yaml"
    path.write_text(to_yaml(cfg))
    assert load_config(path) == cfg


@pytest.mark.parametrize("name", sorted(str(p.relative_to(CONF_DIR).with_suffix("")) for p in CONF_DIR.rglob("*.yaml")))
def test_every_shipped_config_loads_and_round_trips(name, tmp_path):
    cfg = load_config(name)
    (tmp_path / "c.yaml").write_text(to_yaml(cfg))
    assert load_config(tmp_path / "c.yaml") == cfg


def test_paper_values():
    cfg = load_config("paper")
    assert cfg.model.backbone == "mobilevit_s" and cfg.model.in_chans == 1 and cfg.model.drop_rate == 0.5
    p, f = cfg.train.pretrain, cfg.train.finetune
    assert (p.optimizer, p.lr, p.momentum, p.batch_size, p.epochs) == ("sgd", 0.01, 0.9, 32, 100)
    assert (f.optimizer, f.lr, f.batch_size, f.l2, f.lr_decay, f.regularization) == ("adam", 0.007, 64, 0.2, 0.01, "l2")
    assert cfg.augment.jitter_p == 0.3 and cfg.augment.jitter_max == 20
    assert cfg.face.size == 256 and cfg.face.eye_mask != "none"


def test_extends_chain_and_override_precedence(tmp_path):
    (tmp_path / "child.yaml").write_text("extends: paper.yaml\nname: child\ntrain: {finetune: {lr: 0.5}}\n")
    (tmp_path / "paper.yaml").write_text((CONF_DIR / "paper.yaml").read_text())
    cfg = load_config(tmp_path / "child.yaml", ["train.finetune.lr=0.003", "model.backbone=mobilevit_xs"])
    assert cfg.name == "child" and cfg.train.finetune.lr == 0.003 and cfg.model.backbone == "mobilevit_xs"
    assert cfg.train.finetune.batch_size == 64  # inherited from paper.yaml


def test_schedule_is_replaced_not_merged():
    cfg = load_config("demo")
    assert cfg.train.finetune.unfreeze == {0: "head", 1: "top1", 2: "all"}
    cfg = load_config("demo", ["train.finetune.unfreeze={0: all}"])
    assert cfg.train.finetune.unfreeze == {0: "all"}


def test_override_types_are_converted():
    cfg = load_config("default", ["seed=7", "svm.C=[1, 2]", "data.roots.casme2=/data/c", "model.weights=null"])
    assert cfg.seed == 7 and cfg.svm.C == [1.0, 2.0] and cfg.data.roots == {"casme2": "/data/c"}


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.finetune.lrr=0.1", "unknown config key 'train.finetune.lrr'"),
        ("nosuch.key=1", "unknown config key 'nosuch.key'"),
        ("train.finetune.lr=fast", "train.finetune.lr"),
        ("model.backbone=vgg16", "choose one of: mobilevit_xxs"),
        ("face.eye_mask=star", "face.eye_mask"),
        ("train.finetune.unfreeze={0: layer3}", "stage<N>"),
        ("seed", "key=value"),
        ("data.classes=[happy]", "data.classes"),
        ("svm.C=[1, 0]", "svm.C: [0.0] not allowed"),
        ("svm.C=[]", "svm.C: give at least one"),
        (
            "svm.kernel=[linear, cubic]",
            "svm.kernel: ['cubic'] not allowed; every value must be one of: linear, rbf, poly, sigmoid",
        ),
        ("svm.kernel=[]", "svm.kernel"),
        ("svm.gamma=[scale, 0]", "svm.gamma: '0' is not allowed; use scale, auto or a positive number"),
        ("svm.gamma=[fast]", "svm.gamma: 'fast'"),
        ("svm.inner_folds=1", "svm.inner_folds: 1"),
        ("svm.class_weight=even", "svm.class_weight"),
        ("model.num_classes=4", "model.num_classes: 4 does not match the 3 data.classes"),
        ("data.classes=[negative, positive]", "set model.num_classes=2"),
        ("train.finetune.unfreeze={0: top7}", "unfreeze.0: 'top7' .* 5 stages; use head, stage1..stage5"),
        ("train.finetune.unfreeze={0: head, 3: stage6}", "train.finetune.unfreeze.3: 'stage6'"),
        ("train.pretrain.unfreeze={0: top0}", "train.pretrain.unfreeze.0: 'top0'"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")) as info:
        load_config("default", [override])
    assert "\n" not in str(info.value)  # one line


def test_unfreeze_depth_is_checked_against_the_chosen_backbone():
    cfg = load_config("default", ["model.backbone=mobilenetv2_100", "train.finetune.unfreeze={0: head, 2: top7}"])
    assert cfg.train.finetune.unfreeze == {0: "head", 2: "top7"}  # mobilenetv2 has 7 stages
    with pytest.raises(ConfigError, match="resnet18 has 4 stages"):
        load_config("default", ["model.backbone=resnet18", "train.finetune.unfreeze={0: top5}"])


def test_valid_svm_grid_and_class_subsets_load():
    cfg = load_config("default", ["svm.gamma=[scale, 0.01]", "svm.kernel=[rbf, poly]", "svm.inner_folds=2"])
    assert cfg.svm.gamma == ["scale", "0.01"] and cfg.svm.kernel == ["rbf", "poly"]
    cfg = load_config("default", ["data.classes=[negative, surprise]", "model.num_classes=2", "svm.class_weight=null"])
    assert cfg.model.num_classes == 2 and cfg.svm.class_weight is None


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("model: {layers: 3}\n")
    with pytest.raises(ConfigError, match="layers"):
        load_config(unknown)


def test_run_info_written(tmp_path):
    cfg = load_config("demo")
    write_run_info(cfg, tmp_path, command="mer test")
    assert load_config(tmp_path / "config.yaml") == cfg
    info = json.loads((tmp_path / "run_info.json").read_text())
    assert info["seed"] == cfg.seed and info["command"] == "mer test"
    assert {"python", "torch", "timm", "lightning"} <= set(info["versions"])
    assert "git_commit" in info
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["model"]["backbone"] == "mobilevit_xxs"


def test_demo_trains_channels_last_on_a_cpu():
    """The demo's measured-faster CPU path (benchmarks/pretrain_speed.py): channels_last also without CUDA."""
    from mer.provenance import resolve_precision

    cfg = load_config("demo")
    assert resolve_precision(cfg.train, cuda=False) == ("32-true", True)
    assert resolve_precision(load_config("paper").train, cuda=False) == ("32-true", False)  # paper: auto, as before


def test_every_constrained_key_exists_and_the_shipped_configs_meet_the_table():
    from mer.config import CONF_DIR, Config
    from mer.constraints import CONFIG_CONSTRAINTS, OneOf, select

    default = Config()
    for key in CONFIG_CONSTRAINTS:
        select(default, key)  # AttributeError for a key the config does not have
    for path in sorted(CONF_DIR.rglob("*.yaml")):
        load_config(path)
    for key, constraint in CONFIG_CONSTRAINTS.items():
        if isinstance(constraint, OneOf):
            with pytest.raises(ConfigError, match=f"^{key}: 'bogus' is not allowed; choose one of: ") as info:
                load_config("default", [f"{key}=bogus"])
            assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.finetune.l2=-0.5", "train.finetune.l2: -0.5 is not allowed; must be a number >= 0"),
        ("train.pretrain.lr_decay=-1", "train.pretrain.lr_decay: -1.0 is not allowed; must be a number >= 0"),
        ("augment.jitter_stages=[warmup]", "augment.jitter_stages: ['warmup'] not allowed; every value must be one of"),
        ("train.channels_last=maybe", "train.channels_last: 'maybe' is not allowed; choose one of: auto, true, false"),
        ("svm.class_weight=even", "svm.class_weight: 'even' is not allowed; choose one of: null, balanced"),
    ],
)
def test_ranges_and_lists_come_from_the_constraints_table(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config("default", [override])


@pytest.mark.parametrize(
    "value",
    [
        "runs/demo",
        "a b",
        "2024",
        "on",
        "null",
        "a: b",
        "",
        " x",
        "#x",
        "é/ü",
        1e-05,
        0.5,
        3,
        True,
        None,
        [0, 1, 2],
        {0: "head", 3: "all"},
        ["x y", "z"],
    ],  # fmt: skip
)
def test_the_override_writer_reads_back_exactly(value):
    from mer.config import _parse_override, as_override

    key, back = _parse_override(as_override("k", value))
    assert key == "k" and back == value and type(back) is type(value)


def test_override_writer_keeps_the_sweep_texts():
    from mer.config import as_override, format_value

    assert as_override("train.finetune.lr", 1e-05) == "train.finetune.lr=1.0e-05"
    assert as_override("train.finetune.unfreeze", {0: "head", 3: "all"}) == "train.finetune.unfreeze={0: head, 3: all}"
    assert as_override("data.prepared", "runs/demo/prepared") == "data.prepared=runs/demo/prepared"
    assert format_value(False) == "false" and format_value("2024") == '"2024"'
