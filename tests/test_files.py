"""mer.files: atomic writes (no temp file left, never half a file), the one unreadable-file error, natural order."""

from __future__ import annotations

import json
import os
import pickle
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mer.errors import DataError, MerError, UnreadableFileError
from mer.files import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    image_files,
    natural_key,
    read_crops,
    read_gray,
    read_image,
)


def test_atomic_writes_leave_only_the_target(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "a" / "b.txt", "héllo\n")  # creates the folder
    atomic_write_json(tmp_path / "a" / "c.json", {"x": [1, 2]})
    atomic_write_bytes(tmp_path / "a" / "d.bin", b"\x00\x01")
    atomic_write_text(tmp_path / "a" / "b.txt", "again")  # replaces
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.txt", "c.json", "d.bin"]
    assert (tmp_path / "a" / "b.txt").read_text(encoding="utf-8") == "again"
    assert json.loads((tmp_path / "a" / "c.json").read_text()) == {"x": [1, 2]}
    assert (tmp_path / "a" / "c.json").read_text() == json.dumps({"x": [1, 2]}, indent=2)
    assert (tmp_path / "a" / "d.bin").read_bytes() == b"\x00\x01"


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"old": True})
    real_fdopen = os.fdopen

    class DiskFull:
        """A file object that writes half the data, then fails like a full disk."""

        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data: bytes) -> int:
            self.fh.write(data[: len(data) // 2])
            self.fh.flush()
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: DiskFull(real_fdopen(fd, mode)))
    with pytest.raises(OSError, match="No space left"):
        atomic_write_json(target, {"new": list(range(1000))})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"old": True}  # the old content, whole
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # and no temp file


def test_a_concurrent_reader_never_sees_half_a_file(tmp_path: Path) -> None:
    target = tmp_path / "big.txt"
    size = 1 << 20
    atomic_write_text(target, "a" * size)
    seen: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.append(target.read_text())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(40):
            atomic_write_text(target, ("b" if i % 2 else "c") * size)
    finally:
        stop.set()
        reader.join()
    assert seen and all(len(t) == size and len(set(t)) == 1 for t in seen)


def test_unreadable_files_raise_one_error_that_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not a picture\n")
    (tmp_path / "folder.png").mkdir()
    cases = {
        "missing.png": "file not found",
        "empty.png": "file is empty (0 bytes)",
        "text.jpg": "not a readable image (cannot decode image data; the content is not a JPEG picture)",
        "folder.png": "cannot read file",
    }
    for name, problem in cases.items():
        for read in (read_image, read_gray):
            with pytest.raises(UnreadableFileError) as err:
                read(tmp_path / name, hint="re-run it")
            assert isinstance(err.value, DataError) and isinstance(err.value, MerError)
            assert str(err.value).startswith(f"{tmp_path / name}: {problem}")
            assert str(err.value).endswith("; re-run it") and err.value.path == str(tmp_path / name)
    copy = pickle.loads(pickle.dumps(UnreadableFileError(tmp_path / "x.png", "file not found", "hint")))
    assert str(copy) == f"{tmp_path / 'x.png'}: file not found; hint" and copy.problem == "file not found"


def test_too_small_images_are_refused_only_when_asked(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "tiny.png"), np.zeros((8, 12, 3), np.uint8))
    assert read_image(tmp_path / "tiny.png").shape == (8, 12, 3)
    with pytest.raises(UnreadableFileError, match="12×8 px, too small to hold a face"):
        read_image(tmp_path / "tiny.png", min_side=40)


def test_images_read_as_rgb_and_gray_with_pillow_for_what_opencv_cannot(tmp_path: Path) -> None:
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0] = 200  # red
    cv2.imwrite(str(tmp_path / "red.png"), rgb[..., ::-1])
    assert np.array_equal(read_image(tmp_path / "red.png"), rgb)
    assert read_gray(tmp_path / "red.png").shape == (20, 30)
    assert read_gray(tmp_path / "red.png", size=16).shape == (16, 16)
    Image.fromarray(rgb).save(tmp_path / "red.gif")
    img = read_image(tmp_path / "red.gif")
    assert img.shape == (20, 30, 3) and img[..., 0].min() > 150 and img[..., 2].max() < 50


def test_read_crops_stacks_resizes_and_refuses_mixed_sizes(tmp_path: Path) -> None:
    for name, side in (("a.png", 16), ("b.png", 16), ("c.png", 24)):
        cv2.imwrite(str(tmp_path / name), np.full((side, side), 90, np.uint8))
    assert read_crops([tmp_path / "a.png", tmp_path / "b.png"]).shape == (2, 16, 16)
    assert read_crops([tmp_path / "a.png", tmp_path / "c.png"], size=8).shape == (2, 8, 8)
    assert read_crops([], size=8).shape == (0, 8, 8)
    with pytest.raises(DataError, match=r"a\.png is 16×16 px, .*c\.png is 24×24 px"):
        read_crops([tmp_path / "a.png", tmp_path / "c.png"])


def test_natural_order() -> None:
    names = ["img10.jpg", "img2.jpg", "Img1.jpg", "img1b.jpg"]
    assert sorted(names, key=natural_key) == ["Img1.jpg", "img1b.jpg", "img2.jpg", "img10.jpg"]
    subjects = ["casme2/sub10", "casme2/sub2", "samm/006", "casme2/sub1"]
    assert sorted(subjects, key=natural_key) == ["casme2/sub1", "casme2/sub2", "casme2/sub10", "samm/006"]
    assert natural_key(Path("s2") / "x3") == natural_key("s2/x3")


def test_image_files_by_suffix_in_natural_order_of_names(tmp_path: Path) -> None:
    for rel in ("f10.png", "f9.JPG", "notes.txt", "z/f1.png", "a/f5.webp"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert [p.name for p in image_files(tmp_path)] == ["f9.JPG", "f10.png"]
    assert [p.name for p in image_files(tmp_path, recursive=True)] == ["f1.png", "f5.webp", "f9.JPG", "f10.png"]
    assert [p.name for p in image_files(tmp_path, suffixes=(".png",))] == ["f10.png"]
