"""`mer datasets check`: counts beside the published ones on full-size fixture trees and on the demo corpus, the
listed samples found and missing, exit codes, JSON, and no torch import."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mer.cli import main
from mer.data.check import QUANTITIES, check_roots
from mer.demo.corpus import DemoSummary, generate_corpus
from tests.layouts import make_megc_trees, make_samm


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return make_megc_trees(tmp_path_factory.mktemp("megc"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    """The quick demo corpus (what `mer demo --quick` writes)."""
    return generate_corpus(tmp_path_factory.mktemp("demo") / "data", seed=0, quick=True)


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def data_args(roots: dict) -> list[str]:
    return [arg for name, root in roots.items() for arg in ("--data", f"{name}={root}")]


def test_trees_as_shipped_match_every_published_count(trees: dict, capsys: pytest.CaptureFixture[str]) -> None:
    result = check_roots(trees["roots"], trees["list441"])
    by = {d.dataset: d for d in result.datasets}
    assert by["casme2"].counts == {"sheet_rows": 255, "samples_on_disk": 255, "frames_missing": 0, "apex_less": 7,
                                   "outside_scheme": 108, "subjects": 26}  # fmt: skip
    assert by["samm"].counts["sheet_rows"] == 159 and by["samm"].counts["outside_scheme"] == 26
    assert by["samm"].counts["apex_less"] == 3 and by["samm"].counts["subjects"] == 29
    assert by["smic"].counts["sheet_rows"] is None and by["smic"].counts["apex_less"] == 164
    assert [(d.listed, d.found, d.missing) for d in result.datasets] == [(145, 145, []), (132, 132, []), (164, 164, [])]
    assert result.differences() == []
    assert by["samm"].version == "SAMM v2: SAMM_Micro_FACS_Codes_v2.xlsx, header on row 14, 159 rows"
    assert result.summary().startswith("datasets check: casme2 255 (published 255), samm 159 (published 159)")
    assert "MEGC2019 list (441): 441 of 441 listed samples found" in result.summary()

    code, out, _ = run_cli(["datasets", "check", *data_args(trees["roots"]), "--megc-list", str(trees["list442"]),
                            "--strict"], capsys)  # fmt: skip
    assert code == 0
    assert "255 (255)" in out and "133 (133)" in out and "*" not in out.split("In brackets")[0]
    assert "the 442-sample variant" in out and "casme2 label file: CASME II coding sheet of 2014-05-08" in out

    code, out, _ = run_cli(["datasets", "check", *data_args(trees["roots"]), "--json"], capsys)
    payload = json.loads(out)
    assert code == 0 and set(payload["datasets"]) == {"casme2", "samm", "smic"}
    counts = payload["datasets"]["casme2"]["counts"]
    assert set(counts) == set(QUANTITIES) and counts["sheet_rows"]["official"] == 255
    assert "tvaranka/meb" in counts["sheet_rows"]["source"] and payload["differences"] == []


def test_an_incomplete_copy_is_counted_and_strict_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trees = make_megc_trees(tmp_path)
    smic_clip = next((trees["roots"]["smic"] / "HS" / "s3" / "micro" / "negative").iterdir())
    shutil.rmtree(smic_clip)
    casme_clip = next(p for p in (trees["roots"]["casme2"] / "CASME2_RAW_selected" / "sub02").iterdir())
    for frame in casme_clip.iterdir():
        frame.unlink()
    result = check_roots(trees["roots"], trees["list442"])
    by = {d.dataset: d for d in result.datasets}
    assert by["casme2"].counts["frames_missing"] == 1 and by["casme2"].counts["samples_on_disk"] == 254
    assert by["smic"].counts["samples_on_disk"] == 163
    assert by["smic"].missing == [smic_clip.name.replace("s3_", "s03_")]  # named as the list spells it
    assert ("smic", "samples_on_disk", 163, 164) in result.differences()
    code, out, _ = run_cli(["datasets", "check", *data_args(trees["roots"]), "--megc-list", str(trees["list442"]),
                            "--strict"], capsys)  # fmt: skip
    assert code == 1
    assert "163 (164) *" in out and f"smic listed but not found: {smic_clip.name.replace('s3_', 's03_')}" in out
    code, _, _ = run_cli(["datasets", "check", *data_args(trees["roots"])], capsys)
    assert code == 0  # differences alone do not fail without --strict


def test_wrong_roots_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["datasets", "check", "--data", f"casme2={tmp_path / 'nowhere'}"], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: casme2 root not found")
    samm_root = make_samm(tmp_path / "SAMM")
    code, out, err = run_cli(["datasets", "check", "--data", f"casme2={samm_root}"], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "does not look like CASME II" in err and "SAMM/" in err and "SAMM_Micro_FACS_Codes_v2.xlsx" in err
    code, _, err = run_cli(["datasets", "check", "--data", "casme2"], capsys)
    assert code == 2 and "not of the form NAME=ROOT" in err


def test_check_runs_on_the_demo_corpus(corpus: DemoSummary, capsys: pytest.CaptureFixture[str]) -> None:
    roots = {name: str(path) for name, path in corpus.roots.items()}
    result = check_roots(roots)
    by = {d.dataset: d for d in result.datasets}
    kept = corpus.counts.sum(axis=1).to_dict()
    for name in ("casme2", "samm", "smic"):
        assert by[name].counts["samples_on_disk"] == kept[name] + by[name].counts["outside_scheme"], name
    assert by["casme2"].counts["outside_scheme"] == 1  # the demo's fear row
    assert by["ckplus"].counts["samples_on_disk"] is None  # macro sets count no sample folders
    code, out, _ = run_cli(["datasets", "check", *data_args(roots)], capsys)
    assert code == 0 and "ckplus" in out and "(255)" in out  # demo counts beside the published ones


def test_the_check_never_imports_torch(trees: dict) -> None:
    code = (
        "import sys\n"
        "from mer.cli import main\n"
        f"try:\n    main(['datasets', 'check', '--data', 'smic={trees['roots']['smic']}'])\n"
        "except SystemExit as exc:\n    assert not exc.code\n"
        "print('torch' in sys.modules, 'lightning' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False False"


def test_datasets_check_has_help() -> None:
    from typer.testing import CliRunner

    from mer.cli import app

    result = CliRunner().invoke(app, ["datasets", "check", "--help"])
    assert result.exit_code == 0 and "--megc-list" in result.output and "--strict" in result.output
    assert "datasets" in CliRunner().invoke(app, ["--help"]).output
