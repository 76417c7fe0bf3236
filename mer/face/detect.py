"""MTCNN face detection (facenet-pytorch): boxes, 5 landmarks and scores, batched, on the GPU when there is one.

MTCNN's weights ship inside the facenet-pytorch wheel, so nothing is downloaded. torch and facenet-pytorch are
imported when the first image is detected, so a `mer prepare` whose every crop is cached never loads them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")  # as seen in the image (x grows right)


@dataclass(frozen=True)
class Face:
    """One detected face: box (x1, y1, x2, y2), landmarks (5, 2) in LANDMARKS order as (x, y), score."""

    box: np.ndarray
    landmarks: np.ndarray
    prob: float

    @property
    def area(self) -> float:
        """Box area in pixels²."""
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))

    @property
    def eye_distance(self) -> float:
        """Distance between the two eye landmarks in pixels."""
        return float(np.linalg.norm(self.landmarks[1] - self.landmarks[0]))


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' → CUDA when available, else CPU."""
    import torch  # local: see the module docstring

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 H×W or H×W×1/3/4 → contiguous uint8 H×W×3 (MTCNN wants three channels)."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img)


class FaceDetector:
    """Batched MTCNN. Images of one shape go through in one call; other shapes in their own calls."""

    def __init__(
        self,
        device: str = "auto",
        min_face_size: int = 40,
        batch_size: int = 16,
        on_load: Callable[[], None] | None = None,
    ) -> None:
        """`on_load` runs once, just before torch's MTCNN is built (`mer prepare` sets torch's threads there)."""
        self.device_name = device
        self.min_face_size = min_face_size
        self.batch_size = batch_size
        self.on_load = on_load
        self._device: torch.device | None = None
        self._mtcnn = None

    @property
    def device(self) -> torch.device:
        """The torch device MTCNN runs on (`device` resolved on first use: 'auto' is CUDA when available)."""
        if self._device is None:
            self._device = resolve_device(self.device_name)
        return self._device

    @property
    def mtcnn(self):  # noqa: ANN201 - facenet_pytorch.MTCNN, imported lazily (slow import)
        """The facenet-pytorch MTCNN, built on first use."""
        if self._mtcnn is None:
            if self.on_load is not None:
                self.on_load()
            from facenet_pytorch import MTCNN

            self._mtcnn = MTCNN(keep_all=True, device=self.device, min_face_size=self.min_face_size, post_process=False)
        return self._mtcnn

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """All faces in each image, most confident first. Gray or colour uint8 arrays."""
        import torch  # local: see the module docstring

        rgb = [to_rgb(im) for im in images]
        by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, im in enumerate(rgb):
            by_shape[im.shape].append(i)
        out: list[list[Face]] = [[] for _ in rgb]
        for idx in by_shape.values():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start : start + self.batch_size]
                batch = np.stack([rgb[i] for i in chunk])
                with torch.inference_mode():
                    boxes, probs, points = self.mtcnn.detect(batch, landmarks=True)
                for i, b, p, pts in zip(chunk, boxes, probs, points, strict=True):
                    out[i] = _faces(b, p, pts)
        return out

    def detect_one(self, image: np.ndarray) -> list[Face]:
        """All faces in one image."""
        return self.detect([image])[0]


def _faces(boxes: object, probs: object, points: object) -> list[Face]:
    """facenet-pytorch returns None or object arrays per image; turn them into Face records."""
    if boxes is None or points is None:
        return []
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 5, 2)
    faces = [Face(box=b[k], landmarks=pts[k], prob=float(p[k])) for k in range(len(b))]
    return sorted(faces, key=lambda f: -f.prob)


def pick_face(faces: Sequence[Face]) -> tuple[Face | None, str]:
    """The face to use and a note: '' for exactly one face, else why (none, or several → the largest)."""
    if not faces:
        return None, "no face found"
    if len(faces) == 1:
        return faces[0], ""
    largest = max(faces, key=lambda f: f.area)
    return largest, f"{len(faces)} faces found; used the largest ({largest.area:.0f} px²)"
