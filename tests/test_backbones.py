"""Backbones: every network builds for 1-channel 256² input, parameter counts, embed(), checkpoint round trip."""

from __future__ import annotations

import pytest
import timm
import torch

from mer.config import BACKBONE_STAGES, BACKBONES, ModelConfig
from mer.errors import MerError
from mer.models.backbones import MERNet, build_model, count_parameters, load_weights, save_weights

EMBED_DIM = {
    "mobilevit_xxs": 320,
    "mobilevit_xs": 384,
    "mobilevit_s": 640,
    "mobilenetv2_100": 1280,
    "mobilenetv3_large_100": 1280,
    "resnet18": 512,
    "deit_tiny_patch16_224": 192,
}


@pytest.mark.parametrize("name", BACKBONES)
def test_builds_for_grayscale_256(name):
    net = MERNet(name, in_chans=1, num_classes=3, image_size=256).eval()
    x = torch.randn(2, 1, 256, 256)
    with torch.no_grad():
        logits, emb = net.forward_both(x)
        assert torch.allclose(logits, net(x), atol=1e-4)
    assert logits.shape == (2, 3)
    assert emb.shape == (2, EMBED_DIM[name]) == (2, net.embed_dim)
    groups = net.stage_groups()
    assert list(groups)[0] == "stem" and list(groups)[-1] == "head"
    assert sum(len(v) for v in groups.values()) == len(list(net.parameters()))


@pytest.mark.parametrize(
    "name, paper_millions, ours_3class",
    [("mobilevit_xxs", 1.3, 0.95), ("mobilevit_xs", 2.3, 1.93), ("mobilevit_s", 5.6, 4.94)],
)
def test_mobilevit_parameter_counts_match_paper(name, paper_millions, ours_3class):
    imagenet = sum(p.numel() for p in timm.create_model(name, pretrained=False).parameters()) / 1e6
    assert abs(imagenet - paper_millions) / paper_millions < 0.05  # MobileViT paper, 1000 classes, RGB
    ours = count_parameters(MERNet(name, in_chans=1, num_classes=3)) / 1e6
    assert abs(ours - ours_3class) < 0.01


@pytest.mark.parametrize("name", BACKBONES)
def test_config_stage_table_matches_the_networks(name):
    net = MERNet(name, image_size=64)
    stages = [g for g in net.stage_groups() if g.startswith("stage")]
    assert stages == [f"stage{i}" for i in range(1, BACKBONE_STAGES[name] + 1)]


def test_unknown_backbone():
    with pytest.raises(MerError, match="unknown backbone"):
        MERNet("vgg16")


def test_checkpoint_round_trip_identical_outputs(tmp_path):
    torch.manual_seed(0)
    net = MERNet("mobilevit_xxs", image_size=64).eval()
    path = save_weights(net, tmp_path / "w.pt")
    other = build_model(ModelConfig(backbone="mobilevit_xxs", weights=str(path)), image_size=64).eval()
    x = torch.randn(3, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(net(x), other(x))
        assert torch.equal(net.embed(x), other.embed(x))


def test_checkpoint_errors(tmp_path):
    net = MERNet("mobilevit_xxs", image_size=64)
    with pytest.raises(MerError, match="not found"):
        load_weights(net, tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(MerError, match="not a readable"):
        load_weights(net, junk)
    path = save_weights(MERNet("mobilevit_xs", image_size=64), tmp_path / "xs.pt")
    with pytest.raises(MerError, match="mobilevit_xs"):
        load_weights(net, path)


@pytest.mark.parametrize(
    "ablation", ["no_transfer", "softmax_only", "mobilenetv2", "mobilenetv3", "resnet18", "deit_tiny"]
)
def test_ablation_overlays_build_and_schedules_fit(ablation):
    from mer.config import load_config
    from mer.models.unfreeze import stages_for

    cfg = load_config(["paper", f"ablation/{ablation}"])
    assert cfg.name == ablation and cfg.train.finetune.lr == 0.007  # the paper's values underneath
    net = MERNet(cfg.model.backbone, image_size=64)
    for depth in cfg.train.finetune.unfreeze.values():
        assert stages_for(net, depth)
