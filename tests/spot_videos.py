"""Videos for the spotting tests: the demo's held-out identity, neutral → one expression → neutral, with black frames,
at any frame rate and container OpenCV can write here, and a variable-rate MP4 made by rewriting one's timestamps."""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from mer.demo.corpus import held_out_identity
from mer.demo.faces import micro_levels, render
from mer.demo.spec import POS, DemoSpec

FOURCC = {".avi": "MJPG", ".mp4": "mp4v", ".mkv": "FFV1"}  # what OpenCV's FFmpeg writes here (no H.264/HEVC encoder)


def expression_frames(
    n: int, onset: int, apex: int, offset: int, size: int = 160, label: str = POS, amplitude: float | None = None
) -> list[np.ndarray]:
    """RGB frames of the demo's held-out identity: neutral, the expression rising onset→apex, back by offset."""
    spec = DemoSpec()
    ident = held_out_identity(spec, 0, size)
    amp = spec.macro_amplitude if amplitude is None else amplitude
    return render(ident, label, micro_levels(n, onset, apex, offset), amp, spec, np.random.default_rng(5), gray=False)


def write_hevc(frames: Sequence[np.ndarray], path: Path, fps: float) -> Path:
    """Write RGB frames as an HEVC (H.265, libx265) MP4 with the FFmpeg that imageio-ffmpeg ships (a dev dependency):
    the codec phones and many cameras record, which OpenCV here can read but not write."""
    import imageio_ffmpeg

    h, w = frames[0].shape[:2]
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo",
               "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-", "-c:v", "libx265", "-x265-params",
               "log-level=error", "-pix_fmt", "yuv420p", "-tag:v", "hvc1", str(path)]  # fmt: skip
    subprocess.run(command, input=b"".join(np.ascontiguousarray(f).tobytes() for f in frames), check=True)
    return path


def write_frames(frames: Sequence[np.ndarray], path: Path, fps: float, black: Sequence[int] = ()) -> Path:
    """Write RGB frames with OpenCV (codec from the suffix, `FOURCC`); frames listed in `black` are all black."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC[path.suffix]), float(fps), (w, h))
    assert writer.isOpened(), f"OpenCV cannot write {path.suffix} here"
    for i, f in enumerate(frames):
        writer.write(np.zeros_like(f) if i in black else cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _boxes(buf: bytearray, start: int, end: int):  # noqa: ANN202 - (offset, size, type) of the MP4 boxes in a range
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack(">I4s", bytes(buf[i : i + 8]))
        yield i, size, kind.decode("latin-1")
        i += size


def _find(buf: bytearray, path: Sequence[str]) -> list[tuple[int, int]]:
    """(offset, size) of each box along `path` (e.g. moov/trak/mdia), outermost first."""
    out: list[tuple[int, int]] = []
    start, end = 0, len(buf)
    for name in path:
        hit = next(((o, s) for o, s, k in _boxes(buf, start, end) if k == name), None)
        if hit is None:
            return []
        out.append(hit)
        start, end = hit[0] + 8, hit[0] + hit[1]
    return out


def make_variable_rate(path: Path, slow_from: int) -> Path:
    """Turn an OpenCV-written constant-rate MP4 into a variable-rate one: frames from `slow_from` on last twice as long.

    Rewrites the video track's sample-duration table (`stts`) and the durations in mvhd / tkhd / mdhd / elst; the
    `moov` box follows the media data in OpenCV's files, so no chunk offset moves.
    """
    buf = bytearray(path.read_bytes())
    top = {k: o for o, _, k in _boxes(buf, 0, len(buf))}
    assert top["moov"] > top["mdat"], "expected moov after mdat"
    chain = _find(buf, ["moov", "trak", "mdia", "minf", "stbl", "stts"])
    off, size = chain[-1]
    (n,) = struct.unpack(">I", bytes(buf[off + 12 : off + 16]))
    assert n == 1, "expected a constant-rate stts"
    total, delta = struct.unpack(">II", bytes(buf[off + 16 : off + 24]))
    entries = [(slow_from, delta), (total - slow_from, 2 * delta)]
    body = struct.pack(">II", 0, len(entries)) + b"".join(struct.pack(">II", c, d) for c, d in entries)
    box = struct.pack(">I4s", 8 + len(body), b"stts") + body
    grow = len(box) - size
    buf[off : off + size] = box
    for o, s in chain[:-1]:
        buf[o : o + 4] = struct.pack(">I", s + grow)
    ratio = (slow_from + 2 * (total - slow_from)) / total
    for names, field in ((["moov", "mvhd"], 24), (["moov", "trak", "tkhd"], 28), (["moov", "trak", "mdia", "mdhd"], 24),
                         (["moov", "trak", "edts", "elst"], 16)):  # fmt: skip
        hit = _find(buf, names)
        if hit:
            o = hit[-1][0]
            (d,) = struct.unpack(">I", bytes(buf[o + field : o + field + 4]))
            buf[o + field : o + field + 4] = struct.pack(">I", round(d * ratio))
    path.write_bytes(bytes(buf))
    return path
