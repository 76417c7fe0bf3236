"""W&B summary runs: after a LOSO run (or a seed study) is reported, one run in its group carries the results.

The fold runs (job_type `fold`) hold training curves; this run (job_type `summary`, or `seed` for one seed of a
`mer loso --seeds` study) holds the pooled scores, their bootstrap intervals, the stamps, and one history row per
fold (`fold/...`, or per seed: `seed/svm/composite/uf1`, ...), so W&B's grouped views compare folds and seeds
directly. Read from the report's scores.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mer.config import Config, flatten
from mer.evaluation.run_folder import SCORES, SEEDS_FILE, RunFolder
from mer.train import log_wandb_summary


def _flat_scores(scores: dict[str, Any], intervals: dict[str, Any], sd: dict[str, Any] | None = None) -> dict:
    """{"svm/composite/uf1": .., "svm/composite/uf1_low": .., "_high", ("_sd")} for every classifier and scope."""
    out: dict[str, Any] = {}
    for clf, scopes in scores.items():
        for scope, values in scopes.items():
            for m in ("accuracy", "uar", "uf1"):
                key = f"{clf}/{scope}/{m}"
                out[key] = values.get(m)
                ci = ((intervals.get(clf) or {}).get(scope) or {}).get(m)
                if ci:
                    out[f"{key}_low"], out[f"{key}_high"] = ci
                if sd is not None:
                    out[f"{key}_sd"] = ((sd.get(clf) or {}).get(scope) or {}).get(m)
    return out


def _difference(versus: dict[str, Any] | None) -> dict[str, Any]:
    if not versus or not versus.get("applies"):
        return {}
    d = versus["composite"]["uf1"]
    return {"svm_minus_softmax/uf1": d["diff"], "svm_minus_softmax/uf1_low": d["low"],
            "svm_minus_softmax/uf1_high": d["high"], "svm_minus_softmax/significant": d["significant"]}  # fmt: skip


def _stamp(saved: dict[str, Any]) -> str:
    stamps = (("LEAKY", saved.get("leaky")), ("MIXED", saved.get("mixed")), ("PARTIAL", saved.get("partial")))
    return " / ".join(s for s, on in stamps if on) or "none"


def summary_values(saved: dict[str, Any]) -> dict[str, Any]:
    """The W&B summary of a scores.json (one run or a multi-seed study): scores, intervals, spread, stamps."""
    common = {"stamp": _stamp(saved), "leaky": bool(saved.get("leaky")), "partial": bool(saved.get("partial")),
              "mixed": bool(saved.get("mixed")), "headline": saved.get("headline"),
              **_difference(saved.get("svm_minus_softmax"))}  # fmt: skip
    if saved.get("multi_seed"):
        flat = _flat_scores(saved["mean"], saved.get("intervals") or {}, saved.get("sd") or {})
        return {**flat, **common, "n_seeds": len(saved["seeds"]), "seeds": ",".join(map(str, saved["seeds"]))}
    flat = _flat_scores(saved["scores"], saved.get("intervals") or {})
    return {
        **flat,
        **common,
        "complete_folds": saved.get("complete_folds"),
        "planned_folds": saved.get("planned_folds"),
    }


def _fold_history(run_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for metrics in RunFolder(run_dir).fold_metrics().values():
        m = metrics.to_dict()
        rows.append({f"fold/{k}": m.get(k) for k in ("index", "n_test", "svm_accuracy", "softmax_accuracy", "seconds")
                     if isinstance(m.get(k), (int, float))})  # fmt: skip
    return sorted(rows, key=lambda r: r.get("fold/index", 0))


def log_summary(cfg: Config, run_dir: str | Path) -> None:
    """Log the summary run of a reported run folder (its scores.json) to W&B when `logging.wandb` is on.

    A seed folder of a study (its parent holds seeds.json) logs job_type `seed`; a plain run or a whole study
    logs job_type `summary`.
    """
    folder = RunFolder(run_dir)
    if not cfg.logging.wandb or not folder.file(SCORES).is_file():
        return
    saved = json.loads(folder.file(SCORES).read_text())
    notes = folder.read_notes()
    extra = {f"loso/{k}": v for k, v in flatten(notes).items() if k != "planned_folds"}
    if saved.get("multi_seed"):
        # history keys differ from the summary's: W&B would otherwise end with the last seed's value as summary
        history = [{"seed": int(s), **{f"seed/{k}": v for k, v in _flat_scores(scores, {}).items()}}
                   for s, scores in saved["per_seed"].items()]  # fmt: skip
        job = "summary"
    else:
        history = _fold_history(folder.path)
        job = "seed" if RunFolder(folder.path.parent).file(SEEDS_FILE).is_file() else "summary"
    extra["bootstrap"] = json.dumps(saved.get("bootstrap"))
    log_wandb_summary(cfg, folder.path, f"{cfg.name}-summary", job, summary_values(saved), extra, history)
