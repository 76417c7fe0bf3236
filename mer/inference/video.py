"""Reading what a user gives `mer predict`: one image, a folder of frames (numerically sorted) or a video file.

`open_media(path)` checks the input up front and fails with one `MerError` line for every bad case (missing, empty,
not an image/video, corrupt, too small to hold a face); `Media.frames()` then streams RGB uint8 frames so a long
video never has to fit in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from mer.errors import MerError
from mer.files import IMAGE_SUFFIXES, VIDEO_SUFFIXES, check_file, check_min_side, image_files, read_image

MIN_SIDE = 40  # px: below this an image cannot hold a face MTCNN finds (its smallest face is min_face_size)


@dataclass
class Media:
    """A checked input: its kind (image | frames | video), frame count, fps (videos only) and frame source."""

    path: Path
    kind: str
    n_frames: int
    fps: float | None = None
    width: int = 0
    height: int = 0
    files: list[Path] = field(default_factory=list)  # frames folder (or the single image)
    min_side: int = MIN_SIDE

    def frames(self, max_frames: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(index, RGB uint8 frame) in order; at most `max_frames`."""
        limit = self.n_frames if max_frames is None else min(self.n_frames, max_frames)
        if self.kind == "video":
            yield from _video_frames(self.path, limit)
            return
        for i, f in enumerate(self.files[:limit]):
            yield i, read_image(f, self.min_side)

    def time_of(self, index: int) -> float | None:
        """Seconds from the start of the video for frame `index` (None without an fps)."""
        return round(index / self.fps, 4) if self.fps else None


def _video_frames(path: Path, limit: int) -> Iterator[tuple[int, np.ndarray]]:
    cap = cv2.VideoCapture(str(path))
    try:
        i = 0
        while i < limit:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            yield i, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            i += 1
    finally:
        cap.release()


def open_video(path: Path, min_side: int = MIN_SIDE) -> Media:
    """Check a video: OpenCV can open it and decode its first frame; frame count and fps from its header."""
    check_file(path, "video")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise MerError(f"{path}: not a readable video (OpenCV/FFmpeg cannot open it; is the file complete?)")
        ok, first = cap.read()
        if not ok or first is None:
            raise MerError(f"{path}: not a readable video (no frame could be decoded; the file may be corrupt)")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        cap.release()
    check_min_side(path, first, min_side)
    if count <= 0:  # some containers do not store the count: decode once to know it
        count = sum(1 for _ in _video_frames(path, 10**9))
    return Media(path, "video", count, fps if 0 < fps < 1000 else None, first.shape[1], first.shape[0])


def open_media(path: str | Path, min_side: int = MIN_SIDE) -> Media:
    """Check `path` and say what it is: an image, a folder of frames (sorted numerically) or a video."""
    path = Path(path)
    if not path.exists():
        raise MerError(f"{path}: file not found (give an image, a folder of frames or a video)")
    if path.is_dir():
        ordered = image_files(path)
        if not ordered:
            raise MerError(f"{path}: folder holds no images ({', '.join(IMAGE_SUFFIXES)}); expected a clip's frames")
        first = read_image(ordered[0], min_side)
        return Media(path, "frames", len(ordered), None, first.shape[1], first.shape[0], ordered, min_side)
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return open_video(path, min_side)
    if suffix in IMAGE_SUFFIXES:
        img = read_image(path, min_side)
        return Media(path, "image", 1, None, img.shape[1], img.shape[0], [path], min_side)
    check_file(path, "image or video")
    raise MerError(
        f"{path}: unknown file type '{suffix or '(none)'}'; give an image ({', '.join(IMAGE_SUFFIXES)}), "
        f"a video ({', '.join(VIDEO_SUFFIXES)}) or a folder of frames"
    )


def sample_photos() -> list[np.ndarray]:
    """The two public-domain portraits shipped inside installed packages (no download): scikit-image's astronaut
    (Eileen Collins) and matplotlib's Grace Hopper, as RGB uint8."""
    from matplotlib import cbook  # lazy: matplotlib costs ~0.3 s and only the sample photos need it
    from skimage import data  # lazy: as matplotlib

    hopper = read_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    return [np.ascontiguousarray(data.astronaut()), hopper]


def expression_clip(
    image: np.ndarray,
    landmarks: np.ndarray,
    n_frames: int = 24,
    apex: int = 12,
    amplitude: float = 0.12,
    width: float = 3.0,
) -> list[np.ndarray]:
    """A synthetic clip for tests and benchmarks: `image` warped by a smooth expression (mouth corners up and out,
    brows up; Gaussian bumps of σ = 0.18 × eye distance) whose strength rises and falls as a Gaussian in time
    (σ = `width` frames) peaking at frame `apex`, with peak displacement `amplitude` × eye distance."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    d = float(np.linalg.norm(lm[1] - lm[0]))
    sigma = 0.18 * d
    eye_vec = (lm[1] - lm[0]) / max(d, 1e-6)
    up = np.array([eye_vec[1], -eye_vec[0]])  # perpendicular to the eye line, towards the forehead
    brow = lambda e: e + 0.35 * d * up  # noqa: E731 - two tiny point helpers
    moves = [
        (lm[3], 0.7 * up - 0.7 * eye_vec),  # left mouth corner: up and outwards
        (lm[4], 0.7 * up + 0.7 * eye_vec),
        (brow(lm[0]), up),
        (brow(lm[1]), up),
    ]
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    field = np.zeros((h, w, 2), dtype=np.float32)
    for centre, direction in moves:
        g = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma**2))
        field[..., 0] += g * direction[0]
        field[..., 1] += g * direction[1]
    frames = []
    for t in range(n_frames):
        a = amplitude * d * float(np.exp(-((t - apex) ** 2) / (2 * width**2)))
        frames.append(
            cv2.remap(
                image, xs - a * field[..., 0], ys - a * field[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
            )  # fmt: skip
        )
    return frames


def write_video(frames: list[np.ndarray], path: str | Path, fps: float = 30.0) -> Path:
    """Write RGB frames to a video file (.mp4: mp4v, .avi: MJPG) with OpenCV; returns the path."""
    path = Path(path)
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), fourcc, float(fps), (w, h))
    if not writer.isOpened():
        raise MerError(f"{path}: OpenCV cannot write this video format")
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path
