"""Selection provenance that travels: however a study's chosen values reach `mer loso`, the report says where they
came from and is stamped from subject sets.

The override line of `mer sweep --best` ends with `selected_by=STORAGE_URL::STUDY`; pasted into `mer loso` the run
records the study's own subject list (not "fixed"), pasted into `mer pretrain` the same record goes into
pretrained.pt, and `mer loso --pretrained` (nested too) stamps each fold whose test subject chose the checkpoint's
hyper-parameters. A study that cannot be opened leaves the selection UNVERIFIED (stamped LEAKY); a hand-written
override stays fixed. The studies here are written through Optuna's API with the user attributes `mer sweep`
records (`inner_subjects`, `objective`), so no sweep has to train first; `tests/test_nested.py` checks that a real
sweep records them.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from mer.cli import app
from mer.config import as_override, load_config
from mer.evaluation.report import write_report
from mer.evaluation.runs import load_run
from mer.evaluation.selection import leaky_reasons
from mer.models.backbones import read_checkpoint
from mer.provenance import CHECKPOINT_SELECTION, fixed_selection, from_study_selection, unverified_selection
from mer.sweep import open_storage
from mer.sweep.storage import selection_of
from tests.helpers import BASE, TINY, make_prepared, make_run, spec_dict, write_prepared_dir, write_spec

MICRO = ["casme2/s0", "casme2/s1", "samm/s0", "samm/s1"]
FOLDS = ["casme2/s0", "samm/s0"]
FT = {"train.finetune.lr": 0.003}  # the fine-tuning study's best trial
PRE = {"train.pretrain.lr": 0.01}  # the pre-training study's best trial
TINY_ARGS = [as_override(k, v) for k, v in TINY.items()]
PRETRAIN_ARGS = ["train.pretrain.epochs=1", "train.pretrain.batch_size=16", "train.pretrain.val_subjects=0.0"]
runner = CliRunner()


def make_study(url: str, name: str, inner: list[str], params: dict, objective: str = "inner_loso") -> None:
    """A study with one complete trial (`params`) and the subject record `mer sweep` writes."""
    study = optuna.create_study(study_name=name, storage=open_storage(url), direction="maximize")
    study.set_user_attr("inner_subjects", sorted(inner))
    study.set_user_attr("objective", objective)
    dists = {k: optuna.distributions.CategoricalDistribution([v]) for k, v in params.items()}
    study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=0.5))


def best_line(spec: Path, url: str) -> list[str]:
    """The first line of `mer sweep SPEC --storage URL --best`, split as a shell would."""
    result = runner.invoke(app, ["sweep", str(spec), "--storage", url, "--best"])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()[0].split()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """Prepared data (4 micro, 2 macro subjects) and two studies in one storage: `ft` (fine-tuning values, chosen
    with samm/s0 in its inner folds, casme2/s0 held out) and `pre` (pre-training values, chosen with casme2/s0)."""
    root = tmp_path_factory.mktemp("selection")
    subjects = {**{s: "micro" for s in MICRO}, "ckplus/S0": "macro", "ckplus/S1": "macro"}
    prepared = write_prepared_dir(root / "prepared", make_prepared(root / "prepared", subjects, per_class=2, size=32))
    url = f"sqlite:///{root / 'studies.db'}"
    make_study(url, "ft", ["casme2/s1", "samm/s0", "samm/s1"], FT)
    make_study(url, "pre", ["casme2/s0", "casme2/s1"], PRE)
    ft = write_spec(root / "ft.yaml", spec_dict(root / "ft", study="ft", search={"train.finetune.lr": [0.003]}))
    pre = write_spec(root / "pre.yaml", spec_dict(root / "pre", study="pre", stage="pretrain",
                                                  search={"train.pretrain.lr": [0.01]}))  # fmt: skip
    return {"root": root, "prepared": prepared, "url": url, "ft": ft, "pre": pre}


# ---------------------------------------------------------------- records and stamps (no training)


def test_a_hand_written_override_stays_fixed_and_an_unreadable_study_is_unverified(world, capsys):
    assert selection_of(load_config(BASE, ["train.finetune.lr=0.003"])) == fixed_selection()
    missing = f"sqlite:///{world['root'] / 'gone.db'}::ft"
    record = selection_of(load_config(BASE, ["train.finetune.lr=0.003", as_override("selected_by", missing)]))
    assert record["method"] == "unverified" and record["study"] == missing and "no SQLite storage" in record["reason"]
    assert "UNVERIFIED selection" in capsys.readouterr().err
    assert leaky_reasons(record, {"casme2/s0": {"casme2/s0"}})[0].startswith("UNVERIFIED selection")
    # read back: the study's own subjects, and the keys whose value differs from its best trial
    found = selection_of(load_config(BASE, ["train.finetune.lr=0.001", f"selected_by={world['url']}::ft"]))
    assert found["method"] == "from-study" and found["inner_subjects"] == ["casme2/s1", "samm/s0", "samm/s1"]
    assert found["edited"] == {"train.finetune.lr": [0.001, 0.003]}


def test_pretrained_selection_is_checked_per_fold():
    tested = {"casme2/s0": {"casme2/s0"}, "samm/s0": {"samm/s0"}}
    chose = from_study_selection("pre", None, "inner_loso", ["casme2/s0"], PRE, trial=3)
    (reason,) = leaky_reasons(fixed_selection(), tested, pretrained=chose)
    assert "casme2/s0; 1 of 2 folds" in reason and "pre-trained weights" in reason
    assert leaky_reasons(fixed_selection(), {"samm/s0": {"samm/s0"}}, pretrained=chose) == []
    assert leaky_reasons(fixed_selection(), tested, pretrained=fixed_selection()) == []
    unknown = unverified_selection("sqlite:///x.db::pre", "no SQLite storage at x.db")
    assert "UNVERIFIED" in leaky_reasons(None, tested, pretrained=unknown)[0]
    nested = {"method": "nested", "folds": {f: {"test_subjects": [f], "inner_subjects": []} for f in tested}}
    assert len(leaky_reasons(nested, tested, pretrained=chose)) == 1  # nested mode checks the checkpoint too


def test_an_unverified_selection_is_stamped_leaky_in_the_report(tmp_path):
    notes = {"selection": unverified_selection("sqlite:///gone.db::ft", "no SQLite storage at gone.db")}
    run = load_run(make_run(tmp_path / "run", notes=notes))
    assert run.leaky and run.stamps[0] == "LEAKY"
    write_report(tmp_path / "run")
    text = (tmp_path / "run" / "report.md").read_text()
    assert "UNVERIFIED selection" in text and "Hyper-parameters: UNVERIFIED" in text


# ---------------------------------------------------------------- routes into mer loso (trains tiny networks)


def test_best_lines_pasted_into_pretrain_and_loso_are_stamped_per_fold(world):
    root, prepared, url = world["root"], world["prepared"], world["url"]
    pre_line = best_line(world["pre"], url)
    assert pre_line[-1] == f"selected_by={url}::pre"
    result = runner.invoke(app, ["pretrain", "--prepared", str(prepared), "--out", str(root / "pretrain"),
                                 "-c", "default", "-c", "tiny", *TINY_ARGS, *PRETRAIN_ARGS, *pre_line])  # fmt: skip
    assert result.exit_code == 0, result.output
    weights = root / "pretrain" / "pretrained.pt"
    chose = read_checkpoint(weights)[1][CHECKPOINT_SELECTION]
    assert chose["method"] == "from-study" and chose["study"] == "pre"
    assert chose["inner_subjects"] == ["casme2/s0", "casme2/s1"]

    out = root / "loso"
    result = runner.invoke(app, ["loso", "--prepared", str(prepared), "--out", str(out), "--pretrained", str(weights),
                                 "-c", "default", "-c", "tiny", *TINY_ARGS, "loso.folds=[casme2/s0,samm/s0]",
                                 *best_line(world["ft"], url)])  # fmt: skip
    assert result.exit_code == 0, result.output
    notes = json.loads((out / "loso.json").read_text())
    assert notes["selection"]["method"] == "from-study" and notes["selection"]["study"] == "ft"  # not "fixed"
    assert notes["pretrained_selection"] == chose
    scores = json.loads((out / "scores.json").read_text())
    assert scores["leaky"] is True
    study_reason, weights_reason = scores["leaky_reasons"]
    assert "(samm/s0; 1 of 2 folds)" in study_reason and "'ft' that chose the hyper-parameters" in study_reason
    assert "(casme2/s0; 1 of 2 folds)" in weights_reason and "pre-trained weights" in weights_reason
    md = (out / "report.md").read_text()
    assert "Hyper-parameters: from-study: best trial of 'ft'" in md
    assert "Pre-trained weights' hyper-parameters: from-study: best trial of 'pre'" in md


def test_nested_loso_from_a_checkpoint_chosen_on_its_test_subject_is_leaky(world):
    root, prepared = world["root"], world["prepared"]
    weights = root / "pretrain" / "pretrained.pt"
    if not weights.is_file():  # run alone: the checkpoint of `mer pretrain` with the pre study's values
        result = runner.invoke(app, ["pretrain", "--prepared", str(prepared), "--out", str(root / "pretrain"),
                                     "-c", "default", "-c", "tiny", *TINY_ARGS, *PRETRAIN_ARGS,
                                     *best_line(world["pre"], world["url"])])  # fmt: skip
        assert result.exit_code == 0, result.output
    spec = write_spec(root / "nested.yaml", spec_dict(root / "unused", search={"train.finetune.lr": [0.003]}))
    out = root / "nested"
    result = runner.invoke(app, ["loso", "--prepared", str(prepared), "--out", str(out), "--nested", str(spec),
                                 "--pretrained", str(weights), "loso.folds=[casme2/s0]"])  # fmt: skip
    assert result.exit_code == 0, result.output
    notes = json.loads((out / "loso.json").read_text())
    assert notes["selection"]["method"] == "nested" and notes["pretrained_selection"]["study"] == "pre"
    scores = json.loads((out / "scores.json").read_text())
    assert scores["leaky"] is True and len(scores["leaky_reasons"]) == 1
    assert "casme2/s0" in scores["leaky_reasons"][0] and "pre-trained weights" in scores["leaky_reasons"][0]
