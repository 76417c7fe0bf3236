"""`train.precision` / `train.channels_last` = auto: bf16 + channels_last on CUDA, fp32 on CPU, recorded in run_info."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mer.config import load_config
from mer.errors import ConfigError
from mer.provenance import resolve_precision, trainer_on_cuda, write_run_info


def test_auto_resolves_per_device() -> None:
    train = load_config().train
    assert (train.precision, train.channels_last) == ("auto", "auto")
    assert resolve_precision(train, cuda=True, bf16=True) == ("bf16-mixed", True)
    assert resolve_precision(train, cuda=True, bf16=False) == ("16-mixed", True)
    assert resolve_precision(train, cuda=False) == ("32-true", False)


def test_explicit_values_win() -> None:
    train = load_config(None, ["train.precision=32-true", "train.channels_last=false"]).train
    assert resolve_precision(train, cuda=True) == ("32-true", False)
    train = load_config(None, ["train.precision=bf16-mixed", "train.channels_last=true"]).train
    assert resolve_precision(train, cuda=False) == ("bf16-mixed", True)


@pytest.mark.parametrize("item", ["train.channels_last=maybe", "train.precision=fp8"])
def test_bad_values_are_one_line_errors(item: str) -> None:
    with pytest.raises(ConfigError, match=item.split("=")[0]):
        load_config(None, [item])


def test_run_info_records_resolved_values(tmp_path: Path) -> None:
    cfg = load_config(None, ["train.accelerator=cpu"])
    assert trainer_on_cuda(cfg.train) == (False, False)
    write_run_info(cfg, tmp_path, command="test")
    info = json.loads((tmp_path / "run_info.json").read_text())
    assert info["resolved"] == {"train.precision": "32-true", "train.channels_last": False}
    assert "channels_last: auto" in (tmp_path / "config.yaml").read_text()
