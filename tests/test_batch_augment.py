"""Device-side batch augmentation vs the per-sample albumentations path: same transforms, same distribution.

Both paths augment a probe crop (a marker square on a flat background) thousands of times on fixed seeds; the shift,
flip and brightness offset of every output are read back from the marker and compared (ranges and chi-square tests).
A random-noise crop checks that each output of either path is exactly one shifted (border replicated) and maybe
flipped copy of its input.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from torch.utils.data import BatchSampler, DataLoader

from mer.config import AugmentConfig
from mer.data.batch_augment import BatchAugment, UInt8Crops, keep_batch
from mer.data.transforms import normalize, train_transform

SIZE, BG, FG, R0, C0, SIDE = 48, 100, 200, 14, 12, 4  # probe: SIDE² marker at (R0, C0), left of the centre
PAPER = AugmentConfig(max_shift=8, hflip=True, jitter_p=0.3, jitter_max=20)
N = 3000


def probe() -> np.ndarray:
    img = np.full((SIZE, SIZE), BG, np.uint8)
    img[R0 : R0 + SIDE, C0 : C0 + SIDE] = FG
    return img


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Normalised float (N,1,H,W) → the uint8 grey levels it came from."""
    return torch.round((x[:, 0] * 0.5 + 0.5) * 255.0).clamp(0, 255).to(torch.uint8).numpy()


def read_params(img: np.ndarray) -> tuple[int, int, bool, int]:
    """(dx, dy, flipped, brightness offset) of one augmented probe."""
    bg = int(np.median(img))
    rows, cols = np.nonzero(img > bg + (FG - BG) // 2)
    assert len(rows) == SIDE * SIDE and int(img[rows[0], cols[0]]) - bg == FG - BG
    dy = int(rows.min()) - R0
    flipped = cols.min() > SIZE // 2 - 2  # unflipped: C0 ± 8 = 4…20; flipped: SIZE − C0 − SIDE ∓ 8 = 24…40
    dx = SIZE - C0 - SIDE - int(cols.min()) if flipped else int(cols.min()) - C0
    return dx, dy, bool(flipped), bg - BG


def albumentations_params(cfg: AugmentConfig, n: int, seed: int) -> np.ndarray:
    tf = train_transform(cfg, seed=seed)
    img = probe()
    return np.array([read_params(to_uint8(normalize(tf(image=img)["image"]))[0]) for _ in range(n)])


def device_params(cfg: AugmentConfig, n: int, seed: int) -> np.ndarray:
    torch.manual_seed(seed)
    out = BatchAugment(cfg)(torch.from_numpy(np.repeat(probe()[None], n, axis=0)))
    assert out.shape == (n, 1, SIZE, SIZE) and out.dtype == torch.float32
    return np.array([read_params(img) for img in to_uint8(out)])


@pytest.fixture(scope="module")
def both() -> tuple[np.ndarray, np.ndarray]:
    return albumentations_params(PAPER, N, seed=1), device_params(PAPER, N, seed=1)


def _homogeneous(a: np.ndarray, b: np.ndarray, values: np.ndarray) -> float:
    """p-value of a chi-square test that two samples of integers come from one distribution over `values`."""
    table = np.array([[np.sum(a == v) for v in values], [np.sum(b == v) for v in values]])
    table = table[:, table.sum(axis=0) > 0]
    return float(stats.chi2_contingency(table)[1])


def test_shift_ranges_and_distribution_match(both: tuple[np.ndarray, np.ndarray]) -> None:
    m = PAPER.max_shift
    for params in both:
        for axis in (0, 1):
            assert params[:, axis].min() == -m and params[:, axis].max() == m
            counts = np.bincount(params[:, axis] + m, minlength=2 * m + 1)
            assert stats.chisquare(counts).pvalue > 1e-3  # uniform over the 2m+1 whole-pixel offsets
        assert abs(stats.pearsonr(params[:, 0], params[:, 1])[0]) < 0.08  # x and y drawn independently
    values = np.arange(-m, m + 1)
    assert _homogeneous(both[0][:, 0], both[1][:, 0], values) > 1e-3
    assert _homogeneous(both[0][:, 1], both[1][:, 1], values) > 1e-3


def test_flip_rate_matches(both: tuple[np.ndarray, np.ndarray]) -> None:
    flips = [int(p[:, 2].sum()) for p in both]
    for k in flips:
        assert stats.binomtest(k, N, 0.5).pvalue > 1e-3
    assert _homogeneous(both[0][:, 2], both[1][:, 2], np.array([0, 1])) > 1e-3


def test_jitter_range_rate_and_distribution_match(both: tuple[np.ndarray, np.ndarray]) -> None:
    lim = PAPER.jitter_max
    for params in both:
        offsets = params[:, 3]
        # truncated β ∈ [−lim, lim): whole offsets −lim … lim−1, each with probability p / (2 lim)
        assert offsets.min() == -lim and offsets.max() == lim - 1
        moved = int((offsets != 0).sum())
        assert stats.binomtest(moved, N, PAPER.jitter_p * (2 * lim - 1) / (2 * lim)).pvalue > 1e-3
        nonzero = offsets[offsets != 0]
        counts = np.bincount(nonzero + lim, minlength=2 * lim)[np.arange(2 * lim) != lim]
        assert stats.chisquare(counts).pvalue > 1e-3
    assert _homogeneous(both[0][:, 3], both[1][:, 3], np.arange(-lim, lim)) > 1e-3


def test_draws_are_per_sample_and_seeded() -> None:
    a, b = device_params(PAPER, 200, seed=5), device_params(PAPER, 200, seed=5)
    assert np.array_equal(a, b)  # same seed, same draws
    assert len({tuple(p) for p in a}) > 150  # one draw per sample, not one per batch
    assert not np.array_equal(a, device_params(PAPER, 200, seed=6))


def _candidates(img: np.ndarray, m: int) -> dict[bytes, tuple[int, int, bool]]:
    """Every whole-pixel shift (border replicated) of `img` in ±m, unflipped and flipped, by its bytes."""
    h, w = img.shape
    out = {}
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            ys = np.clip(np.arange(h) - dy, 0, h - 1)
            xs = np.clip(np.arange(w) - dx, 0, w - 1)
            shifted = img[ys][:, xs]
            out[shifted.tobytes()] = (dx, dy, False)
            out[shifted[:, ::-1].copy().tobytes()] = (dx, dy, True)
    return out


def test_both_paths_copy_pixels_exactly_with_replicated_border() -> None:
    cfg = AugmentConfig(max_shift=3, hflip=True, jitter_p=0.0)
    img = np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8)
    known = _candidates(img, cfg.max_shift)
    tf = train_transform(cfg, seed=0)
    cpu = [to_uint8(normalize(tf(image=img)["image"]))[0] for _ in range(60)]
    torch.manual_seed(0)
    dev = list(to_uint8(BatchAugment(cfg)(torch.from_numpy(np.repeat(img[None], 60, axis=0)))))
    for name, outs in (("albumentations", cpu), ("device", dev)):
        found = [known.get(o.tobytes()) for o in outs]
        assert all(f is not None for f in found), name
        assert len(set(found)) > 20, name


