"""`mer loso`'s four modes, chosen below the CLI: plain LOSO, LOSO once per seed, nested LOSO (an inner Optuna study
per outer fold) and the final model on every subject; also LOSO with the best parameters of a finished study.

It lives in the sweep layer because two of the modes drive studies; the CLI only parses the flags and calls
`run_loso_command`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mer.config import as_override, load_config
from mer.errors import MerError
from mer.runtime import pin_process


def run_loso_command(
    files: Sequence[str] | None,
    overrides: Sequence[str],
    flags: Sequence[str],
    out: Path,
    *,
    pretrained: Path | None = None,
    prepared: Path | None = None,
    final: bool = False,
    nested: Path | None = None,
    storage: str | None = None,
    from_study: str | None = None,
    fold_index: int | None = None,
    folds: str | None = None,
    protocol: str | None = None,
    allow_mixed: bool = False,
) -> None:
    """Load the config (`files` ← `overrides` ← a study's best parameters ← the `flags`' overrides) and run the mode
    it asks for: --final, nested (--nested or loso.nested), several seeds (loso.seeds), or plain LOSO.

    `fold_index` / `folds` run part of the plan (a SLURM array task, chosen subjects); `prepared` and `protocol`
    (--prepared, --protocol) also reach every inner study of nested LOSO. MerError for mode combinations that are
    not supported. `allow_mixed` (--allow-mixed) pools folds made under another regime (the report says MIXED).
    """
    from mer.evaluation.loso import run_final, run_loso

    study: list[str] = []
    record = None
    if from_study:
        from mer.sweep.storage import best_selection

        study, record = best_selection(from_study)
        print(f"using the study's best parameters: {' '.join(study)}")
    cfg = load_config(list(files or ["default"]), [*overrides, *study, *flags])
    if record is None and cfg.selected_by:  # an override line of `mer sweep --best`: read what the study says
        from mer.sweep.storage import selection_of

        record = selection_of(cfg)
    sweep_file = nested or cfg.loso.nested
    if final or sweep_file or cfg.loso.workers <= 1:
        # Training in this process (one worker, --final, or nested: outer folds here, inner trials in workers that
        # inherit the subset and use all of it): pin it before anything initialises CUDA. Parallel LOSO places its
        # fold processes itself.
        pin_process(cfg.loso.devices)
    if sweep_file and not final:
        if record is not None:
            raise MerError("--nested chooses every fold's parameters with its own inner study; drop --from-study "
                           f"and the study's values (selected_by={cfg.selected_by})")  # fmt: skip
        if cfg.loso.seeds:
            raise MerError("--nested with --seeds is not supported yet: run one nested LOSO per seed (seed=K) into "
                           "its own --out, then `mer report --compare` them")  # fmt: skip
        from mer.sweep.nested import run_nested_loso
        from mer.sweep.spec import apply_flags, load_sweep

        spec = apply_flags(load_sweep(sweep_file), base=files, pretrained=pretrained)
        extra = [as_override("data.prepared", prepared)] if prepared is not None else []
        extra += [as_override("loso.protocol", protocol)] if protocol is not None else []
        run_nested_loso(spec, out, [*overrides, *extra], storage=storage, workers=max(1, cfg.loso.workers),
                        fold_index=fold_index, folds=folds, allow_mixed=allow_mixed)  # fmt: skip
        return
    if final:
        run_final(cfg, out, pretrained)
        return
    # the key names the study, verified or not, so a resume after an unreachable database came back is allowed
    study_name = str(record["study"]).rpartition("::")[2] if record else ""
    chosen = {"selection": record, "selection_key": f"from-study:{study_name}"} if record else {}
    if cfg.loso.seeds:
        from mer.evaluation.seeds import run_seeds

        run_seeds(cfg, out, pretrained, fold_index=fold_index, folds=folds, allow_mixed=allow_mixed, **chosen)
        return
    run_loso(cfg, out, pretrained, fold_index=fold_index, folds=folds, allow_mixed=allow_mixed, **chosen)
