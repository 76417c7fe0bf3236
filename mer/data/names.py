"""Dataset and subject names: the spellings users and the MEGC2019 list use, mapped to the readers' names.

Below both the readers (`mer.data.datasets`) and the MEGC2019 selection (`mer.data.megc`), so each uses the one table
of aliases and the one subject normalization without importing the other.
"""

from __future__ import annotations

import re

from mer.data.manifest import as_int

# Other spellings users type for the same datasets (`--data ck+=...`, `casmeii` in a MEGC list).
ALIASES: dict[str, str] = {
    "casmeii": "casme2",
    "casme_ii": "casme2",
    "casme-ii": "casme2",
    "smic-hs": "smic",
    "smic_hs": "smic",
    "smichs": "smic",
    "ck+": "ckplus",
    "ck": "ckplus",
    "oulu-casia": "oulu",
    "oulu_casia": "oulu",
    "oulucasia": "oulu",
    "folder-macro": "folder_macro",
    "casme3": "casme3a",
    "cas(me)3": "casme3a",
    "cas(me)^3": "casme3a",
    "casme^3": "casme3a",
    "casme3_a": "casme3a",
    "casme3-a": "casme3a",
    "casme3_c": "casme3c",
    "casme3-c": "casme3c",
    "4d-me": "4dme",
    "4d_me": "4dme",
    "fourdme": "4dme",
}
# dataset → (prefix a subject may carry, folder-name format of its number): casme2 1 → sub01, samm 6 → 006, smic 1 → s1
SUBJECT_FORMATS: dict[str, tuple[str, str]] = {
    "casme2": ("sub", "sub{:02d}"),
    "samm": ("", "{:03d}"),
    "smic": ("s", "s{}"),
}


def dataset_key(name: str) -> str:
    """A dataset name as the readers spell it: lower case, aliases resolved (not checked against the readers)."""
    key = str(name).strip().lower()
    return ALIASES.get(key, key)


def subject_folder(dataset: str, value: object) -> str | None:
    """The folder name of a numbered subject (casme2 1, '01', 'sub01' → sub01; samm 6.0 → 006; smic 's01' → s1), or
    None when the value holds no subject number or the dataset does not number its subjects."""
    if dataset not in SUBJECT_FORMATS:
        return None
    prefix, fmt = SUBJECT_FORMATS[dataset]
    number = as_int(str(value).strip().lower().removeprefix(prefix))
    return fmt.format(number) if number is not None else None


def normalize_subject(dataset: str, subject: object) -> str:
    """A subject as the readers name its folder (see `subject_folder`), dataset prefix ('casme2/') stripped; other
    values are returned as given."""
    text = str(subject).strip().split("/")[-1]
    return subject_folder(dataset, text) or text


# A sample name that starts with its subject's number: SMIC s01_ne_01 (list) / s1_ne_01 (folder), SAMM 6_1_2 / 006_1_2
_LEADING_SUBJECT = re.compile(r"^(s|sub)?0*(\d+)(?=_)")


def normalize_sample(dataset: str, name: object) -> str:
    """A sample name in one spelling, so the MEGC2019 list's names match the folders: lower case, and a leading
    subject number written as the dataset's folders write it (SMIC s01_ne_01 → s1_ne_01, SAMM 6_1_2 → 006_1_2).

    CASME II names (EP02_01f) carry no subject and only lose their case; other datasets' names are lower-cased.
    """
    text = str(name).strip().lower()
    if dataset not in ("smic", "samm"):
        return text
    match = _LEADING_SUBJECT.match(text)
    if match is None:
        return text
    folder = subject_folder(dataset, match.group(2))
    return f"{folder}{text[match.end() :]}" if folder else text
