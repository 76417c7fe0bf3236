"""Motion inputs end to end: through config, `mer prepare` (bad clips), augmentation, models, LBP-TOP + SVM
folds, the methods table of `mer report --compare`, and every method through LOSO on the tiny demo corpus."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from skimage import data as skdata

import mer.prepare
from mer.config import AugmentConfig, load_config, tvl1_available
from mer.data.datamodule import DrawKeys, split_validation, train_sampler
from mer.data.manifest import make_frame
from mer.data.motion import MotionDataset, augment_motion, load_motion, scale_motion
from mer.data.prepared import load_prepared
from mer.errors import ConfigError, MerError
from mer.face.detect import FaceDetector
from mer.models.backbones import build_net
from mer.prepare import prepare_from_manifest

METHODS = ("paper", "ststnet", "off_apexnet", "lbptop")
FLOW = "tvl1" if tvl1_available() else "farneback"  # the flow networks' configs: data.flow_method auto

# ---------------------------------------------------------------- config


def test_in_chans_follows_the_input_mode_and_conflicts_are_refused():
    assert [load_config(None, [f"data.input={m}"]).model.in_chans for m in ("apex", "apex_minus_onset")] == [1, 1]
    assert load_config(None, ["data.input=flow"]).model.in_chans == 2
    assert load_config("paper", ["data.input=flow_strain"]).model.in_chans == 3  # paper.yaml's in_chans 1 follows
    assert load_config(None, ["data.input=flow", "model.in_chans=2"]).model.in_chans == 2
    with pytest.raises(ConfigError, match=r"model.in_chans=3 does not fit data.input=flow"):
        load_config(None, ["data.input=flow", "model.in_chans=3"])
    with pytest.raises(ConfigError, match=r"data.input: 'optical' is not allowed"):
        load_config(None, ["data.input=optical"])
    with pytest.raises(ConfigError, match=r"lbptop computes its own features.*data.input=flow"):
        load_config(None, ["model.backbone=lbptop", "data.input=flow"])
    with pytest.raises(ConfigError, match=r"off_apexnet has one stream per flow component"):
        load_config(None, ["model.backbone=off_apexnet", "train.finetune.unfreeze={0: all}"])
    with pytest.raises(ConfigError, match=r"augment_on=device augments apex crops only"):
        load_config(None, ["data.input=flow", "data.augment_on=device"])
    with pytest.raises(ConfigError, match=r"ststnet has no stages"):
        load_config(None, ["model.backbone=ststnet", "data.input=flow_strain"])  # default schedule asks for top2


@pytest.mark.parametrize(
    ("method", "backbone", "mode", "chans", "published"),
    [
        ("paper", "mobilevit_s", "apex", 1, "84.27"),
        ("ststnet", "ststnet", "flow_strain", 3, "UF1 0.7353, UAR 0.7605"),
        ("off_apexnet", "off_apexnet", "flow", 2, "UF1 0.7196, UAR 0.7096"),
        ("lbptop", "lbptop", "apex", 1, "UF1 0.5882, UAR 0.5785"),
    ],
)
def test_method_configs(method, backbone, mode, chans, published):
    cfg = load_config(f"method/{method}")
    assert (cfg.name, cfg.model.backbone, cfg.data.input, cfg.model.in_chans) == (method, backbone, mode, chans)
    text = (Path(__file__).parent.parent / "conf" / "method" / f"{method}.yaml").read_text()
    assert published in text  # the source paper's figure is stated beside its settings
    if method in ("ststnet", "off_apexnet"):
        assert cfg.data.image_size == 28 and not cfg.loso.transfer
        net = build_net(cfg.model.backbone, cfg.model.in_chans, 3, 0.5, cfg.data.image_size)
        assert net.in_chans == chans and net(torch.zeros(2, chans, 28, 28)).shape == (2, 3)


# ---------------------------------------------------------------- scaling and augmentation


def test_scale_keeps_direction_and_zero_fields():
    field = np.zeros((8, 8, 3), np.float32)
    field[..., 0], field[..., 1], field[..., 2] = 2.0, -4.0, 0.01
    x = scale_motion(field, "flow_strain")
    assert x.shape == (3, 8, 8)
    np.testing.assert_allclose(x[0], 0.5)  # u, v share one scale
    np.testing.assert_allclose(x[1], -1.0)
    np.testing.assert_allclose(x[2], 1.0)  # strain its own
    np.testing.assert_array_equal(scale_motion(np.zeros((4, 4, 2)), "flow"), 0)


def _flip_draw(x: torch.Tensor, cfg: AugmentConfig, mode: str) -> tuple[torch.Tensor, bool]:
    """The first draw that flips (hflip p 0.5), and whether one did within 20 seeds."""
    for seed in range(20):
        out = augment_motion(x, cfg, mode, torch.Generator().manual_seed(seed))
        if not torch.equal(out[1], x[1]):
            return out, True
    return x, False


def test_horizontal_flip_negates_u_only_for_flow():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 6, 6, generator=gen) - 0.5
    cfg = AugmentConfig(max_shift=0, hflip=True)
    out, flipped = _flip_draw(x, cfg, "flow_strain")
    assert flipped
    torch.testing.assert_close(out[0], -x[0].flip(-1))  # u changes sign with the image
    torch.testing.assert_close(out[1:], x[1:].flip(-1))  # v and strain are only mirrored
    diff, flipped = _flip_draw(x[:1].expand(2, 6, 6).contiguous(), cfg, "apex_minus_onset")
    assert flipped and torch.equal(diff[0], x[0].flip(-1))  # a difference image is not negated


def test_shift_replicates_the_border_and_no_pixel_jitter_on_motion():
    x = torch.arange(2 * 5 * 5, dtype=torch.float32).reshape(2, 5, 5)
    cfg = AugmentConfig(max_shift=2, hflip=False, jitter_p=1.0, jitter_max=20)
    shifted = [augment_motion(x, cfg, "flow", torch.Generator().manual_seed(s)) for s in range(10)]
    assert any(not torch.equal(s, x) for s in shifted)
    for s in shifted:  # every value is one of the input's own (whole-pixel shift, border replicated): no jitter
        assert set(s.flatten().tolist()) <= set(x.flatten().tolist())
    ds = MotionDataset(x[None].numpy(), np.array([0]), "flow", AugmentConfig(apply="topups", jitter_p=1.0))
    assert torch.equal(ds[(0, False)][0], x)  # an original under apply=topups: untouched, jitter or not


def test_load_motion_resizes_and_checks_channels(tmp_path):
    field = np.random.default_rng(0).normal(size=(32, 32, 2)).astype(np.float16)
    np.save(tmp_path / "a.npy", field)
    x = load_motion([str(tmp_path / "a.npy")], 8, "flow", 2)
    assert x.shape == (1, 2, 8, 8) and np.abs(x).max() == pytest.approx(1.0)
    with pytest.raises(Exception, match=r"expected \(H, W, 3\)"):
        load_motion([str(tmp_path / "a.npy")], 8, "flow_strain", 3)


# ---------------------------------------------------------------- mer prepare: motion inputs and bad clips


@pytest.fixture(scope="module")
def clip_rows(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """Four micro rows on the astronaut face: a good clip, onset = apex, a single frame, an onset without a face."""
    root = tmp_path_factory.mktemp("clips")
    face = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)
    h, w = face.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    lift = 3.0 * np.exp(-((xx - 240) ** 2 + (yy - 190) ** 2) / (2 * 25.0**2))  # the mouth region moves up
    apex = cv2.remap(face, xx, (yy + lift).astype(np.float32), cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    paths = {}
    for name, img in (("onset", face), ("apex", apex), ("blank", np.full_like(face, 128))):
        paths[name] = str(root / f"{name}.png")
        cv2.imwrite(paths[name], img)
    base = {"dataset": "casme2", "subject": "casme2/sub01", "kind": "micro", "emotion": "happiness",
            "label": "positive", "offset": 1}  # fmt: skip
    rows = [
        {**base, "sample_id": "good", "frames": [paths["onset"], paths["apex"]], "onset": 0, "apex": 1},
        {**base, "sample_id": "same", "frames": [paths["onset"], paths["apex"]], "onset": 1, "apex": 1},
        {**base, "sample_id": "single", "frames": [paths["apex"]], "onset": 0, "apex": 0, "offset": 0},
        {**base, "sample_id": "noface", "frames": [paths["blank"], paths["apex"]], "onset": 0, "apex": 1},
    ]
    return root, make_frame(rows)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector("cpu", min_face_size=40, batch_size=4)


def _prepare(root: Path, manifest: pd.DataFrame, detector: FaceDetector, *overrides: str) -> tuple[Path, Path]:
    cfg = load_config(None, ["face.size=64", "train.threads=1", *overrides])
    out = root / "_".join(o.split("=")[1] for o in overrides)
    prepare_from_manifest(cfg, manifest, None, out, detector=detector, progress=False)
    return out, out / "prepare_report.csv"


def test_bad_clips_are_skipped_and_reported(clip_rows, detector):
    root, manifest = clip_rows
    out, report_path = _prepare(root, manifest, detector, "data.input=flow", "data.flow_fallback=skip")
    prepared = load_prepared(out)
    assert prepared["sample_id"].tolist() == ["good"]
    report = pd.read_csv(report_path).set_index("sample_id")["reason"]
    assert report["same"] == "motion: onset equals apex (frame 1); sample skipped (data.flow_fallback=skip)"
    assert report["single"].startswith("motion: single-frame sample")
    assert report["noface"].startswith("motion: onset frame 0 has no face")
    field = np.load(prepared.loc[0, "motion"])
    assert field.shape == (64, 64, 2) and field.dtype == np.float16
    v = field[..., 1].astype(np.float32)
    assert v.min() < -0.3  # the mouth moved up (negative v), the field is not empty
    assert prepared.loc[0, "motion_input"] == "flow:farneback" and prepared.loc[0, "onset_index"] == 0


def test_final_bundle_refuses_motion_inputs_before_training(clip_rows, detector, tmp_path):
    """`mer predict` sends apex crops, so `mer loso --final` refuses a motion input (and LBP-TOP) from the config
    alone, before reading data or training."""
    from mer.evaluation.loso import run_final

    root, manifest = clip_rows
    out, _ = _prepare(root, manifest, detector, "data.input=flow", "data.flow_fallback=zero")
    cfg = load_config(None, ["face.size=64", "data.input=flow", f"data.prepared={out}"])
    with pytest.raises(MerError, match=r"data.input=flow is not supported there yet"):
        run_final(cfg, tmp_path / "final")
    lbptop = load_config(None, ["model.backbone=lbptop", f"data.prepared={tmp_path / 'absent'}"])
    with pytest.raises(MerError, match=r"model.backbone=lbptop has no network to bundle"):
        run_final(lbptop, tmp_path / "final")
    assert not (tmp_path / "final" / "train").exists()  # refused before any training started


def test_zero_fallback_keeps_bad_clips_with_a_reported_zero_field(clip_rows, detector):
    root, manifest = clip_rows
    out, report_path = _prepare(root, manifest, detector, "data.input=flow_strain", "data.flow_fallback=zero")
    prepared = load_prepared(out).set_index("sample_id")
    assert sorted(prepared.index) == ["good", "noface", "same", "single"]
    report = pd.read_csv(report_path).set_index("sample_id")["reason"]
    for bad in ("same", "single", "noface"):
        assert report[bad].startswith("motion (kept): ") and report[bad].endswith(
            "zero input (data.flow_fallback=zero)"
        )
        assert prepared.loc[bad, "motion_note"].startswith("zero flow_strain input: ")
        assert not np.load(prepared.loc[bad, "motion"]).any()
    assert prepared.loc["good", "motion_note"] == "" and np.load(prepared.loc["good", "motion"]).any()
    assert "good" not in report.index


def test_apex_input_leaves_the_prepared_table_as_before(clip_rows, detector):
    root, manifest = clip_rows
    out, _ = _prepare(root, manifest, detector, "data.input=apex")
    columns = pd.read_csv(out / "prepared.csv").columns.tolist()
    assert columns[-3:] == ["crop", "crop_index", "face_note"] and "motion" not in columns
    with pytest.raises(Exception, match=r"data.input=flow .*holds apex crops only"):
        from mer.data.datamodule import MERDataModule

        MERDataModule(load_prepared(out), load_config(None, ["data.input=flow"]), "finetune")


def test_difference_input_is_apex_minus_onset(clip_rows, detector):
    root, manifest = clip_rows
    out, _ = _prepare(root, manifest, detector, "data.input=apex_minus_onset")
    good = load_prepared(out).set_index("sample_id").loc["good"]
    diff = np.load(good["motion"]).astype(np.float32)[..., 0]
    assert diff.shape == (64, 64) and diff.min() < -5 and diff.max() > 5  # grey levels changed both ways


@pytest.mark.parametrize("name", ["ststnet", "off_apexnet"])
def test_flow_networks_train_as_published(name):
    """STSTNet and OFF-ApexNet train as their authors did: every training subject of the fold (no validation split;
    the last epoch is kept), each training sample once per epoch with no class top-ups, unaugmented, on TV-L1 flow
    where it is installed (Farneback otherwise), and the loaded config names the flow that runs."""
    cfg = load_config(f"method/{name}")
    assert cfg.data.flow_method == ("tvl1" if tvl1_available() else "farneback")
    side = pd.DataFrame({"subject": [f"s{k // 3}" for k in range(30)], "label": ["negative"] * 20 + ["surprise"] * 10})
    train, val = split_validation(side, cfg.train.finetune.val_subjects, cfg.seed)
    assert len(train) == 30 and val.empty  # 10 subjects: none held back for checkpoint choice
    labels = np.array([0] * 20 + [1] * 10)
    keys = list(DrawKeys(train_sampler(labels, cfg.data.balance, cfg.seed)))
    assert sorted(k[0] for k in keys) == list(range(30)) and not any(k[1] for k in keys)  # no top-ups
    x = np.random.default_rng(0).normal(size=(30, 3 if name == "ststnet" else 2, 28, 28)).astype(np.float32)
    ds = MotionDataset(x, labels, cfg.data.input, cfg.augment, seed=cfg.seed, stage="finetune")
    for key in keys[:5]:
        assert torch.equal(ds[key][0], torch.from_numpy(x[key[0]]))  # no shift, no flip


def test_flow_method_auto_is_resolved_on_load(monkeypatch):
    """data.flow_method=auto becomes tvl1 when cv2.optflow has Dual TV-L1, farneback when it does not."""
    monkeypatch.delattr(cv2, "optflow", raising=False)  # as with opencv-python-headless alone
    assert load_config(None, ["data.flow_method=auto"]).data.flow_method == "farneback"
    monkeypatch.setattr(cv2, "optflow", type("contrib", (), {"DualTVL1OpticalFlow_create": None}), raising=False)
    assert load_config(None, ["data.flow_method=auto"]).data.flow_method == "tvl1"


def test_lbptop_features_are_cached_per_micro_clip_and_setting(clip_rows, detector, monkeypatch):
    """Each clip's feature is computed once per LBP-TOP setting: the settings are in the cache key, so changed
    settings (here the pattern method) never reuse an old feature."""
    root, manifest = clip_rows
    out, report_path = _prepare(root, manifest, detector, "model.backbone=lbptop", "data.flow_fallback=skip")
    prepared = load_prepared(out).set_index("sample_id")
    report = pd.read_csv(report_path).set_index("sample_id")["reason"]
    assert "2 frame(s) is too short for LBP-TOP (needs 9)" in report["good"]  # R_T = 4; test clips have ≤ 2 frames
    assert prepared.empty or not prepared["features"].astype(bool).any()
    # two 4-frame clips (onset → apex and back, in two orders): each gets its own feature, computed once
    good = manifest.set_index("sample_id").loc["good"]
    onset, apex = good["frames"]
    clips = {"there": [onset, apex, apex, onset], "back": [apex, onset, onset, apex]}
    base = {**good.to_dict(), "onset": 0, "apex": 1, "offset": 3}
    rows = [{**base, "sample_id": k, "frames": f} for k, f in clips.items()]
    long = make_frame(rows)
    r1 = "lbptop.radius=[1,1,1]"  # 4-frame clips: time radius 1
    out, _ = _prepare(root, long, detector, "model.backbone=lbptop", "data.flow_fallback=zero", r1)
    first = load_prepared(out).set_index("sample_id")
    assert sorted(first.index) == ["back", "there"] and not first["features_note"].astype(bool).any()
    feats = {k: np.load(first.loc[k, "features"]) for k in clips}
    assert feats["there"].ndim == 1 and feats["there"].any() and not np.array_equal(feats["there"], feats["back"])
    assert first.loc["there", "features"] != first.loc["back", "features"]  # one cache entry per clip

    def no_compute(*args, **kwargs):
        raise AssertionError("LBP-TOP computed again although the clip is cached")

    real = mer.prepare.aligned_clip_lbptop
    monkeypatch.setattr("mer.prepare.aligned_clip_lbptop", no_compute)
    out, _ = _prepare(root, long, detector, "model.backbone=lbptop", "data.flow_fallback=zero", r1)  # the same folder
    again = load_prepared(out).set_index("sample_id")
    for k in clips:
        assert again.loc[k, "features"] == first.loc[k, "features"]
        assert np.array_equal(np.load(again.loc[k, "features"]), feats[k])
    calls = []
    monkeypatch.setattr("mer.prepare.aligned_clip_lbptop", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    other = load_config(None, ["face.size=64", "train.threads=1", "model.backbone=lbptop", "data.flow_fallback=zero",
                               r1, "lbptop.method=default"])  # fmt: skip
    prepare_from_manifest(other, long, None, out, detector=detector, progress=False)  # the same folder and cache
    assert [kw["lbptop"].method for kw in calls] == ["default", "default"]  # both clips computed anew
    changed = load_prepared(out).set_index("sample_id")
    for k in clips:
        assert changed.loc[k, "features"] != first.loc[k, "features"]
        assert np.load(changed.loc[k, "features"]).shape == (25 * 3 * 16,) != feats[k].shape


# ---------------------------------------------------------------- every method through LOSO on the demo corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[str]]:
    from mer.demo.corpus import generate_corpus
    from mer.demo.run import _roots

    out = tmp_path_factory.mktemp("demo17")
    summary = generate_corpus(out / "corpus", seed=0, quick=True)
    return out, _roots(summary)


TEST_RUN = ("train.threads=2", "logging.progress_bar=false", "loso.workers=1", "train.finetune.epochs=2",
            "train.pretrain.epochs=2", "train.finetune.batch_size=16", "train.pretrain.batch_size=16")  # fmt: skip


def _mer(args: list[str]) -> int:
    """Run the `mer` command line in this process; its exit code."""
    from mer.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code or 0


@pytest.mark.slow
def test_mer_compare_runs_every_method_resumably_into_one_table(corpus, capsys):
    out, roots = corpus
    demo_methods = Path(__file__).parent.parent / "conf" / "method" / "demo"
    # STSTNet with macro pre-training (a motion input on the macro rows, whose onset is the sequence's first frame)
    ststnet = out / "ststnet.yaml"
    ststnet.write_text(f"extends: {demo_methods / 'ststnet.yaml'}\nloso:\n  transfer: true\n")
    files = [demo_methods / "paper.yaml", ststnet, demo_methods / "off_apexnet.yaml", demo_methods / "lbptop.yaml"]
    args = ["compare", *map(str, files), "--out", str(out / "cmp"), "--resamples", "100", *roots, *TEST_RUN,
            f"data.prepared={out / 'none'}", "svm.C=[1.0,10.0]", "svm.kernel=[linear]"]  # fmt: skip
    assert _mer(args) == 0
    first = capsys.readouterr().out
    assert first.count("preparing ") == 4 and first.count("pre-training into") == 2  # paper and ststnet transfer
    prepared = sorted(p.name for p in (out / "cmp" / "prepared").iterdir())
    assert prepared == ["apex", "apex-lbptop", f"flow-{FLOW}", f"flow_strain-{FLOW}"]
    for method in METHODS:
        preds = pd.concat(pd.read_csv(p) for p in (out / "cmp" / "runs" / method).rglob("predictions.csv"))
        assert len(preds) >= 30
    table = pd.DataFrame(pd.read_json(out / "cmp" / "compare.json", typ="series")["methods"])
    assert table["run"].tolist() == list(METHODS)
    assert table["input"].tolist() == ["apex", f"flow_strain ({FLOW})", f"flow ({FLOW})",
                                       "onset..offset clip (LBP-TOP)"]  # fmt: skip
    published = table["published (MEGC2019 composite)"].tolist()[1:]
    assert [p.split(" (")[0] for p in published] == [
        "UF1 0.7353 / UAR 0.7605", "UF1 0.7196 / UAR 0.7096", "UF1 0.5882 / UAR 0.5785"]  # fmt: skip
    # the demo's 38 samples are not the composite's 442: each published figure says so beside it
    assert all("not comparable" in p and "442 of 68" in p for p in published)
    assert all(ci.startswith("[") for ci in table["UF1 95 % CI"]) and set(table["hyper-parameters"]) == {
        "fixed: the config's values (no search)"}  # fmt: skip
    assert "## Methods" in (out / "cmp" / "compare.md").read_text()
    assert (out / "cmp" / "compare.html").is_file()

    assert _mer(args) == 0  # resumes: nothing is prepared, pre-trained or trained again
    again = capsys.readouterr().out
    assert "preparing " not in again and "pre-training into" not in again
    assert again.count("reusing") == 6 and again.count("already complete") == 4


def test_compare_command_line_stacks_overlays_and_overrides_on_every_method(tmp_path, monkeypatch, capsys):
    import mer.evaluation.methods as methods_mod

    seen = {}

    def fake_run(methods, out, *, seeds, resamples):
        seen.update(methods=methods, out=out, seeds=seeds, resamples=resamples)
        return out / "compare.md"

    monkeypatch.setattr(methods_mod, "run_compare", fake_run)
    overlay = tmp_path / "site.yaml"
    overlay.write_text("loso:\n  workers: 3\n")
    conf = Path(__file__).parent.parent / "conf" / "method"
    assert _mer(["compare", str(conf / "ststnet.yaml"), str(conf / "lbptop.yaml"), "-c", str(overlay), "--seeds",
                 "0,1", "--out", str(tmp_path / "o"), "--resamples", "50", "train.threads=1"]) == 0  # fmt: skip
    got = seen["methods"]
    assert [m.name for m in got] == ["ststnet", "lbptop"] and [m.cfg.model.backbone for m in got] == [
        "ststnet", "lbptop"]  # fmt: skip
    assert {m.cfg.loso.workers for m in got} == {3} and {m.cfg.train.threads for m in got} == {1}
    assert (seen["out"], seen["seeds"], seen["resamples"]) == (tmp_path / "o", [0, 1], 50)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "method file not found"),
        ("model: [", "not valid YAML"),
        ("- a list", "expected a mapping"),
        ("model:\n  bogus: 1\n", "model.bogus"),
        ("model:\n  backbone: ststnet\ndata:\n  input: flow_strain\n", "ststnet has no stages"),
    ],
)
def test_a_bad_method_file_is_a_one_line_error(tmp_path, capsys, text, message):
    path = tmp_path / "bad.yaml"
    if text is not None:
        path.write_text(text)
    code = _mer(["compare", str(path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err and str(path) in err


def test_methods_share_a_prepared_folder_per_input_and_reuse_a_matching_one(tmp_path):
    from mer.evaluation.methods import load_methods, plan_prepared, prepare_key, seed_crop_cache
    from mer.provenance import write_run_info

    conf = Path(__file__).parent.parent / "conf" / "method"
    base = tmp_path / "given"
    files = [conf / "ststnet.yaml", conf / "off_apexnet.yaml", conf / "lbptop.yaml", conf / "paper.yaml"]
    methods = load_methods(files, (), ["data.roots.casme2=/data/CASME2", f"data.prepared={base}"])
    cfgs = {m.name: m.cfg for m in methods}
    assert prepare_key(cfgs["ststnet"]) != prepare_key(cfgs["off_apexnet"])  # another input
    assert prepare_key(load_config("method/paper", ["train.threads=1", "face.workers=2"])) == prepare_key(
        load_config("method/paper"))  # execution keys and training do not count  # fmt: skip
    plan = plan_prepared(methods, tmp_path / "out")
    assert {k: v.name for k, v in plan.items()} == {"ststnet": f"flow_strain-{FLOW}",
                                                    "off_apexnet": f"flow-{FLOW}", "lbptop": "apex-lbptop",
                                                    "paper": "apex"}  # fmt: skip
    write_run_info(cfgs["paper"], base)  # a finished apex folder with the paper's face settings
    (base / "prepared.csv").write_text("x\n")
    assert plan_prepared(methods, tmp_path / "out")["paper"] == base
    bigger = load_methods([conf / "paper.yaml"], (), ["data.roots.casme2=/data/CASME2", f"data.prepared={base}",
                                                       "face.size=128"])  # fmt: skip
    assert plan_prepared(bigger, tmp_path / "out")["paper"] == tmp_path / "out" / "prepared" / "apex"
    (base / "crops" / "ab").mkdir(parents=True)
    (base / "crops" / "ab" / "x.png").write_bytes(b"1")
    assert seed_crop_cache(tmp_path / "new", [base]) == 1 and (tmp_path / "new" / "crops" / "ab" / "x.png").is_file()
    assert seed_crop_cache(tmp_path / "new", [base]) == 0
