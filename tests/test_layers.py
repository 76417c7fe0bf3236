"""Import layering: the import-linter contracts in pyproject.toml hold and they catch a broken layer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with the project's contracts on the `mer` package under `root`."""
    script = Path(sys.executable).with_name("lint-imports")
    exe = str(script) if script.is_file() else shutil.which("lint-imports")
    assert exe, "lint-imports not found: install the dev extra (pip install -e '.[dev]')"
    env = {**os.environ, "PYTHONPATH": str(root)}
    config = str(ROOT / "pyproject.toml")
    return subprocess.run([exe, config, "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold():
    proc = lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "BROKEN" not in proc.stdout and "0 broken" in proc.stdout


def test_a_low_layer_importing_the_cli_breaks_the_contracts(tmp_path):
    shutil.copytree(ROOT / "mer", tmp_path / "mer", ignore=shutil.ignore_patterns("__pycache__"))
    config = tmp_path / "mer" / "config.py"
    config.write_text(config.read_text() + "\nimport mer.cli  # noqa\n")
    proc = lint_imports(tmp_path)
    text = " ".join(proc.stdout.split())
    assert proc.returncode != 0
    assert "nothing imports the CLI BROKEN" in text and "mer.config is not allowed to import mer.cli" in text
