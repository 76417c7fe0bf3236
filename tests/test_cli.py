"""CLI: every subcommand listed with help; user errors are one line with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mer.cli import app

COMMANDS = ["demo", "prepare", "pretrain", "loso", "report", "sweep", "predict", "export", "bench"]
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
