"""Content-addressed cache of aligned face crops, so `mer prepare` pays for MTCNN once per image and pipeline setting.

Layout under the cache folder (``<prepared>/crops``)::

    detections/<det_hash>/<ab>/<sha256>.json   every MTCNN face of a source image (box, landmarks, prob)
    <cfg_hash>/<ab>/<sha256>.png               the aligned uint8 gray crop
    <cfg_hash>/<ab>/<sha256>.json              its record: ok, reason, note, source, box, landmarks, prob, roll
    <cfg_hash>/spots/<ab>/<key>.json           apex spotted in a clip (key: hash of its frames' hashes)
    <cfg_hash>/motion/<ab>/<key>.npy           onset→apex motion input (key: frames' hashes, data.input, flow method)
    <cfg_hash>/lbptop/<ab>/<key>.npy           LBP-TOP feature of an aligned clip (key: its frames' hashes, settings)
    <cfg_hash>/face_config.json                the settings behind <cfg_hash>, for people

``sha256`` is the hash of the source file's bytes (renaming or moving a dataset keeps the cache valid);
``det_hash`` covers what changes detection (``min_face_size``), ``cfg_hash`` what changes the crop (size, margin,
rotate, refine_roll, eye mask and detection). Changing the eye mask therefore re-aligns from the stored detections
without running MTCNN again; a second run with the same settings does no detection and no alignment. Images with no
face are recorded too (``ok: false`` with the reason), so they are not re-detected either.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm.auto import tqdm

from mer.config import FaceConfig
from mer.errors import UnreadableFileError
from mer.face.align import align
from mer.face.detect import Face, FaceDetector, pick_face
from mer.files import atomic_write_bytes, file_sha256, read_image

PIPELINE_VERSION = 1  # bump when the alignment code changes what a crop looks like
DETECT_VERSION = 1  # bump when detection changes
ALIGN_KEYS = ("size", "margin", "rotate", "refine_roll", "eye_mask", "eye_mask_width", "eye_mask_height")
DETECT_KEYS = ("min_face_size",)


def cache_name(path: str | Path) -> str:
    """What a cached file's path says about its content, wherever the cache folder is: from `<cfg_hash>` on, i.e.
    `<cfg_hash>/<ab>/<sha256>.png` of a crop and `<cfg_hash>/<kind>/<ab>/<key>.npy` of an array (the pipeline
    settings' hash and the content key). '' (no file) stays ''."""
    if not path:
        return ""
    parts = Path(path).parts
    return "/".join(parts[-4:] if str(path).endswith(".npy") else parts[-3:])


def _digest(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]


def _settings(cfg: FaceConfig, keys: Sequence[str]) -> dict[str, Any]:
    defaults = {"refine_roll": True}  # keys a FaceConfig may not have yet
    return {k: getattr(cfg, k, defaults.get(k)) for k in keys}


def detection_hash(cfg: FaceConfig) -> str:
    """Short hash of the settings that change MTCNN's output."""
    return _digest({"version": DETECT_VERSION, **_settings(cfg, DETECT_KEYS)})


def config_hash(cfg: FaceConfig) -> str:
    """Short hash of every setting that changes an aligned crop (alignment + detection)."""
    return _digest({"version": PIPELINE_VERSION, "detect": detection_hash(cfg), **_settings(cfg, ALIGN_KEYS)})


@dataclass
class CropResult:
    """What the cache knows about one source image: its crop (when a face was found) and why not otherwise."""

    source: str
    ok: bool
    crop: Path | None = None  # absolute path of the cached PNG
    content_hash: str | None = None
    reason: str = ""  # why there is no crop (ok == False)
    note: str = ""  # remark on a crop that was made anyway, e.g. several faces → the largest
    box: np.ndarray | None = None
    landmarks: np.ndarray | None = None  # (5, 2) in source pixels
    prob: float | None = None
    n_faces: int = 0
    roll: float | None = None  # degrees the face was rotated by
    cached: bool = False  # True when nothing had to be computed (crop record already in the cache)

    def record(self) -> dict[str, Any]:
        """JSON-able sidecar content."""
        return {
            "ok": self.ok,
            "reason": self.reason,
            "note": self.note,
            "source": self.source,
            "box": None if self.box is None else np.asarray(self.box).round(3).tolist(),
            "landmarks": None if self.landmarks is None else np.asarray(self.landmarks).round(3).tolist(),
            "prob": self.prob,
            "n_faces": self.n_faces,
            "roll": self.roll,
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any], source: str, crop: Path | None, content_hash: str) -> CropResult:
        """Rebuild from a sidecar (the source path is the current one, not the one stored)."""
        return cls(
            source=source,
            ok=bool(rec["ok"]),
            crop=crop if rec["ok"] else None,
            content_hash=content_hash,
            reason=rec.get("reason", ""),
            note=rec.get("note", ""),
            box=None if rec.get("box") is None else np.asarray(rec["box"], dtype=np.float64),
            landmarks=None if rec.get("landmarks") is None else np.asarray(rec["landmarks"], dtype=np.float64),
            prob=rec.get("prob"),
            n_faces=int(rec.get("n_faces", 0)),
            roll=rec.get("roll"),
            cached=True,
        )


