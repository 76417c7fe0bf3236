"""File helpers shared by every layer: suffixes, natural sort, image and crop reading, content hashes, atomic writes.

A leaf module (stdlib, numpy, OpenCV, Pillow and `mer.errors` only), so config, data, face and inference can all use
it. Every file that cannot be read raises `UnreadableFileError` (a `DataError`) naming the file; every write goes to a
temporary file in the same folder first and is then renamed over the target, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mer.errors import DataError, UnreadableFileError

if TYPE_CHECKING:
    import numpy as np

# What `read_image` decodes (OpenCV, with Pillow for the rest): the images a user may hand `mer predict` or export.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm")
# What dataset releases store frames as; the readers list only these, so a preview or animation (.gif, .webp) left in
# a dataset folder is never taken for a frame.
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv")

_DIGITS = re.compile(r"(\d+)")


# ---------------------------------------------------------------------------------------------- names and listing


def natural_key(text: str | Path) -> list[Any]:
    """Sort key that puts img2 before img10 and sub2 before sub10: digit runs compare as numbers, text case-blind."""
    # re.split with a group alternates text (even positions) and digit runs (odd positions)
    return [int(t) if i % 2 else t.lower() for i, t in enumerate(_DIGITS.split(str(text)))]


def image_files(folder: str | Path, recursive: bool = False, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Image files in a folder (and its sub-folders when `recursive`), in natural order of their file names."""
    folder = Path(folder)
    entries = folder.rglob("*") if recursive else folder.iterdir()
    found = [p for p in entries if p.is_file() and p.suffix.lower() in suffixes]
    return sorted(found, key=lambda p: natural_key(p.name))


def _kind(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    return {"jpg": "JPEG", "jpeg": "JPEG", "tif": "TIFF"}.get(suffix, suffix.upper() or "image")


# ---------------------------------------------------------------------------------------------- reading


def check_file(path: str | Path, what: str = "image", hint: str = "") -> Path:
    """The path, after checking it names a non-empty file; UnreadableFileError ('file not found', 'empty') otherwise."""
    path = Path(path)
    if not path.exists():
        raise UnreadableFileError(path, "file not found", hint)
    if path.is_file() and path.stat().st_size == 0:
        raise UnreadableFileError(path, f"file is empty (0 bytes); expected an {what}", hint)
    return path


def check_min_side(path: str | Path, img: np.ndarray, min_side: int) -> None:
    """UnreadableFileError when an image's shorter side is below `min_side` px (too small to hold a detectable face)."""
    h, w = img.shape[:2]
    if min(h, w) < min_side:
        problem = f"image is {w}×{h} px, too small to hold a face (the face detector needs at least {min_side} px)"
        raise UnreadableFileError(path, problem)


def _read_bytes(path: Path, what: str, hint: str) -> bytes:
    check_file(path, what, hint)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UnreadableFileError(path, f"cannot read file ({exc.strerror or exc})", hint) from None


def _decode(path: Path, data: bytes, gray: bool, hint: str) -> np.ndarray:
    """OpenCV first (EXIF orientation applied), Pillow for the formats OpenCV cannot decode (e.g. GIF)."""
    # lazy (also numpy below): numpy + OpenCV cost ~0.5 s, and mer.config imports this module for its atomic writes
    import cv2
    import numpy as np

    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if img is not None:
        return img if gray else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    from PIL import Image, ImageOps, UnidentifiedImageError  # lazy: only for files OpenCV cannot decode

    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("L" if gray else "RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        problem = f"not a readable image (cannot decode image data; the content is not a {_kind(path)} picture)"
        raise UnreadableFileError(path, problem, hint) from None


def read_image(path: str | Path, min_side: int = 0, hint: str = "") -> np.ndarray:
    """An image file → uint8 RGB (H, W, 3); `min_side` rejects images too small to hold a face.

    UnreadableFileError naming the file when it is missing, empty, not an image or too small; `hint` (how to fix
    it) is appended to the message.
    """
    import numpy as np  # lazy: see _decode

    path = Path(path)
    img = _decode(path, _read_bytes(path, "image", hint), gray=False, hint=hint)
    check_min_side(path, img, min_side)
    return np.ascontiguousarray(img)


def read_gray(path: str | Path, size: int | None = None, hint: str = "") -> np.ndarray:
    """An image file (an aligned face crop) → uint8 gray (H, W), resized to size×size (area filter) when given."""
    import cv2  # lazy: see _decode
    import numpy as np

    path = Path(path)
    img = _decode(path, _read_bytes(path, "image", hint), gray=True, hint=hint)
    if size is not None and img.shape != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img)


def read_crops(paths: Iterable[str | Path], size: int | None = None, hint: str = "") -> np.ndarray:
    """Gray crops (N, H, W) uint8 from image files: resized to size×size when given, else they must share one size
    (DataError naming two files of different sizes)."""
    import numpy as np  # lazy: see _decode

    paths = list(paths)
    crops = [read_gray(p, size, hint) for p in paths]
    if not crops:
        return np.zeros((0, size or 1, size or 1), np.uint8)
    other = next((i for i, c in enumerate(crops) if c.shape != crops[0].shape), None)
    if other is not None:
        (h0, w0), (h1, w1) = crops[0].shape, crops[other].shape
        sizes = f"{paths[0]} is {w0}×{h0} px, {paths[other]} is {w1}×{h1} px"
        raise DataError(f"crops of different sizes ({sizes})" + (f"; {hint}" if hint else ""))
    return np.stack(crops)


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (hex): the identity of a source image, a checkpoint or a prepared table."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------- atomic writes


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same folder + rename: never half a file, no temp left."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        # os.open with mode 0o666 keeps the permissions a plain write gives (the umask applies), unlike mkstemp's 0o600
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically (see `atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any, indent: int | None = 2, default: Any = None) -> Path:
    """Write `json.dumps(data, indent=indent, default=default)` atomically (see `atomic_write_bytes`)."""
    return atomic_write_text(path, json.dumps(data, indent=indent, default=default))
