"""The MEGC2019 3-class mapping tables: classes, protocol drops and unknown labels, per dataset."""

from __future__ import annotations

import pytest

from mer.data.labels import TABLES, decode, normalize, resolve
from mer.errors import DataError


@pytest.mark.parametrize(
    ("dataset", "emotion", "label"),
    [
        ("casme2", "disgust", "negative"),
        ("casme2", "repression", "negative"),
        ("casme2", "happiness", "positive"),
        ("casme2", "surprise", "surprise"),
        ("samm", "Anger", "negative"),
        ("samm", "Contempt", "negative"),
        ("samm", "Disgust", "negative"),
        ("samm", "Fear", "negative"),
        ("samm", "Sadness", "negative"),
        ("samm", "Happiness", "positive"),
        ("samm", "Surprise", "surprise"),
        ("smic", "negative", "negative"),
        ("smic", "po", "positive"),
        ("smic", "sur", "surprise"),
        ("ckplus", "3", "negative"),
        ("ckplus", "   3.0000000e+00", "negative"),
        ("ckplus", "2", "negative"),
        ("ckplus", "5.0000000e+00", "positive"),
        ("ckplus", "7", "surprise"),
        ("jaffe", "AN", "negative"),
        ("jaffe", "di", "negative"),
        ("jaffe", "HA", "positive"),
        ("jaffe", "SU", "surprise"),
        ("oulu", "Happiness", "positive"),
        ("oulu", "Fear", "negative"),
        ("mug", "sadness", "negative"),
        ("mug", "surprise", "surprise"),
        ("folder", "Positive", "positive"),
    ],
)
def test_mapped(dataset: str, emotion: str, label: str) -> None:
    assert resolve(dataset, emotion).label == label
    result = resolve(dataset, emotion)
    assert result.ok and result.status == "mapped" and result.reason is None


@pytest.mark.parametrize(
    ("dataset", "emotion"),
    [
        ("casme2", "fear"),
        ("casme2", "sadness"),
        ("casme2", "others"),
        ("samm", "Other"),
        ("ckplus", "0"),
        ("jaffe", "NE"),
        ("oulu", "neutral"),
        ("mug", "Neutral"),
    ],
)
def test_dropped_by_protocol(dataset: str, emotion: str) -> None:
    result = resolve(dataset, emotion)
    assert result.label is None and result.status == "dropped"
    assert result.reason == f"emotion '{emotion}' is not in the MEGC2019 3-class protocol"


@pytest.mark.parametrize(("dataset", "emotion"), [("casme2", "xyz"), ("samm", "joy"), ("ckplus", "9"), ("smic", "")])
def test_unknown_label(dataset: str, emotion: str) -> None:
    result = resolve(dataset, emotion)
    assert result.status == "unknown" and result.label is None
    assert result.reason.startswith(f"unknown emotion label '{emotion}'")


def test_protocol_differs_between_datasets() -> None:
    # fear/sadness are negative in SAMM and the macro sets but dropped in CASME II (MEGC2019).
    assert resolve("samm", "fear").label == "negative"
    assert resolve("casme2", "fear").label is None
    assert resolve("casme2", "anger").label is None and resolve("casme2", "anger").status == "unknown"


def test_case_and_spacing_insensitive() -> None:
    assert resolve("casme2", "  Happiness ").label == "positive"
    assert resolve("casme2", "REPRESSION").label == "negative"
    assert normalize("Estimated  Emotion") == normalize("estimated_emotion") == "estimatedemotion"
    assert normalize("3.0000000e+00") == "3"


def test_tables_only_hold_the_three_classes() -> None:
    for mapping in TABLES.values():
        assert set(mapping.values()) <= {"negative", "positive", "surprise", None}


def test_decode_codes() -> None:
    assert decode("ckplus", "3.0000000e+00") == "disgust"
    assert decode("ckplus", "5") == "happiness"
    assert decode("jaffe", "NE") == "neutral"
    assert decode("casme2", " others ") == "others"


def test_unknown_dataset() -> None:
    with pytest.raises(DataError, match="no label table for dataset 'casme3'"):
        resolve("casme3", "happiness")
