"""CLI: every subcommand listed with help; user errors are one line with exit code 2."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from mer.cli import app
from tests.helpers import make_run

COMMANDS = ["demo", "prepare", "pretrain", "loso", "report", "compare", "sweep", "predict", "spot", "export", "bench"]
runner = CliRunner()


def test_help_lists_every_subcommand():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in COMMANDS:
        assert cmd in result.output


@pytest.mark.parametrize("cmd", COMMANDS)
def test_each_subcommand_has_help(cmd):
    result = runner.invoke(app, [cmd, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_user_error_is_one_line_exit_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mer.cli", "pretrain", "--config", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: config file not found")
    assert "Traceback" not in proc.stderr


def test_bad_override_exit_2():
    proc = subprocess.run(
        [sys.executable, "-m", "mer.cli", "pretrain", "train.pretrain.lrr=1"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "unknown config key" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------- flags are config overrides, resolved before runners


@pytest.fixture
def captured(monkeypatch):
    """Replace the runners the commands call with recorders of (config, args, kwargs)."""
    import mer.evaluation.loso as loso
    import mer.prepare as prepare
    import mer.train as train

    calls: dict[str, tuple] = {}

    def recorder(name):
        return lambda *args, **kwargs: calls.setdefault(name, (args[0], args[1:], kwargs))

    for module, name in [(prepare, "run_prepare"), (train, "run_pretrain"), (loso, "run_loso"), (loso, "run_final")]:
        monkeypatch.setattr(module, name, recorder(name))
    return calls


def invoke(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


def test_prepare_flags_become_data_keys(captured, tmp_path):
    flags = ["--data", "casme2=/d/c2", "-d", "SAMM=/d/samm", "--out", str(tmp_path / "p"), "--megc-list", "gt.csv"]
    invoke(["prepare", *flags, "--manifest-only", "data.roots.smic=/d/smic", "data.prepared=elsewhere"])
    cfg, args, kwargs = captured["run_prepare"]
    assert cfg.data.roots == {"smic": "/d/smic", "casme2": "/d/c2", "SAMM": "/d/samm"}
    assert cfg.data.prepared == str(tmp_path / "p")  # the flag wins over the same key as an override
    assert cfg.data.megc_list == "gt.csv"
    assert args == () and kwargs == {"manifest_only": True, "preview": False}


def test_pretrain_and_loso_flags_become_config_keys(captured, tmp_path):
    invoke(["pretrain", "--prepared", str(tmp_path / "prep"), "--out", str(tmp_path / "pre")])
    cfg, args, _ = captured["run_pretrain"]
    assert cfg.data.prepared == str(tmp_path / "prep") and args == (tmp_path / "pre", {"method": "fixed"})
    invoke(["loso", "--prepared", "p2", "--workers", "3", "--folds", "casme2/s1,samm/s2", "--fold-index", "1",
            "--pretrained", "w.pt", "loso.workers=5"])  # fmt: skip
    cfg, args, kwargs = captured["run_loso"]
    assert (cfg.data.prepared, cfg.loso.workers) == ("p2", 3)
    assert cfg.loso.folds == []  # --folds chooses among the planned folds; the plan (config) stays whole
    assert args == (Path("runs/loso"), Path("w.pt"))
    assert kwargs == {"fold_index": 1, "folds": "casme2/s1,samm/s2", "allow_mixed": False}
    invoke(["loso", "--final", "--prepared", "p3"])
    cfg, args, _ = captured["run_final"]
    assert cfg.data.prepared == "p3" and args == (Path("runs/loso"), None)


def test_from_study_is_resolved_by_the_cli_as_overrides(captured, monkeypatch):
    import mer.sweep.storage as storage

    seen = []
    record = {"method": "from-study", "study": "t"}
    best = (["train.finetune.lr=0.5"], record)
    monkeypatch.setattr(storage, "best_selection", lambda spec: seen.append(spec) or best)
    result = invoke(["loso", "--from-study", "sqlite:///s.db::t", "train.finetune.lr=0.1", "train.finetune.l2=0.2"])
    cfg, _, kwargs = captured["run_loso"]
    assert seen == ["sqlite:///s.db::t"] and "from_study" not in kwargs and kwargs["selection"] == record
    assert (cfg.train.finetune.lr, cfg.train.finetune.l2) == (0.5, 0.2)  # the study's parameters come after yours
    assert "using the study's best parameters: train.finetune.lr=0.5" in result.output


def test_loso_help_tells_per_call_folds_from_the_plan():
    text = " ".join(re.sub("[│╭╮╰╯─]", " ", runner.invoke(app, ["loso", "--help"]).output).split())
    assert "sets loso.workers" in text and "sets data.prepared" in text
    assert "The plan and config stay the same" in text and "loso.folds" in text


# ---------------------------------------------------------------- a command imports what it uses

HEAVY = ("lightning", "wandb", "albumentations")


def heavy_modules_after(args: list[str], cwd: Path) -> list[str]:
    """Run `mer ARGS` in a fresh interpreter; the heavy packages it imported (it must exit 0)."""
    code = (
        "import json, sys\nfrom mer.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_help_prepare_and_report_import_no_training_stack(tmp_path):
    assert heavy_modules_after(["--help"], tmp_path) == []
    for label, clip in [("negative", "a"), ("surprise", "b")]:
        for k in range(3):
            path = tmp_path / "data" / label / "s1" / clip / f"frame{k:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), np.full((16, 16), 100 + k, np.uint8))
    prepare = ["prepare", "--data", f"folder={tmp_path / 'data'}", "--out", str(tmp_path / "prep"), "--manifest-only"]
    assert heavy_modules_after(prepare, tmp_path) == []
    assert (tmp_path / "prep" / "manifest.csv").is_file()
    run = make_run(tmp_path / "run")
    assert heavy_modules_after(["report", str(run)], tmp_path) == []
    assert (run / "report.md").is_file()