def test_mask_shifts_and_flips_only_the_chosen_samples_and_jitters_all() -> None:
    """As CropDataset with augment.apply=topups: top-ups get shift + flip (+ jitter), originals the jitter alone."""
    crops = torch.from_numpy(np.random.default_rng(1).integers(40, 216, (8, 20, 20), dtype=np.uint8))
    mask = torch.tensor([True, False] * 4)
    plain = normalize(crops)
    torch.manual_seed(0)
    out = BatchAugment(AugmentConfig(max_shift=4, jitter_p=0.0))(crops, augment=mask)
    assert torch.equal(out[~mask], plain[~mask])
    assert all(not torch.equal(out[i], plain[i]) for i in np.flatnonzero(mask.numpy()))
    torch.manual_seed(0)
    out = to_uint8(BatchAugment(AugmentConfig(max_shift=4, jitter_p=1.0, jitter_max=20))(crops, augment=mask))
    for i in np.flatnonzero(~mask.numpy()):  # the jitter alone: one whole grey-level offset (no clipping: 40…215)
        diff = out[i].astype(int) - crops[i].numpy().astype(int)
        assert len(np.unique(diff)) == 1 and -20 <= diff.flat[0] < 20
    cfg = AugmentConfig(jitter_p=1.0)
    assert torch.equal(BatchAugment(cfg, jitter=False)(crops, augment=torch.zeros(8, dtype=torch.bool)), plain)


