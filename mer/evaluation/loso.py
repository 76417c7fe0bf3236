"""Leave-one-subject-out evaluation: plan folds, fine-tune + SVM per fold, write results atomically, resume.

Each fold's seed derives from the config seed and the fold's name, never from run order, so sequential runs,
`--workers N`, `--fold-index I` array jobs and resumed runs all give the same predictions.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback
from sklearn.pipeline import Pipeline
from tqdm.auto import tqdm

from mer.config import FEATURE_BACKBONES, LOSO_PROTOCOLS, Config, class_names, load_config, to_yaml
from mer.data.prepared import check_scheme, load_prepared
from mer.errors import DataError, MerError
from mer.evaluation.pool import fold_pool
from mer.evaluation.report import write_report
from mer.evaluation.resume import check_same_config, check_same_inputs, check_same_regime, prepared_fingerprint
from mer.evaluation.run_folder import CONFIG, HELD_OUT_DIR, RUN_INFO, FoldMetrics, FoldResult, RunFolder
from mer.evaluation.svm import fit_svm
from mer.evaluation.tracking import log_summary
from mer.files import file_sha256
from mer.inference.bundle import save_bundle
from mer.models.backbones import read_checkpoint
from mer.provenance import CHECKPOINT_SELECTION, config_selection, regime, write_run_info
from mer.runtime import device_placement
from mer.train import StageResult, check_pretrained, embed_split, finish_wandb, train_stage


@dataclass(frozen=True)
class Fold:
    """One fold: its position in the plan, its name (the held-out subject, or dataset under `lodo`), the subjects it
    holds out and `pool`, the micro subjects it may use at all (training side + held out; empty: every subject)."""

    index: int
    name: str
    held_out: tuple[str, ...]
    pool: tuple[str, ...] = ()

    def restrict(self, prepared: pd.DataFrame) -> pd.DataFrame:
        """The prepared rows this fold sees: macro rows and the micro rows of its pool (all rows without a pool)."""
        if not self.pool:
            return prepared
        keep = (prepared["kind"] != "micro") | prepared["subject"].isin(set(self.pool))
        return prepared[keep].reset_index(drop=True)

    @property
    def seed_offset(self) -> int:
        """Stable per-fold offset to the config seed (independent of order and of which folds run)."""
        return zlib.crc32(self.name.encode()) % 100_000


PROTOCOLS = LOSO_PROTOCOLS
DFME_TESTS = ("testA", "testB")


def plan_folds(
    prepared: pd.DataFrame, group_size: int = 1, only: Sequence[str] = (), protocol: str = "composite"
) -> list[Fold]:
    """The folds of a protocol (`loso.protocol`), in sorted order:

    composite: one fold per micro subject (or per `group_size` consecutive subjects), training on every other one;
    per_dataset: the same, but each fold trains only on its own dataset's subjects; lodo: one fold per dataset,
    training on the other datasets; dfme: DFME's official split, training on `train` and testing on testA and on
    testB (one fold each; the other test split is not used).
    """
    micro = prepared[prepared["kind"] == "micro"]
    subjects = sorted(micro["subject"].unique())
    if not subjects:
        raise DataError("no micro-expression samples in the prepared data (prepare CASME II / SAMM / SMIC folders)")
    if protocol == "lodo":
        folds = _lodo_folds(micro)
    elif protocol == "dfme":
        folds = _dfme_folds(micro)
    elif protocol == "per_dataset":
        folds = []
        for dataset, part in micro.groupby("dataset", sort=True):
            pool = tuple(sorted(part["subject"].unique()))
            prefix = f"{dataset}/group" if group_size > 1 else ""
            folds += [Fold(0, name, held, pool) for name, held in _subject_folds(list(pool), group_size, prefix)]
        folds = [Fold(i, f.name, f.held_out, f.pool) for i, f in enumerate(folds)]
    elif protocol == "composite":
        folds = [Fold(i, name, held) for i, (name, held) in enumerate(_subject_folds(subjects, group_size, "group"))]
    else:
        raise MerError(f"loso.protocol: '{protocol}' is not allowed; choose one of: {', '.join(PROTOCOLS)}")
    return select_folds(folds, only) if only else folds


def _subject_folds(subjects: list[str], group_size: int, prefix: str) -> list[tuple[str, tuple[str, ...]]]:
    if group_size <= 1:
        return [(s, (s,)) for s in subjects]
    chunks = [subjects[i : i + group_size] for i in range(0, len(subjects), group_size)]
    return [(f"{prefix}{i:02d}", tuple(c)) for i, c in enumerate(chunks)]


def _lodo_folds(micro: pd.DataFrame) -> list[Fold]:
    """Leave one dataset out: each dataset's subjects held out in turn, the other datasets train."""
    datasets = sorted(micro["dataset"].unique())
    if len(datasets) < 2:
        raise DataError(f"loso.protocol=lodo needs at least two micro datasets; the prepared data holds {datasets}")
    return [
        Fold(i, d, tuple(sorted(micro.loc[micro["dataset"] == d, "subject"].unique()))) for i, d in enumerate(datasets)
    ]


