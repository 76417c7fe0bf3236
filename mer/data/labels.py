"""The MEGC2019 3-class label mapping: each dataset's original emotion label → negative | positive | surprise.

One table per dataset, as data. A label maps to a class, to ``None`` (known, but dropped by the protocol:
CASME II fear/sadness/others, SAMM other, macro neutral), or is absent from the table (unknown: a typo or a
label this version of the coding file should not hold). Readers turn the last two into skipped rows with
:func:`resolve`'s reason, so the report tells "dropped by the protocol" from "unknown label".
Lookups ignore case, spaces, underscores and hyphens; numeric codes such as CK+'s ``3.0000000e+00`` match ``3``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from mer import class_schemes
from mer.config import CLASSES
from mer.errors import DataError

NEG, POS, SUR = CLASSES

# Macro-expression sets (CK+, Oulu-CASIA, JAFFE, MUG): six basic emotions + contempt, neutral dropped.
MACRO: dict[str, str | None] = {
    "anger": NEG,
    "contempt": NEG,
    "disgust": NEG,
    "fear": NEG,
    "sadness": NEG,
    "happiness": POS,
    "surprise": SUR,
    "neutral": None,
}

# Original codes of the macro sets, decoded to the emotion names of MACRO.
CKPLUS_CODES: dict[str, str] = {
    "0": "neutral",
    "1": "anger",
    "2": "contempt",
    "3": "disgust",
    "4": "fear",
    "5": "happiness",
    "6": "sadness",
    "7": "surprise",
}
JAFFE_CODES: dict[str, str] = {
    "an": "anger",
    "di": "disgust",
    "fe": "fear",
    "ha": "happiness",
    "ne": "neutral",
    "sa": "sadness",
    "su": "surprise",
}
# Spellings found in the macro sets' folder names and papers ("happy" in CK+'s docs, "sad", "angry").
MACRO_SYNONYMS: dict[str, str] = {"happy": "happiness", "sad": "sadness", "angry": "anger", "surprised": "surprise"}

TABLES: dict[str, dict[str, str | None]] = {
    "casme2": {
        "disgust": NEG,
        "repression": NEG,
        "happiness": POS,
        "surprise": SUR,
        "fear": None,
        "sadness": None,
        "others": None,
        "other": None,
    },
    "samm": {
        "anger": NEG,
        "contempt": NEG,
        "disgust": NEG,
        "fear": NEG,
        "sadness": NEG,
        "happiness": POS,
        "surprise": SUR,
        "other": None,
        "others": None,  # the spelling of some SAMM copies
    },
    "smic": {"negative": NEG, "positive": POS, "surprise": SUR, "ne": NEG, "po": POS, "sur": SUR},
    "ckplus": {**MACRO, **{code: MACRO[name] for code, name in CKPLUS_CODES.items()}},
    "oulu": dict(MACRO),
    "jaffe": {**MACRO, **{code: MACRO[name] for code, name in JAFFE_CODES.items()}},
    "mug": dict(MACRO),
    "folder": {NEG: NEG, POS: POS, SUR: SUR},
    # CAS(ME)^3 Part A: 3-class keeps 699 of 860 (disgust 250 + fear 86 + anger 64 + sad 57 = 457 / happy 55 /
    # surprise 187); 'others' (also spelled 'Others') is left out.
    "casme3a": {
        "anger": NEG,
        "disgust": NEG,
        "fear": NEG,
        "sad": NEG,
        "sadness": NEG,
        "happy": POS,
        "happiness": POS,
        "surprise": SUR,
        "others": None,
        "other": None,
    },
    # CAS(ME)^3 Part C codes the three classes directly, plus others.
    "casme3c": {NEG: NEG, POS: POS, SUR: SUR, "others": None, "other": None},
    # 4DME's Emotion column (UNVERIFIED spellings): positive, negative, surprise, repression (negative, as CASME II),
    # others.
    "4dme": {NEG: NEG, POS: POS, SUR: SUR, "repression": NEG, "others": None, "other": None},
    "mmew": {
        "anger": NEG,
        "disgust": NEG,
        "fear": NEG,
        "sadness": NEG,
        "happiness": POS,
        "surprise": SUR,
        "others": None,
        "other": None,
    },
    # DFME's seven emotions all map (train 1352 / 206 / 298).
    "dfme": {emotion: cls for emotion, cls in MACRO.items() if cls is not None},  # the macro sets' table, no neutral
}
for _name in ("ckplus", "oulu", "jaffe", "mug"):
    TABLES[_name].update({syn: MACRO[name] for syn, name in MACRO_SYNONYMS.items()})
TABLES["folder_macro"] = TABLES["folder"]
# CAS(ME)^2 long videos (mer.data.datasets.casme_sq): the code sheet's emotion column holds the paper's four
# categories (UNVERIFIED against the file); basic-emotion spellings are accepted too.
TABLES["casme_sq"] = {
    "negative": NEG, "positive": POS, "surprise": SUR, "others": None, "other": None,
    **{k: v for k, v in MACRO.items() if k != "neutral"}, **{s: MACRO[n] for s, n in MACRO_SYNONYMS.items()},
    "repression": NEG,
}  # fmt: skip

_SPACES = re.compile(r"[\s_\-]+")


class LabelResult(NamedTuple):
    """A lookup: `label` (a class or None), `status` (mapped | dropped | unknown), `reason` (when not mapped)."""

    label: str | None
    status: str
    reason: str | None

    @property
    def ok(self) -> bool:
        """True when the emotion maps to one of the three classes."""
        return self.status == "mapped"


def normalize(emotion: object) -> str:
    """Lookup key of a label: lower case, no spaces, underscores or hyphens; integral numbers as ints (3.0e+00 → 3)."""
    text = _SPACES.sub("", str(emotion).strip().lower())
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def table(dataset: str, scheme: str = class_schemes.DEFAULT) -> dict[str, str | None]:
    """The mapping table of a dataset under a class scheme (keys normalized); DataError for a dataset without one
    (under a scheme other than megc3: the reason its labels cannot express the scheme)."""
    if scheme != class_schemes.DEFAULT:
        mapping = class_schemes.table(scheme, dataset)
        if mapping is None:
            raise DataError(class_schemes.refusal(scheme, [dataset]) or f"no {scheme} table for '{dataset}'")
        return mapping
    try:
        return TABLES[dataset]
    except KeyError:
        raise DataError(f"no label table for dataset '{dataset}' (known: {', '.join(sorted(TABLES))})") from None


UNKNOWN_REASON = "unknown emotion label"  # how `resolve`'s reasons start, so a report row can be told apart
DROPPED_REASON = (
    " is not in the "  # "emotion 'fear' is not in the MEGC2019 3-class protocol" / "... the X class scheme"
)


def is_label_reason(reason: str) -> bool:
    """True for a report reason `resolve` wrote: an emotion outside the class scheme (dropped or unknown)."""
    return reason.startswith(UNKNOWN_REASON) or (reason.startswith("emotion '") and DROPPED_REASON in reason)


def _key(dataset: str, emotion: object, scheme: str) -> str:
    """Lookup key: megc3 tables hold the codes themselves; the other schemes' tables hold emotion names, so codes
    (CK+ 3, JAFFE HA) and spellings (happy, sad) are decoded first."""
    key = normalize(emotion)
    if scheme == class_schemes.DEFAULT:
        return key
    key = normalize(decode(dataset, key))
    return MACRO_SYNONYMS.get(key, key) if dataset in ("ckplus", "oulu", "jaffe", "mug") else key


def resolve(dataset: str, emotion: object, scheme: str = class_schemes.DEFAULT) -> LabelResult:
    """Map one original label under a class scheme, telling a class, a protocol drop and an unknown label apart."""
    mapping = table(dataset, scheme)
    key = _key(dataset, emotion, scheme)
    if key not in mapping:
        known = ", ".join(k for k in mapping if not k.isdigit())
        return LabelResult(None, "unknown", f"{UNKNOWN_REASON} '{emotion}' ({dataset} labels: {known})")
    label = mapping[key]
    if label is None:
        what = "the MEGC2019 3-class protocol" if scheme == class_schemes.DEFAULT else f"the {scheme} class scheme"
        return LabelResult(None, "dropped", f"emotion '{emotion}'{DROPPED_REASON}{what.removeprefix('the ')}")
    return LabelResult(label, "mapped", None)


def decode(dataset: str, code: object) -> str:
    """Emotion name of a CK+ numeric code or a JAFFE two-letter code (other labels come back unchanged, stripped)."""
    key = normalize(code)
    codes = {"ckplus": CKPLUS_CODES, "jaffe": JAFFE_CODES}.get(dataset, {})
    return codes.get(key, str(code).strip())