def _faces_to_json(faces: list[Face], shape: tuple[int, ...]) -> bytes:
    rec = {
        "shape": list(shape),
        "faces": [
            {"box": f.box.round(3).tolist(), "landmarks": f.landmarks.round(3).tolist(), "prob": f.prob} for f in faces
        ],
    }
    return json.dumps(rec).encode()


def _faces_from_json(data: bytes) -> list[Face]:
    rec = json.loads(data)
    return [
        Face(
            box=np.asarray(f["box"], dtype=np.float64),
            landmarks=np.asarray(f["landmarks"], dtype=np.float64),
            prob=float(f["prob"]),
        )
        for f in rec["faces"]
    ]


class CropCache:
    """Aligned crops keyed by (source bytes hash, face pipeline settings); MTCNN runs only for images not cached yet."""

    def __init__(
        self,
        cache_dir: str | Path,
        cfg: FaceConfig,
        detector: FaceDetector | None = None,
        progress: bool = True,
    ) -> None:
        self.root = Path(cache_dir)
        self.cfg = cfg
        self.cfg_hash = config_hash(cfg)
        self.det_hash = detection_hash(cfg)
        self._detector = detector
        self.progress = progress
        self.stats = {"hits": 0, "detected": 0, "aligned": 0, "failed": 0}  # counts since construction

    @property
    def detector(self) -> FaceDetector:
        """The MTCNN detector, built on first need (a warm cache never loads it)."""
        if self._detector is None:
            self._detector = FaceDetector(self.cfg.device, self.cfg.min_face_size, self.cfg.batch_size)
        return self._detector

    def crop_path(self, content_hash: str) -> Path:
        """Where the crop PNG of a source with this content hash lives."""
        return self.root / self.cfg_hash / content_hash[:2] / f"{content_hash}.png"

    def _record_path(self, content_hash: str) -> Path:
        return self.crop_path(content_hash).with_suffix(".json")

    def _detection_path(self, content_hash: str) -> Path:
        return self.root / "detections" / self.det_hash / content_hash[:2] / f"{content_hash}.json"

    def memo_get(self, kind: str, key: str) -> dict[str, Any] | None:
        """A small JSON result stored under this pipeline setting (e.g. kind='spots'), or None."""
        path = self.root / self.cfg_hash / kind / key[:2] / f"{key}.json"
        try:
            return json.loads(path.read_text()) if path.is_file() else None
        except (OSError, json.JSONDecodeError):
            return None

    def memo_put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        """Store a small JSON result under this pipeline setting (read back with `memo_get`)."""
        atomic_write_bytes(self.root / self.cfg_hash / kind / key[:2] / f"{key}.json", json.dumps(value).encode())

    def array_path(self, kind: str, key: str) -> Path:
        """Where an array result (motion input, LBP-TOP feature) with this key is stored under this pipeline setting."""
        return self.root / self.cfg_hash / kind / key[:2] / f"{key}.npy"

    def array_get(self, kind: str, key: str) -> Path | None:
        """The stored array file of (kind, key), or None when it has to be computed."""
        path = self.array_path(kind, key)
        return path if path.is_file() else None

    def array_put(self, kind: str, key: str, value: np.ndarray) -> Path:
        """Store an array (`.npy`, written atomically) under this pipeline setting; returns its path."""
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(value), allow_pickle=False)
        path = self.array_path(kind, key)
        atomic_write_bytes(path, buf.getvalue())
        return path

    def _write_config_note(self) -> None:
        note = self.root / self.cfg_hash / "face_config.json"
        if not note.is_file():
            settings = {**_settings(self.cfg, ALIGN_KEYS), **_settings(self.cfg, DETECT_KEYS)}
            atomic_write_bytes(note, json.dumps({"pipeline_version": PIPELINE_VERSION, **settings}, indent=2).encode())

    def lookup(self, path: str | Path, content_hash: str | None = None) -> CropResult | None:
        """The cached result for one source file, or None when it has to be computed."""
        digest = content_hash or file_sha256(path)
        rec_path = self._record_path(digest)
        if not rec_path.is_file():
            return None
        try:
            rec = json.loads(rec_path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        crop = self.crop_path(digest)
        if rec.get("ok") and not crop.is_file():
            return None
        return CropResult.from_record(rec, str(path), crop, digest)

    def get_or_make(self, paths: Sequence[str | Path], desc: str = "faces") -> list[CropResult]:
        """One CropResult per path (same order). Only cache misses are decoded, and only those without stored
        detections go through MTCNN, in batches of `cfg.batch_size`. Missing/unreadable files give ok=False results.
        """
        sources = [str(p) for p in paths]
        results: dict[str, CropResult] = {}
        misses: dict[str, str] = {}  # content hash → first source path with it
        pool = ThreadPoolExecutor(self.cfg.workers) if self.cfg.workers > 0 else None
        try:
            unique = list(dict.fromkeys(sources))
            hashes = list(_map(pool, _safe_hash, unique))
            for src, digest in zip(unique, hashes, strict=True):
                if isinstance(digest, Exception):
                    results[src] = CropResult(source=src, ok=False, reason=str(digest))
                    self.stats["failed"] += 1
                    continue
                hit = self.lookup(src, digest)
                if hit is not None:
                    results[src] = hit
                    self.stats["hits"] += 1
                else:
                    misses.setdefault(digest, src)
            if misses:
                self._write_config_note()
                made = self._make(misses, pool, desc)
                for src, digest in zip(unique, hashes, strict=True):
                    if src not in results and isinstance(digest, str):
                        res = made[digest]
                        results[src] = res if res.source == src else _with_source(res, src)
        finally:
            if pool is not None:
                pool.shutdown()
        return [results[s] for s in sources]

    def _make(self, misses: dict[str, str], pool: ThreadPoolExecutor | None, desc: str) -> dict[str, CropResult]:
        """Decode, detect (batched, only without stored detections), align and store every missed content hash."""
        out: dict[str, CropResult] = {}
        items = list(misses.items())
        chunk = max(1, int(self.cfg.batch_size))
        bar = tqdm(total=len(items), desc=desc, unit="img", disable=not self.progress or len(items) < 2, leave=False)
        try:
            for start in range(0, len(items), chunk):
                part = items[start : start + chunk]
                images = list(_map(pool, lambda item: _safe_decode(item[1]), part))
                stored = [self._stored_faces(digest) for digest, _ in part]
                todo = [
                    i
                    for i, (img, faces) in enumerate(zip(images, stored, strict=True))
                    if faces is None and not isinstance(img, Exception)
                ]
                if todo:
                    found = self.detector.detect([images[i] for i in todo])
                    for i, faces in zip(todo, found, strict=True):
                        digest = part[i][0]
                        stored[i] = faces
                        atomic_write_bytes(self._detection_path(digest), _faces_to_json(faces, images[i].shape))
                    self.stats["detected"] += len(todo)
                jobs = [
                    (digest, src, img, faces) for (digest, src), img, faces in zip(part, images, stored, strict=True)
                ]
                for res in _map(pool, lambda job: self._finish(*job), jobs):
                    out[res.content_hash or ""] = res
                    self.stats["aligned" if res.ok else "failed"] += 1
                bar.update(len(part))
        finally:
            bar.close()
        return out

    def _stored_faces(self, digest: str) -> list[Face] | None:
        path = self._detection_path(digest)
        if not path.is_file():
            return None
        try:
            return _faces_from_json(path.read_bytes())
        except (OSError, json.JSONDecodeError, KeyError):
            return None

    def _finish(self, digest: str, src: str, image: np.ndarray | Exception, faces: list[Face] | None) -> CropResult:
        """Pick the face, align, write the crop and its record (records for failures too, except unreadable files)."""
        if isinstance(image, Exception):
            reason = image.problem if isinstance(image, UnreadableFileError) else str(image)
            return CropResult(source=src, ok=False, content_hash=digest, reason=reason)
        faces = faces or []
        face, note = pick_face(faces)
        if face is None:
            res = CropResult(source=src, ok=False, content_hash=digest, reason=note, n_faces=0)
        else:
            aligned = align(image, face.landmarks, self.cfg, face.box)
            ok, png = cv2.imencode(".png", aligned.crop)
            if not ok:  # pragma: no cover - OpenCV cannot fail on a uint8 gray image
                raise RuntimeError("PNG encoding failed")
            atomic_write_bytes(self.crop_path(digest), png.tobytes())
            res = CropResult(
                source=src,
                ok=True,
                crop=self.crop_path(digest),
                content_hash=digest,
                note=note,
                box=face.box,
                landmarks=face.landmarks,
                prob=face.prob,
                n_faces=len(faces),
                roll=aligned.roll,
            )
        atomic_write_bytes(self._record_path(digest), json.dumps(res.record()).encode())
        return res


def _with_source(res: CropResult, src: str) -> CropResult:
    """The same result for another file with identical bytes."""
    return CropResult(**{**res.__dict__, "source": src})


def _safe_hash(path: str) -> str | Exception:
    try:
        return file_sha256(path)
    except FileNotFoundError:
        return OSError("file not found")
    except OSError as exc:
        return OSError(f"cannot read file ({exc.strerror or exc})")


def _safe_decode(path: str) -> np.ndarray | Exception:
    try:
        return read_image(path)
    except UnreadableFileError as exc:
        return exc


def _map(pool: ThreadPoolExecutor | None, fn: Any, items: Sequence[Any]) -> Iterator[Any]:
    """map() in the thread pool when there is one (OpenCV and hashlib release the GIL), else in this thread."""
    return pool.map(fn, items) if pool is not None else map(fn, items)