def _dfme_folds(micro: pd.DataFrame) -> list[Fold]:
    """DFME's official split: train → testA and train → testB (the manifest's `split` column from the dfme reader)."""
    dfme = micro[micro["dataset"] == "dfme"]
    if dfme.empty or "split" not in dfme or not dfme["split"].notna().any():
        raise DataError(
            "loso.protocol=dfme needs DFME samples with their split (train / testA / testB): prepare the dfme root "
            "(--data dfme=ROOT) with mer prepare"
        )
    by_split = {s: set(dfme.loc[dfme["split"] == s, "subject"]) for s in ("train", *DFME_TESTS)}
    if not by_split["train"]:
        raise DataError("loso.protocol=dfme: no DFME training samples (split train) in the prepared data")
    shared = sorted(
        (by_split["train"] & (by_split["testA"] | by_split["testB"])) | (by_split["testA"] & by_split["testB"])
    )
    if shared:
        raise DataError(f"loso.protocol=dfme: subjects {shared[:5]} appear in more than one DFME split")
    tests = [s for s in DFME_TESTS if by_split[s]]
    if not tests:
        raise DataError("loso.protocol=dfme: no DFME test samples (split testA or testB) in the prepared data")
    return [
        Fold(i, f"dfme/{s}", tuple(sorted(by_split[s])), tuple(sorted(by_split["train"] | by_split[s])))
        for i, s in enumerate(tests)
    ]


def select_folds(folds: Sequence[Fold], names: Sequence[str]) -> list[Fold]:
    """The folds named in `names`, in plan order; an unknown name is an error listing the known ones."""
    known = {f.name for f in folds}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise MerError(f"unknown fold(s) {', '.join(unknown)}; folds are: {', '.join(sorted(known)[:10])}, ...")
    return [f for f in folds if f.name in set(names)]


def check_inputs(cfg: Config, prepared: pd.DataFrame, pretrained: str | Path | None) -> None:
    """Everything that can be wrong before training starts: checkpoint, classes, subjects."""
    check_scheme(cfg.data.prepared, cfg.data.classes)
    micro = prepared[prepared["kind"] == "micro"]
    labels = sorted(set(micro["label"]) & set(class_names(cfg.data)))
    if len(labels) < 2:
        raise DataError(f"the micro-expression data holds only class(es) {labels}; LOSO needs at least two classes")
    if micro["subject"].nunique() < 2:
        raise DataError("LOSO needs at least two micro-expression subjects")
    check_pretrained(cfg, pretrained)


@dataclass
class FittedModel:
    """A fine-tuned network with its training side (train + validation rows) and the SVM fitted on their embeddings."""

    result: StageResult
    train_side: pd.DataFrame
    svm: Pipeline | None
    svm_info: dict[str, Any] | None


