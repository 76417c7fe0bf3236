"""Class schemes (`data.classes`): which classes a run learns, and per dataset how its original labels map to them.

`megc3` is the MEGC2019 composite's negative / positive / surprise; its per-dataset tables are
`mer.data.labels.TABLES` (the readers' default). The other schemes' tables are here, as data: a label maps to a
class, to None (known, left out by the scheme) or is absent (unknown). A dataset without a table for a scheme
cannot express it (SMIC's folders say only negative / positive / surprise, so it cannot be split into the seven
emotions): configs naming such a pair are refused at load with that reason. Below config and data alike (like
`mer.errors`), so both read the one table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DEFAULT = "megc3"
NEG, POS, SUR, OTH = "negative", "positive", "surprise", "others"
SEVEN = ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")
SCHEMES: dict[str, tuple[str, ...]] = {
    "megc3": (NEG, POS, SUR),
    "cas3_4": (NEG, POS, SUR, OTH),
    "seven": SEVEN,
    "casme2_5": ("happiness", "surprise", "disgust", "repression", OTH),
}
# Datasets every scheme table below is keyed by; megc3 covers every reader (mer.data.labels.TABLES).
_MACRO_SEVEN: dict[str, str | None] = {e: e for e in SEVEN} | {"neutral": None}
_MACRO_CAS4: dict[str, str | None] = {e: NEG for e in ("anger", "contempt", "disgust", "fear", "sadness")} | {
    "happiness": POS,
    "surprise": SUR,
    "neutral": None,
}
TABLES: dict[str, dict[str, dict[str, str | None]]] = {
    # CAS(ME)^3's 4 classes: negative = anger, disgust, fear, sadness (+ contempt, and CASME II's repression as in
    # megc3), positive = happiness, surprise, others.
    "cas3_4": {
        "casme2": {
            "disgust": NEG,
            "repression": NEG,
            "fear": NEG,
            "sadness": NEG,
            "happiness": POS,
            "surprise": SUR,
            "others": OTH,
        },  # fmt: skip
        "samm": {
            **{e: NEG for e in ("anger", "contempt", "disgust", "fear", "sadness")},
            "happiness": POS,
            "surprise": SUR,
            "other": OTH,
            "others": OTH,
        },  # fmt: skip
        "smic": {NEG: NEG, POS: POS, SUR: SUR, "ne": NEG, "po": POS, "sur": SUR},
        "casme3a": {
            "anger": NEG,
            "disgust": NEG,
            "fear": NEG,
            "sad": NEG,
            "sadness": NEG,
            "happy": POS,
            "happiness": POS,
            "surprise": SUR,
            "others": OTH,
            "other": OTH,
        },  # fmt: skip
        "casme3c": {NEG: NEG, POS: POS, SUR: SUR, OTH: OTH, "other": OTH},
        "4dme": {NEG: NEG, POS: POS, SUR: SUR, "repression": NEG, OTH: OTH, "other": OTH},
        "mmew": {
            "anger": NEG,
            "disgust": NEG,
            "fear": NEG,
            "sadness": NEG,
            "happiness": POS,
            "surprise": SUR,
            OTH: OTH,
            "other": OTH,
        },  # fmt: skip
        "dfme": {
            **{e: NEG for e in ("anger", "contempt", "disgust", "fear", "sadness")},
            "happiness": POS,
            "surprise": SUR,
        },  # fmt: skip
        "ckplus": dict(_MACRO_CAS4),
        "oulu": dict(_MACRO_CAS4),
        "jaffe": dict(_MACRO_CAS4),
        "mug": dict(_MACRO_CAS4),
        "folder": {NEG: NEG, POS: POS, SUR: SUR, OTH: OTH},
        "folder_macro": {NEG: NEG, POS: POS, SUR: SUR, OTH: OTH},
    },
    # The seven basic emotions; datasets coded by valence (SMIC, CAS(ME)^3 Part C, 4DME) cannot express them.
    "seven": {
        "casme2": {
            "disgust": "disgust",
            "fear": "fear",
            "sadness": "sadness",
            "happiness": "happiness",
            "surprise": "surprise",
            "repression": None,
            "others": None,
        },  # fmt: skip
        "samm": {**{e: e for e in SEVEN}, "other": None, "others": None},
        "casme3a": {
            "anger": "anger",
            "disgust": "disgust",
            "fear": "fear",
            "sad": "sadness",
            "sadness": "sadness",
            "happy": "happiness",
            "happiness": "happiness",
            "surprise": "surprise",
            "others": None,
            "other": None,
        },  # fmt: skip
        "mmew": {**{e: e for e in SEVEN if e != "contempt"}, "others": None, "other": None},
        "dfme": {e: e for e in SEVEN},
        "ckplus": dict(_MACRO_SEVEN),
        "oulu": dict(_MACRO_SEVEN),
        "jaffe": dict(_MACRO_SEVEN),
        "mug": dict(_MACRO_SEVEN),
        "folder": {e: e for e in SEVEN},
        "folder_macro": {e: e for e in SEVEN},
    },
    # CASME II's own five classes (fear and sadness left out, as in the papers that use them).
    "casme2_5": {
        "casme2": {
            "happiness": "happiness",
            "surprise": "surprise",
            "disgust": "disgust",
            "repression": "repression",
            "others": OTH,
            "fear": None,
            "sadness": None,
        },  # fmt: skip
        "folder": {c: c for c in SCHEMES["casme2_5"]},
        "folder_macro": {c: c for c in SCHEMES["casme2_5"]},
    },
}


def scheme_of(value: Any) -> str:
    """The scheme a `data.classes` value names: a scheme name, or (configs written before schemes) a list of megc3
    class names, which is megc3; ValueError with the allowed values otherwise."""
    if isinstance(value, str):
        if value in SCHEMES:
            return value
        raise ValueError(f"'{value}' is not a class scheme; choose one of: {', '.join(SCHEMES)}")
    names = [str(v) for v in value or []]
    if names and set(names) <= set(SCHEMES[DEFAULT]):
        return DEFAULT
    raise ValueError(f"{names} is not a class scheme; choose one of: {', '.join(SCHEMES)}")


def classes_of(value: Any) -> list[str]:
    """The class names in output order for a `data.classes` value (a legacy list keeps its own order and subset)."""
    if isinstance(value, str):
        return list(SCHEMES[scheme_of(value)])
    scheme_of(value)
    return [str(v) for v in value]


def table(scheme: str, dataset: str) -> dict[str, str | None] | None:
    """The label table of a dataset under a non-megc3 scheme, or None when the dataset cannot express it."""
    return TABLES.get(scheme, {}).get(dataset)


def refusal(scheme: str, datasets: Sequence[str]) -> str | None:
    """Why `scheme` cannot be used with these datasets (the first one whose labels cannot express it), or None."""
    if scheme == DEFAULT:
        return None
    for name in datasets:
        if table(scheme, name) is None:
            usable = [s for s in SCHEMES if s == DEFAULT or table(s, name) is not None]
            return (
                f"data.classes={scheme} ({', '.join(SCHEMES[scheme])}): the labels of dataset '{name}' cannot express "
                f"these classes; schemes '{name}' can use: {', '.join(usable)}"
            )
    return None