def test_no_augmentation_is_normalisation() -> None:
    crops = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (5, 1, 12, 12), dtype=np.uint8))
    cfg = AugmentConfig(max_shift=0, hflip=False, jitter_p=0.0)
    assert torch.equal(BatchAugment(cfg)(crops), normalize(crops))
    with pytest.raises(ValueError, match="gray crops"):
        BatchAugment(cfg)(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


def test_uint8_batches_carry_the_samplers_labels() -> None:
    """The batched dataset yields the same label batches as the per-sample one under the same sampler."""
    from mer.data.datamodule import CropDataset

    rng = np.random.default_rng(3)
    crops = rng.integers(0, 256, (30, 16, 16), dtype=np.uint8)
    labels = np.repeat([0, 1, 2], [18, 8, 4])
    order = rng.permutation(np.concatenate([np.arange(30), rng.choice(np.flatnonzero(labels > 0), 24)])).tolist()
    per_sample = DataLoader(CropDataset(crops, labels, AugmentConfig(), seed=0), batch_size=16, sampler=order)
    batched = DataLoader(UInt8Crops(crops, labels), batch_sampler=BatchSampler(order, 16, False), collate_fn=keep_batch)
    pairs = list(zip(per_sample, batched, strict=True))
    assert len(pairs) == 4
    for (_, y_cpu), (x_u8, y_dev) in pairs:
        assert x_u8.dtype == torch.uint8 and torch.equal(y_cpu, y_dev)
        assert np.array_equal(np.bincount(y_cpu, minlength=3), np.bincount(y_dev, minlength=3))
    assert torch.equal(pairs[0][1][0], torch.from_numpy(crops[order[:16]]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda() -> None:
    ds = UInt8Crops(np.zeros((4, 32, 32), np.uint8), [0, 1, 2, 0], device="cuda")
    x, y = ds.__getitems__([0, 2])
    out = BatchAugment(PAPER)(x)
    assert out.is_cuda and out.shape == (2, 1, 32, 32) and y.tolist() == [0, 2]


MICRO = {f"casme2/s{i}": "micro" for i in range(3)}


@pytest.fixture(scope="module")
def micro_prepared(tmp_path_factory):
    from tests.helpers import make_prepared

    return make_prepared(tmp_path_factory.mktemp("prep"), MICRO, per_class=3, skew=True)


@pytest.mark.parametrize("balance", ["epoch", "iteration"])
@pytest.mark.parametrize("apply", ["all", "topups"])
def test_device_loader_gives_the_per_sample_paths_batches(micro_prepared, balance: str, apply: str) -> None:
    """augment_on=device on CPU: the same label batches as the per-sample path for the same sampler seed."""
    from mer.data.datamodule import MERDataModule
    from tests.helpers import tiny_config

    extra = (f"data.balance={balance}", f"augment.apply={apply}", "train.finetune.val_subjects=0", "seed=3")
    dms = {on: MERDataModule(micro_prepared, tiny_config(f"data.augment_on={on}", *extra)) for on in ("cpu", "device")}
    for epoch in (0, 1):
        loaders = {on: dm.train_dataloader() for on, dm in dms.items()}
        for loader in loaders.values():
            sampler = getattr(loader.batch_sampler, "sampler", loader.batch_sampler)
            sampler.set_epoch(epoch)
        pairs = list(zip(loaders["cpu"], loaders["device"], strict=True))
        device_sampler = getattr(loaders["device"].batch_sampler, "sampler", loaders["device"].batch_sampler)
        device_sampler.set_epoch(epoch)  # the same epoch again: a pass moves the per-iteration sampler on by itself
        keys = list(loaders["device"].batch_sampler)  # the sampler's (index, topup) keys, batch by batch
        assert len(pairs) == len(keys) >= 2
        for ((x_cpu, y_cpu), raw), batch_keys in zip(pairs, keys, strict=True):
            assert raw[0].dtype == torch.uint8 and len(raw) == (3 if apply == "topups" else 2)
            assert torch.equal(y_cpu, raw[1])  # same samples in the same order, so the same class counts
            x_dev, y_dev = dms["device"].on_after_batch_transfer(raw, 0)
            assert x_dev.dtype == torch.float32 and x_dev.shape == x_cpu.shape and torch.equal(y_dev, y_cpu)
            if apply == "topups":  # the mask is the sampler's top-up flags
                assert raw[2].tolist() == [t for _, t in batch_keys]
        if apply == "topups":
            assert any(t for b in keys for _, t in b)  # skewed classes: some samples are top-ups
    val = next(iter(dms["device"].eval_dataloader("train")))
    assert dms["device"].on_after_batch_transfer(val, 0) is val  # float batches pass through


@pytest.mark.slow
def test_tiny_train_stage_runs_with_device_augmentation(micro_prepared, tmp_path) -> None:
    from mer.train import train_stage
    from tests.helpers import tiny_config

    cfg = tiny_config("data.augment_on=device", "augment.apply=topups", "train.finetune.epochs=1")
    res = train_stage(cfg, micro_prepared, "finetune", tmp_path, keep_checkpoint=False)
    assert res.epochs_run == 1