def fit_network_and_svm(
    cfg: Config,
    prepared: pd.DataFrame,
    out_dir: Path,
    *,
    held_out: Sequence[str] = (),
    pretrained: str | Path | None,
    seed: int,
    run_name: str,
    job_type: str,
    fit_classifier: bool = True,
    enable_progress: bool | None = None,
    callbacks: Sequence[Callback] = (),
) -> FittedModel:
    """Fine-tune on every micro subject except `held_out`, embed the training side, fit the SVM on it.

    The sequence a LOSO fold and `--final` share; with `fit_classifier=False` (softmax-only ablation) no SVM is fitted.
    """
    res = train_stage(
        cfg,
        prepared,
        "finetune",
        out_dir,
        held_out=held_out,
        init_weights=pretrained,
        seed=seed,
        run_name=run_name,
        group=cfg.name,
        job_type=job_type,
        keep_checkpoint=False,
        enable_progress=enable_progress,
        callbacks=callbacks,
    )
    finish_wandb()
    dm = res.datamodule
    side = pd.concat([dm.train_df, dm.val_df], ignore_index=True)
    emb = np.concatenate([embed_split(res.module, dm, s)["embeddings"] for s in ("train", "val")])
    if not fit_classifier:
        return FittedModel(res, side, None, None)
    svm, svm_info = fit_svm(emb, side["label"].to_numpy(), side["subject"].to_numpy(), cfg.svm, seed)
    return FittedModel(res, side, svm, svm_info)


def load_features(rows: pd.DataFrame) -> np.ndarray:
    """The cached feature vectors (`features` column of prepared.csv: LBP-TOP per clip) of some rows, stacked."""
    if "features" not in rows or (len(rows) and not all(rows["features"])):
        raise DataError(
            "model.backbone=lbptop needs LBP-TOP features in the prepared folder: re-run `mer prepare` with "
            "model.backbone=lbptop (e.g. -c method/lbptop) into its own --out folder"
        )
    return np.stack([np.load(p, allow_pickle=False) for p in rows["features"]]) if len(rows) else np.zeros((0, 1))


def run_feature_fold(
    cfg: Config, prepared: pd.DataFrame, held_out: Sequence[str], seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, Pipeline, dict[str, Any]]:
    """A fold without a network (`model.backbone: lbptop`): the SVM on the training subjects' fixed features.

    Returns (training rows, held-out rows, held-out features, fitted SVM, its info); the SVM's hyper-parameters are
    chosen by grouped CV over the training subjects exactly as on network embeddings (`mer.evaluation.svm.fit_svm`).
    """
    micro = prepared[(prepared["kind"] == "micro") & prepared["label"].isin(class_names(cfg.data))]
    held = set(held_out)
    train, test = micro[~micro["subject"].isin(held)], micro[micro["subject"].isin(held)]
    train, test = train.reset_index(drop=True), test.reset_index(drop=True)
    svm, info = fit_svm(load_features(train), train["label"].to_numpy(), train["subject"].to_numpy(), cfg.svm, seed)
    return train, test, load_features(test), svm, info


