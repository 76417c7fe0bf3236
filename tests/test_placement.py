"""GPU placement of worker processes (`loso.devices`, `mer sweep --devices`): round-robin, CPU, and the numbering
CUDA_VISIBLE_DEVICES needs when this process already sees a subset of the GPUs (a SLURM job's allocation)."""

from __future__ import annotations

import os

import pytest

from mer.errors import MerError
from mer.runtime import device_placement, pin_process

NO_ENV: dict[str, str] = {}


def test_round_robin_cpu_and_auto() -> None:
    assert device_placement(["0", "1"], 5, 4, NO_ENV) == ["0", "1", "0", "1", "0"]  # several workers per GPU
    assert device_placement([], 3, 2, NO_ENV) == ["0", "1", "0"]  # auto: every visible GPU
    assert device_placement([], 3, 0, NO_ENV) is None  # auto without GPUs: the environment stays as it is
    assert device_placement(["cpu"], 2, 2, NO_ENV) == ["", ""]  # cpu hides the GPUs
    assert device_placement([1, 0], 3, 2, NO_ENV) == ["1", "0", "1"]  # ints from YAML, the order given


def test_indices_are_this_processs_numbering_within_cuda_visible_devices() -> None:
    """A job that sees GPUs 4 and 5 (CUDA_VISIBLE_DEVICES=4,5) must put index 1 on GPU 5, not on another job's GPU 1:
    CUDA_VISIBLE_DEVICES takes the driver's numbering."""
    env = {"CUDA_VISIBLE_DEVICES": "4,5"}
    assert device_placement(["1"], 2, 2, env) == ["5", "5"]
    assert device_placement([], 3, 2, env) == ["4", "5", "4"]
    assert device_placement(["0", "1"], 2, 2, {"CUDA_VISIBLE_DEVICES": "GPU-aa, GPU-bb"}) == ["GPU-aa", "GPU-bb"]


@pytest.mark.parametrize(
    ("devices", "visible", "env", "says"),
    [
        (["2"], 2, NO_ENV, "sees 2 GPU"),
        (["1"], 2, {"CUDA_VISIBLE_DEVICES": "4"}, "CUDA_VISIBLE_DEVICES=4"),
        (["0"], 0, NO_ENV, "sees 0 GPU"),
        (["0"], 0, {"CUDA_VISIBLE_DEVICES": ""}, "use cpu"),
        (["gpu0"], 2, NO_ENV, "gpu0"),
    ],
)
def test_a_gpu_this_process_cannot_see_is_one_clear_error(devices, visible, env, says) -> None:
    with pytest.raises(MerError, match=says):
        device_placement(devices, 2, visible, env)


def test_pin_process_sets_the_subset_before_cuda_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6")
    pin_process(["2", "0", "2"])
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "6,4"
    pin_process(["cpu"])
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    before = os.environ["CUDA_VISIBLE_DEVICES"]
    pin_process([])  # nothing chosen: nothing changes
    assert os.environ["CUDA_VISIBLE_DEVICES"] == before
