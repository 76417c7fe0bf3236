"""How a LOSO run's hyper-parameters were chosen, and whether any of its test subjects took part in choosing them.

`loso.json` carries a `selection` record written from facts: `fixed` (the config alone), `from-study` (an Optuna
study's best trial: its objective, storage and the subjects its trials were scored on, read from the study itself)
or `nested` (one inner study per outer fold, each over that fold's training subjects). `leaky_reasons` compares
subject sets: a run is LEAKY when a subject it tests is among the subjects that chose its parameters, or when the
study scored its trials on plain LOSO test folds (`leaky_loso`). No flag is trusted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

METHODS = ("fixed", "from-study", "nested")
LEAKY_OBJECTIVE = "leaky_loso"


def fixed_selection() -> dict[str, Any]:
    """The record of a run whose hyper-parameters come from its config only."""
    return {"method": "fixed"}


def from_study_selection(
    study: str, storage: str, objective: str, inner_subjects: Iterable[str] | None, params: Mapping[str, Any]
) -> dict[str, Any]:
    """The record of a run that took a study's best parameters (`inner_subjects` None: the study does not say)."""
    return {
        "method": "from-study",
        "study": study,
        "storage": storage,
        "objective": objective,
        "inner_subjects": sorted(inner_subjects) if inner_subjects is not None else None,
        "params": dict(params),
    }


def nested_selection(
    storage: str, study_prefix: str, sweep: str, folds: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The record of a nested run: the storage, the study prefix and, per outer fold, its study, test and inner
    subjects (`{fold: {"study", "test_subjects", "inner_subjects"}}`)."""
    return {"method": "nested", "storage": storage, "study_prefix": study_prefix, "sweep": sweep,
            "folds": {name: dict(rec) for name, rec in folds.items()}}  # fmt: skip


def _few(subjects: Iterable[str], n: int = 4) -> str:
    items = sorted(subjects)
    return ", ".join(items[:n]) + (f" … (+{len(items) - n})" if len(items) > n else "")


def leaky_reasons(
    selection: Mapping[str, Any] | None,
    tested: Mapping[str, Iterable[str]],
    fold_selections: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[str]:
    """Why this run is LEAKY (empty: it is not): each reason names the subjects that were both tested and used to
    choose hyper-parameters.

    `tested` maps each complete fold to its test subjects; `fold_selections` maps folds to the `selection` a nested
    fold wrote into its metrics.json (its inner study's own record of its subjects).
    """
    if not selection:
        return []
    method = selection.get("method")
    reasons: list[str] = []
    if method == "from-study":
        name = selection.get("study", "?")
        if selection.get("objective") == LEAKY_OBJECTIVE:
            reasons.append(f"study '{name}' scored its trials on plain LOSO test folds ({LEAKY_OBJECTIVE})")
        inner = selection.get("inner_subjects")
        if inner is None:
            reasons.append(f"study '{name}' does not record which subjects chose its parameters")
        else:
            overlap = set().union(*(set(s) for s in tested.values())) & set(inner) if tested else set()
            if overlap:
                reasons.append(f"{len(overlap)} test subject(s) of this run ({_few(overlap)}) were in the inner "
                               f"folds of study '{name}'")  # fmt: skip
    elif method == "nested":
        planned = selection.get("folds") or {}
        for fold, subjects in tested.items():
            inner = set((planned.get(fold) or {}).get("inner_subjects") or [])
            inner |= set(((fold_selections or {}).get(fold) or {}).get("inner_subjects") or [])
            test = set(subjects) | set((planned.get(fold) or {}).get("test_subjects") or [])
            overlap = test & inner
            if overlap:
                reasons.append(f"fold {fold}: its test subject(s) {_few(overlap)} were in its own inner study")
    elif method not in METHODS:
        reasons.append(f"unknown selection method {method!r} in loso.json")
    return reasons


def describe(selection: Mapping[str, Any] | None) -> str:
    """One line saying how the hyper-parameters were chosen, for the report's provenance."""
    if not selection:
        return "not recorded (a run from before selection records)"
    method = selection.get("method")
    if method == "fixed":
        return "fixed: the config's values (no search)"
    if method == "from-study":
        inner = selection.get("inner_subjects")
        n = "unknown" if inner is None else str(len(inner))
        return (f"from-study: best trial of '{selection.get('study')}' ({selection.get('objective')}, {n} inner "
                f"subjects) in {selection.get('storage')}")  # fmt: skip
    if method == "nested":
        return (f"nested: one inner study per fold, '{selection.get('study_prefix')}/<fold>' in "
                f"{selection.get('storage')} (sweep {selection.get('sweep')})")  # fmt: skip
    return f"unknown method {method!r}"
