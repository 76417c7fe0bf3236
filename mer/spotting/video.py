"""Long inputs for spotting: a video file (any frame rate, constant or variable) or a folder of frames.

`open_long_video(path, fps=None)` checks the input with `mer.inference.video.open_media` (every bad input is one
`MerError` line) and settles the frame rate once: a video's frames carry their decode timestamps (OpenCV's FFmpeg
backend, `CAP_PROP_POS_MSEC`), and the first `PROBE_FRAMES` of them decide whether the header's fps can be trusted; a
header that disagrees with its own timestamps (variable-rate phone videos, broken containers) is replaced by the rate
the timestamps show. Frame times (seconds, used for interval times and durations) are the timestamps whenever they
increase, so a variable-rate video gets its real times. A folder of frames has no clock: its fps is the caller's (the
dataset's) or `DEFAULT_FPS`. `OpenedVideo.frames()` streams (index, seconds, RGB uint8) so a long video never has to fit
in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mer.errors import MerError
from mer.files import read_image
from mer.inference.video import Media, open_media

PROBE_FRAMES = 64  # frames whose timestamps are read when the video is opened
DEFAULT_FPS = 30.0  # a folder of frames without a given rate
FPS_TOLERANCE = 0.05  # relative disagreement between header fps and timestamps above which the timestamps win


def fps_from_timestamps(times: Sequence[float]) -> float | None:
    """Frames per second from decode timestamps (seconds): frames over elapsed time, None when they cannot tell.

    Elapsed time, not the median step, so a variable-rate file gets its average rate (what durations need).
    """
    t = np.asarray([x for x in times if np.isfinite(x)], dtype=np.float64)
    if len(t) < 3:
        return None
    steps = np.diff(t)
    if np.any(steps <= 0) or t[-1] - t[0] <= 0:  # containers without timestamps repeat 0 or go backwards
        return None
    return float((len(t) - 1) / (t[-1] - t[0]))


@dataclass
class OpenedVideo:
    """A checked long input: frame count, size, the fps used for windows and seconds, and where it came from."""

    media: Media
    fps: float
    fps_source: str  # header | timestamps | given | default
    note: str = ""
    timestamps: bool = False  # frame times come from the decoder's timestamps (a video whose timestamps increase)

    @property
    def path(self) -> Path:
        """The input path."""
        return self.media.path

    @property
    def n_frames(self) -> int:
        """Frame count (from the header, or counted by decoding when the container has none)."""
        return self.media.n_frames

    def frames(self, max_frames: int | None = None) -> Iterator[tuple[int, float, np.ndarray]]:
        """(index, seconds from the start, RGB uint8 frame) in order; a video's own timestamps when it has them."""
        limit = self.n_frames if max_frames is None else min(self.n_frames, max_frames)
        if self.media.kind != "video":
            for i, frame in self.media.frames(limit):
                yield i, i / self.fps, frame
            return
        cap = cv2.VideoCapture(str(self.path))
        try:
            i, last = 0, -1.0
            while max_frames is None or i < max_frames:
                ok, frame = cap.read()
                if not ok or frame is None:
                    break
                t = i / self.fps
                if self.timestamps:  # the frame's own time (a variable rate), else one frame after the last
                    stamp = float(cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
                    t = stamp if np.isfinite(stamp) and stamp > last else last + 1.0 / self.fps
                last = t
                yield i, t, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                i += 1
        finally:
            cap.release()


def _probe_times(path: Path, n: int) -> list[float]:
    cap = cv2.VideoCapture(str(path))
    times: list[float] = []
    try:
        while len(times) < n:
            if not cap.grab():
                break
            times.append(float(cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0)
    finally:
        cap.release()
    return times


def open_long_video(
    path: str | Path | Sequence[str | Path], fps: float | None = None, min_side: int = 40
) -> OpenedVideo:
    """Check a video, a frames folder or a list of frame files (in order; e.g. `mer.data.longvideo.LongVideo.frames`)
    for spotting and settle its frame rate (see the module docstring).

    `fps` overrides whatever the file says (a frames folder or list needs it; a video's header may be wrong).
    """
    if isinstance(path, (list, tuple)):
        files = [Path(f) for f in path]
        if not files:
            raise MerError("no frames given: the frame list is empty")
        first = read_image(files[0], min_side)
        media = Media(files[0].parent, "frames", len(files), None, first.shape[1], first.shape[0], files, min_side)
    else:
        media = open_media(path, min_side=min_side)
    if media.kind == "image":
        raise MerError(f"{media.path}: one image cannot be spotted; give a video or a folder of a video's frames")
    if fps is not None:
        if not fps > 0:
            raise MerError(f"fps must be positive, got {fps}")
        return OpenedVideo(media, float(fps), "given")
    if media.kind == "frames":
        note = f"a folder of frames has no frame rate: assumed {DEFAULT_FPS:g} fps (give --fps)"
        return OpenedVideo(media, DEFAULT_FPS, "default", note)
    header = media.fps
    probe = _probe_times(media.path, PROBE_FRAMES)
    measured = fps_from_timestamps(probe)
    stamped = measured is not None
    steps = np.diff(probe) if stamped else np.zeros(0)
    variable = stamped and len(steps) > 1 and float(steps.max()) > 1.5 * float(steps.min())
    vfr = "variable frame rate: frame times from the timestamps; " if variable else ""
    if measured is not None and (header is None or abs(measured - header) > FPS_TOLERANCE * header):
        note = f"header fps {header:g} disagrees with the frame timestamps" if header else "no fps in the header"
        return OpenedVideo(media, measured, "timestamps", f"{vfr}{note}: used {measured:.3f} fps from them", True)
    if header is not None:
        note = f"{vfr}windows at the header's average {header:g} fps" if variable else ""
        return OpenedVideo(media, float(header), "header", note, stamped)
    note = f"no usable fps in the file or its timestamps: assumed {DEFAULT_FPS:g} fps (give --fps)"
    return OpenedVideo(media, DEFAULT_FPS, "default", note)


class StageTimer:
    """Wall seconds per named stage (decode, detect, track, align, flow, score), summed over calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        """Add `seconds` to `stage`."""
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def rounded(self) -> dict[str, float]:
        """The stages in the order they were first timed, in seconds to 3 decimals."""
        return {k: round(v, 3) for k, v in self.seconds.items()}
