"""How a LOSO run's hyper-parameters were chosen, and whether any of its test subjects took part in choosing them.

`loso.json` carries a `selection` record written from facts (the records are `mer.provenance`'s): `fixed` (the
config alone), `from-study` (an Optuna study's best trial: its objective, storage and the subjects its trials were
scored on, read from the study itself), `unverified` (the config names a study that could not be opened) or `nested`
(one inner study per outer fold, each over that fold's training subjects); `pretrained_selection` is the same record
for the `--pretrained` checkpoint's own hyper-parameters, as its pretrained.pt carries it. `leaky_reasons` compares
subject sets per fold: a run is LEAKY when a subject a fold tests is among the subjects that chose its parameters or
its checkpoint's, when a study scored its trials on plain LOSO test folds (`leaky_loso`), or when the choosing
study's subjects are unknown (unverified, or not recorded). No flag is trusted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mer.provenance import SELECTION_METHODS

LEAKY_OBJECTIVE = "leaky_loso"


def _few(subjects: Iterable[str], n: int = 4) -> str:
    items = sorted(subjects)
    return ", ".join(items[:n]) + (f" … (+{len(items) - n})" if len(items) > n else "")


def _study_reasons(selection: Mapping[str, Any], tested: Mapping[str, Iterable[str]], whose: str) -> list[str]:
    """Reasons a study-chosen (or unverifiable) `selection` of `whose` values touched the test folds, per fold."""
    name = selection.get("study", "?")
    if selection.get("method") == "unverified":
        return [f"UNVERIFIED selection: {whose} came from study '{name}', which could not be opened "
                f"({selection.get('reason')}), so nothing shows that it saw only training subjects"]  # fmt: skip
    reasons: list[str] = []
    if selection.get("objective") == LEAKY_OBJECTIVE:
        reasons.append(f"study '{name}' scored its trials on plain LOSO test folds ({LEAKY_OBJECTIVE}) to choose "
                       f"{whose}")  # fmt: skip
    inner = selection.get("inner_subjects")
    if inner is None:
        reasons.append(f"study '{name}' that chose {whose} does not record which subjects chose them")
        return reasons
    hit = {fold: set(subjects) & set(inner) for fold, subjects in tested.items()}
    hit = {fold: subjects for fold, subjects in hit.items() if subjects}
    if hit:
        overlap = set().union(*hit.values())
        reasons.append(f"{len(overlap)} test subject(s) of this run ({_few(overlap)}; {len(hit)} of {len(tested)} "
                       f"folds) were in the inner folds of study '{name}' that chose {whose}")  # fmt: skip
    return reasons


def leaky_reasons(
    selection: Mapping[str, Any] | None,
    tested: Mapping[str, Iterable[str]],
    fold_selections: Mapping[str, Mapping[str, Any]] | None = None,
    pretrained: Mapping[str, Any] | None = None,
) -> list[str]:
    """Why this run is LEAKY (empty: it is not): each reason names the subjects that were both tested and used to
    choose hyper-parameters, or says why that cannot be checked.

    `tested` maps each complete fold to its test subjects; `fold_selections` maps folds to the `selection` a nested
    fold wrote into its metrics.json (its inner study's own record of its subjects); `pretrained` is the selection
    record of the `--pretrained` checkpoint's hyper-parameters (what its pretrained.pt says), checked the same way.
    """
    reasons: list[str] = []
    method = (selection or {}).get("method")
    if method in ("from-study", "unverified"):
        reasons += _study_reasons(selection or {}, tested, "the hyper-parameters")
    elif method == "nested":
        planned = (selection or {}).get("folds") or {}
        for fold, subjects in tested.items():
            inner = set((planned.get(fold) or {}).get("inner_subjects") or [])
            inner |= set(((fold_selections or {}).get(fold) or {}).get("inner_subjects") or [])
            test = set(subjects) | set((planned.get(fold) or {}).get("test_subjects") or [])
            overlap = test & inner
            if overlap:
                reasons.append(f"fold {fold}: its test subject(s) {_few(overlap)} were in its own inner study")
    elif method is not None and method not in SELECTION_METHODS:
        reasons.append(f"unknown selection method {method!r} in loso.json")
    if pretrained and pretrained.get("method") in ("from-study", "unverified"):
        reasons += _study_reasons(pretrained, tested, "the pre-trained weights' hyper-parameters")
    return reasons


def describe(selection: Mapping[str, Any] | None, missing: str = "not recorded (a run from before selection records)"
             ) -> str:  # fmt: skip
    """One line saying how the hyper-parameters were chosen, for the report's provenance (`missing`: no record)."""
    if not selection:
        return missing
    method = selection.get("method")
    if method == "fixed":
        return "fixed: the config's values (no search)"
    if method == "from-study":
        inner = selection.get("inner_subjects")
        n = "unknown" if inner is None else str(len(inner))
        trial = f"trial {selection['trial']}" if selection.get("trial") is not None else "best trial"
        edited = selection.get("edited") or {}
        changed = f"; edited after the study: {', '.join(sorted(edited))}" if edited else ""
        return (f"from-study: {trial} of '{selection.get('study')}' ({selection.get('objective')}, {n} inner "
                f"subjects) in {selection.get('storage')}{changed}")  # fmt: skip
    if method == "unverified":
        return (f"UNVERIFIED: said to come from study '{selection.get('study')}', which could not be opened "
                f"({selection.get('reason')})")  # fmt: skip
    if method == "nested":
        return (f"nested: one inner study per fold, '{selection.get('study_prefix')}/<fold>' in "
                f"{selection.get('storage')} (sweep {selection.get('sweep')})")  # fmt: skip
    return f"unknown method {method!r}"