def run_fold(
    cfg: Config,
    prepared: pd.DataFrame,
    fold: Fold,
    out: Path,
    pretrained: str | Path | None,
    callbacks: Sequence[Callback] = (),
    extra: dict[str, Any] | None = None,
) -> FoldResult:
    """Fine-tune on the other subjects, embed, fit the SVM on training subjects only, predict the held-out ones;
    write the fold's result into the run folder `out` with the regime it ran under, and return it.

    `callbacks` go to the fold's Lightning Trainer (a sweep's per-epoch pruning callback, for instance); `extra`
    fields join the fold's metrics.json (a nested fold's `selection`: its inner study and chosen parameters).
    """
    folder = RunFolder(out)
    folder.start_fold(fold.name)
    prepared = fold.restrict(prepared)
    seed = cfg.seed + fold.seed_offset
    start = time.perf_counter()
    where = {"fold": fold.name, "index": fold.index, "held_out": fold.held_out, "seed": seed}
    classes = list(class_names(cfg.data))
    if cfg.model.backbone in FEATURE_BACKBONES:  # no network: the SVM's prediction, no softmax, no probabilities
        train, test, feats, svm, svm_info = run_feature_fold(cfg, prepared, fold.held_out, seed)
        result = FoldResult.build(test, classes, svm_pred=svm.predict(feats) if len(feats) else [], probs=None,
                                  n_train=len(train), svm_params=svm_info, seconds=time.perf_counter() - start,
                                  provenance=regime(cfg), extra=extra, **where)  # fmt: skip
        folder.write_fold(fold.name, result)
        return result
    fitted = fit_network_and_svm(
        cfg,
        prepared,
        folder.train_dir(fold.name),
        held_out=fold.held_out,
        pretrained=pretrained,
        seed=seed,
        run_name=f"{cfg.name}-{fold.name}",
        job_type="fold",
        fit_classifier=cfg.loso.classifier == "svm",
        enable_progress=False,
        callbacks=callbacks,
    )
    res, svm = fitted.result, fitted.svm
    dm = res.datamodule
    test = embed_split(res.module, dm, "test")
    emb_te = test["embeddings"]
    svm_pred = None if svm is None else (svm.predict(emb_te) if len(emb_te) else [])  # None: softmax-only ablation
    result = FoldResult.build(
        dm.test_df,
        classes,
        svm_pred=svm_pred,
        probs=test["probs"],
        n_train=len(dm.train_df),
        n_val=len(dm.val_df),
        val_subjects=sorted(dm.val_df["subject"].unique().tolist()),
        svm_params=fitted.svm_info,
        best_epoch=res.best_epoch,
        best_val=res.best_score,
        monitor=res.monitor,
        epochs=res.epochs_run,
        seconds=time.perf_counter() - start,
        provenance=regime(cfg),
        extra=extra,
        **where,
    )
    folder.write_fold(fold.name, result)
    return result


def _worker_init(threads: int, gpu_queue: Any) -> None:
    if gpu_queue is not None:  # "" hides every GPU (loso.devices=[cpu]); an id pins the worker to that GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_queue.get())
    torch.set_num_threads(threads)


def _run_fold_in_worker(
    config_yaml: str, prepared_dir: str, fold: Fold, out: str, pretrained: str | None
) -> FoldResult:
    return run_fold(load_config(text=config_yaml), load_prepared(Path(prepared_dir)), fold, Path(out), pretrained)


