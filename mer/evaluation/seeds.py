"""`mer loso --seeds 0,1,2` (config `loso.seeds`): the LOSO protocol once per seed, into `OUT/seed<k>/`.

Each seed folder is a full LOSO run folder (its own config.yaml with `seed: k`, folds, report), resumable on its
own; `OUT` holds `seeds.json` (the planned seeds), the study's config and, once every seed is complete, the
report with per-seed rows and mean ± sd (`mer.evaluation.report.write_seeds_report`). A seed changes fine-tuning
(initial head, batches, augmentation), the SVM's inner CV and every fold's seed; the pre-trained checkpoint and the
prepared data are the same for all seeds.

SLURM arrays: `--fold-index I` runs one fold of one seed, I = seed_index · n_folds + fold_index, so one array of
`len(seeds) · n_folds` tasks covers the study (`sweeps/slurm/loso_array.sbatch`, variable SEEDS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from mer.config import Config
from mer.data.prepared import load_prepared
from mer.errors import MerError
from mer.evaluation.loso import fold_regime, plan_folds, run_loso, run_record
from mer.evaluation.pool import shared_fold_pool
from mer.evaluation.report import write_seeds_report
from mer.evaluation.resume import check_same_regime
from mer.evaluation.run_folder import SEEDS_FILE, RunFolder
from mer.evaluation.tracking import log_summary
from mer.files import atomic_write_json
from mer.provenance import write_run_info


def study_seeds(cfg: Config) -> list[int]:
    """The seeds a run uses: `loso.seeds` without repeats, in order; empty means just `seed`."""
    return list(dict.fromkeys(int(s) for s in cfg.loso.seeds)) or [cfg.seed]


def seed_config(cfg: Config, seed: int) -> Config:
    """The config of one seed's run: `seed` = k, name `<name>-seed<k>`, no seed list, W&B group = the study's name."""
    return replace(
        cfg,
        seed=seed,
        name=f"{cfg.name}-seed{seed}",
        loso=replace(cfg.loso, seeds=[]),
        logging=replace(cfg.logging, wandb_group=cfg.logging.wandb_group or cfg.name),
    )


def run_seeds(
    cfg: Config,
    out: str | Path,
    pretrained: str | Path | None = None,
    *,
    fold_index: int | None = None,
    folds: str | Sequence[str] | None = None,
    allow_mixed: bool = False,
    **chosen: Any,
) -> Path:
    """Run LOSO once per seed of `loso.seeds` into `OUT/seed<k>/`, skipping complete seeds; report when all are done.

    `folds` and `loso.workers` apply within each seed; `fold_index` I runs fold I % n_folds of seed I // n_folds.
    `chosen` (`selection`, `selection_key`: how hyper-parameters were chosen) goes to every seed's `run_loso`.
    Folds of any seed that recorded another regime refuse the call unless `allow_mixed` (the report says MIXED).
    """
    out = Path(out)
    study = RunFolder(out)
    seeds = study_seeds(cfg)
    if study.has_folds():
        raise MerError(f"{out} holds a single-seed LOSO run (folds/); use a new --out folder for a seed study")
    current = fold_regime(cfg)
    check_same_regime(out, list(study.seed_folders().values()), current, allow_mixed)
    out.mkdir(parents=True, exist_ok=True)
    write_run_info(cfg, out)
    study.append_run_record(run_record(cfg, current, [], allow_mixed))
    atomic_write_json(study.file(SEEDS_FILE), {"name": cfg.name, "seeds": seeds})
    if fold_index is not None:
        prepared = load_prepared(Path(cfg.data.prepared))
        n_folds = len(plan_folds(prepared, cfg.loso.group_size, cfg.loso.folds, cfg.loso.protocol))
        if not 0 <= fold_index < n_folds * len(seeds):
            raise MerError(
                f"--fold-index {fold_index} is out of range: {len(seeds)} seeds × {n_folds} folds are tasks "
                f"0..{n_folds * len(seeds) - 1} (task = seed index · {n_folds} + fold index)"
            )
        s_i, f_i = divmod(fold_index, n_folds)
        run_loso(seed_config(cfg, seeds[s_i]), study.seed(seeds[s_i]).path, pretrained, fold_index=f_i,
                 allow_mixed=allow_mixed, **chosen)  # fmt: skip
    else:
        with shared_fold_pool():  # the seeds' LOSO runs share one set of fold processes
            for i, seed in enumerate(seeds):
                folder = study.seed(seed)
                if folder.finished():
                    print(f"seed {seed} ({i + 1}/{len(seeds)}) already complete in {folder.path}")
                    continue
                print(f"seed {seed} ({i + 1}/{len(seeds)}) → {folder.path}")
                run_loso(seed_config(cfg, seed), folder.path, pretrained, folds=folds, allow_mixed=allow_mixed,
                         **chosen)  # fmt: skip
    done = [s for s in seeds if study.seed(s).finished()]
    if len(done) < len(seeds):
        print(f"{len(done)} of {len(seeds)} seeds complete; run again (or the other array tasks) to finish, then "
              f"`mer report {out}`")  # fmt: skip
        return out
    report = write_seeds_report(out, refresh_seeds=False)  # each seed's run wrote its own report
    log_summary(cfg, out)
    print(f"report over {len(seeds)} seeds → {report}")
    return out