def run_loso(
    cfg: Config,
    out: str | Path,
    pretrained: str | Path | None = None,
    *,
    fold_index: int | None = None,
    folds: str | Sequence[str] | None = None,
    selection: dict[str, Any] | Callable[[list[Fold], pd.DataFrame], dict[str, Any]] | None = None,
    selection_key: str = "fixed",
    fold_runner: Callable[[Fold, pd.DataFrame, str | Path | None], FoldResult] | None = None,
    allow_mixed: bool = False,
) -> Path:
    """`mer loso`: run the planned folds that are not complete yet; write the report once every fold is done.

    The plan is the config's (`loso.folds`, or every micro subject); `folds` (names) or `fold_index` only choose
    which of its folds this call runs, so they change neither the run's config nor when its report is due.
    `selection` is loso.json's record of how hyper-parameters were chosen (default: `config_selection`, fixed unless
    the config names a study; a callable gets the plan and the prepared table); the `pretrained` checkpoint's own
    record goes beside it (`pretrained_selection`). `selection_key` is what a resumed run must share with it, and
    `fold_runner(fold, prepared, pretrained)` replaces `run_fold` (the nested driver runs each fold's inner study
    first; folds then run one after another in this process). Folds already there that recorded another regime
    (code, package versions, resolved numerics) refuse the call unless `allow_mixed` (the report is then stamped
    MIXED).
    """
    out = Path(out)
    folder = RunFolder(out)
    prepared_dir = Path(cfg.data.prepared)
    prepared = load_prepared(prepared_dir)
    # The run's plan (config `loso.folds` or every subject) decides when the report is due; --folds and
    # --fold-index only choose which of its folds this call runs.
    everything = plan_folds(prepared, cfg.loso.group_size, cfg.loso.folds, cfg.loso.protocol)
    chosen = [f for f in (folds.split(",") if isinstance(folds, str) else folds or []) if f]
    plan = select_folds(everything, chosen) if chosen else everything
    if fold_index is not None:
        if not 0 <= fold_index < len(everything):
            raise MerError(f"--fold-index {fold_index} is out of range: this run has folds 0..{len(everything) - 1}")
        plan = [everything[fold_index]]
    if pretrained is not None and not cfg.loso.transfer:
        print(
            f"loso.transfer=false (no-transfer ablation): ignoring --pretrained {pretrained}; folds start from scratch"
        )
        pretrained = None
    check_inputs(cfg, prepared, pretrained)
    check_same_config(cfg, out)
    planned = [f.name for f in everything]
    chosen_by = selection(everything, prepared) if callable(selection) else (selection or config_selection(cfg))
    notes = {"pretrained": str(pretrained) if pretrained else None, "prepared": str(prepared_dir),
             "pretrained_sha256": file_sha256(pretrained) if pretrained else None,
             "pretrained_selection": checkpoint_selection(pretrained) if pretrained else None,
             "data_fingerprint": prepared_fingerprint(prepared_dir), "selection_key": selection_key,
             "selection": chosen_by, "planned_folds": planned, "protocol": cfg.loso.protocol}  # fmt: skip
    check_same_inputs(notes, out)
    current = fold_regime(cfg)
    check_same_regime(out, [folder], current, allow_mixed)
    write_run_info(cfg, out)
    folder.append_run_record(run_record(cfg, current, [f.name for f in plan], allow_mixed))
    folder.write_notes(notes)
    todo = [f for f in plan if not folder.fold_complete(f.name)]
    done = len(plan) - len(todo)
    if done:
        print(f"{done} of {len(plan)} folds already complete in {out}; running the other {len(todo)}")
    n_workers = 1 if fold_runner is not None else max(1, cfg.loso.workers)
    bar = tqdm(total=len(plan), initial=done, desc="LOSO folds", unit="fold")
    if n_workers == 1 or len(todo) <= 1:
        for fold in todo:
            if fold_runner is not None:
                m = fold_runner(fold, fold.restrict(prepared), pretrained)
            else:
                m = run_fold(cfg, prepared, fold, out, pretrained)
            bar.update()
            bar.write(_fold_line(m.metrics))
    else:
        _run_parallel(cfg, prepared_dir, todo, out, pretrained, n_workers, bar)
    bar.close()
    missing = [f.name for f in everything if not folder.fold_complete(f.name)]
    if missing:
        print(f"{len(everything) - len(missing)} of {len(everything)} folds complete; run again (or the other array "
              f"tasks) to finish, then `mer report {out}`")  # fmt: skip
        return out
    report = write_report(out)
    log_summary(cfg, out)  # the W&B summary run of this LOSO run (pooled scores, intervals, stamps)
    print(f"report → {report}")
    if cfg.loso.protocol in ("lodo", "dfme"):
        for path in held_out_reports(out, everything):
            print(f"held out {path.parent.relative_to(out / HELD_OUT_DIR)}: report → {path}")
    return out


def checkpoint_selection(path: str | Path) -> dict[str, Any] | None:
    """How a pre-trained checkpoint's hyper-parameters were chosen, as its pretrained.pt records it (None: it does
    not say, e.g. a file from before these records)."""
    record = read_checkpoint(path)[1].get(CHECKPOINT_SELECTION)
    return dict(record) if isinstance(record, dict) else None


def held_out_reports(out: Path, folds: Sequence[Fold]) -> list[Path]:
    """One report per fold of a lodo or dfme run (per held-out dataset / test split), beside the pooled one.

    Each is a run folder of its own (`held_out/<fold>/`: the run's config, notes restricted to that fold, a copy of
    the fold's results), so its scores and its bootstrap resample only that dataset's subjects.
    """
    folder = RunFolder(out)
    notes = folder.read_notes()
    paths = []
    for fold in folds:
        target = folder.held_out(fold.name)
        if target.path.exists():
            shutil.rmtree(target.path)
        shutil.copytree(folder.fold_dir(fold.name), target.fold_dir(fold.name))
        for name in (CONFIG, RUN_INFO):
            if folder.file(name).is_file():
                shutil.copy2(folder.file(name), target.file(name))
        target.write_notes({**notes, "planned_folds": [fold.name], "held_out_of": str(out)})
        paths.append(write_report(target.path))
    return paths


def _run_parallel(
    cfg: Config, prepared_dir: Path, todo: list[Fold], out: Path, pretrained: Any, n: int, bar: tqdm
) -> None:
    placement = device_placement(cfg.loso.devices, n, torch.cuda.device_count())
    queue = None
    if placement is not None:
        queue = mp.get_context("spawn").Manager().Queue()
        for device in placement:
            queue.put(device)
    threads = cfg.train.threads if cfg.train.threads > 0 else max(1, (os.cpu_count() or 1) // n)
    with fold_pool(n, _worker_init, (threads, queue), shareable=queue is None) as pool:
        futures = [
            pool.submit(
                _run_fold_in_worker,
                to_yaml(cfg),
                str(prepared_dir),
                f,
                str(out),
                str(pretrained) if pretrained else None,
            )  # fmt: skip
            for f in todo
        ]
        for fut in as_completed(futures):
            bar.update()
            bar.write(_fold_line(fut.result().metrics))


def _fold_line(m: FoldMetrics) -> str:
    svm = f"svm acc={m.svm_accuracy:.2f} " if m.svm_accuracy is not None else ""
    soft = f"softmax acc={m.softmax_accuracy:.2f} " if m.softmax_accuracy is not None else ""
    return f"fold {m.fold}: n={m.n_test} {svm}{soft}({m.seconds or 0:.0f} s)"


def fold_regime(cfg: Config) -> dict[str, Any]:
    """The regime this call's folds will run under (`mer.provenance.regime`), GPUs hidden by `loso.devices: [cpu]`
    taken into account (fold processes then see none)."""
    return regime(cfg, cuda=False if [str(d) for d in cfg.loso.devices] == ["cpu"] else None)


def run_record(cfg: Config, current: dict[str, Any], folds: Sequence[str], allow_mixed: bool) -> dict[str, Any]:
    """One call's line in runs.jsonl: when, the command, the seed, the folds it was asked to run and its regime."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"time": when, "command": " ".join(sys.argv), "seed": cfg.seed, "folds": list(folds),
            "allow_mixed": allow_mixed, "regime": current}  # fmt: skip


def run_final(cfg: Config, out: str | Path, pretrained: str | Path | None = None) -> Path:
    """`mer loso --final`: fine-tune on every micro subject, fit the SVM on all of them, save a bundle for predict.

    Not an evaluation (nothing is held out): run LOSO first to know how well this recipe does on unseen subjects.
    """
    out = Path(out)
    if cfg.model.backbone in FEATURE_BACKBONES:  # refused from the config alone, before any data is read
        raise MerError(f"model.backbone={cfg.model.backbone} has no network to bundle for `mer predict`; "
                       "--final needs a network backbone")  # fmt: skip
    if cfg.data.input != "apex":
        raise MerError(f"--final bundles feed `mer predict`, which sends apex crops; data.input={cfg.data.input} "
                       "is not supported there yet (evaluate it with `mer loso`)")  # fmt: skip
    prepared_dir = Path(cfg.data.prepared)
    prepared = load_prepared(prepared_dir)
    check_inputs(cfg, prepared, pretrained)
    write_run_info(cfg, out)
    fitted = fit_network_and_svm(
        cfg,
        prepared,
        RunFolder(out).train_dir("final"),
        pretrained=pretrained,
        seed=cfg.seed,
        run_name=f"{cfg.name}-final",
        job_type="final",
    )
    side, svm_info = fitted.train_side, fitted.svm_info
    info = {"trained_on": sorted(side["subject"].unique().tolist()), "n_train": len(side), "svm": svm_info,
            "pretrained": str(pretrained) if pretrained else None, "prepared": str(prepared_dir)}  # fmt: skip
    bundle = save_bundle(out / "bundle", fitted.result.module.net, cfg, fitted.svm, info)
    print(f"final model on {len(side)} samples of {side['subject'].nunique()} subjects → {bundle} "
          f"(use: mer predict VIDEO --model {bundle})")  # fmt: skip
    return bundle
