"""Tiny fixture trees in the real datasets' layouts (8×8 images, openpyxl coding sheets), for the reader tests.

Every builder writes under `root` and returns it; samples are plain dicts or tuples so a test states exactly
which quirk it exercises (apex "/", SAMM's preamble and apex -1, CK+ sequences without an emotion file, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mer.demo.layouts import CASME2_HEADER, SAMM_HEADER, SAMM_PREAMBLE, write_xlsx


@cache
def _encoded(ext: str, value: int) -> bytes:
    image = np.full((8, 8), value, dtype=np.uint8)
    image[2:6, 2:6] = 255 - value
    ok, buf = cv2.imencode(ext, image)
    assert ok, ext
    return buf.tobytes()


def write_image(path: Path, value: int = 96) -> Path:
    """An 8×8 grayscale image in the format of the path's extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_encoded(path.suffix.lower(), value))
    return path


def write_frames(folder: Path, names: Iterable[str], images: Sequence[np.ndarray] | None = None) -> list[Path]:
    """One image per file name in `folder`: a tiny one, or `images[i]` (an array as cv2 writes it) when given."""
    names = list(names)
    if images is None:
        return [write_image(folder / name) for name in names]
    assert len(images) == len(names), f"{len(images)} images for {len(names)} frames"
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in zip(names, images, strict=True):
        assert cv2.imwrite(str(folder / name), image), folder / name
    return [folder / name for name in names]


@cache
def _astronaut(size: int) -> np.ndarray:
    from skimage import data as skdata  # only the tests that need real faces pay for skimage's import

    return cv2.cvtColor(cv2.resize(skdata.astronaut(), (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)


def moving_blob_clip(n: int, apex: int, size: int = 256, shift: float = 5.0) -> list[np.ndarray]:
    """n BGR frames of skimage's astronaut with a bright blob on the mouth that moves right, furthest at `apex`.

    The blob's shift is `shift`·exp(-(t - apex)² / 1.28) pixels: frame `apex` moved most from the onset (frame 0),
    so the optical-flow spotter has real motion to find and exactly one right answer. The face is MTCNN-detectable.
    """
    face = _astronaut(size)
    scale = size / 512
    cx, cy, radius = 223 * scale, 140 * scale, 10 * scale  # the astronaut's mouth centre
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    frames = []
    for t in range(n):
        d = shift * np.exp(-((t - apex) ** 2) / (2 * 0.8**2))
        blob = 110.0 * np.exp(-((xx - cx - d) ** 2 + (yy - cy) ** 2) / (2 * radius**2))
        frames.append(np.clip(face.astype(np.float32) + blob[..., None], 0, 255).astype(np.uint8))
    return frames


def casme2_sample(
    subject: int | str = 1,
    filename: str = "EP02_01f",
    onset: int = 46,
    apex: int | str | None = 50,
    offset: int = 55,
    emotion: str = "happiness",
    frames: Iterable[int] | None = None,
    write: bool = True,
    images: Sequence[np.ndarray] | None = None,
) -> dict[str, Any]:
    """One CASME II coding row (+ its frames img<onset>..img<offset>.jpg unless `frames`/`write` say otherwise).

    `apex` may be "/" or None (a blank cell), as in the real sheet; `images` are the frames' pixels (default tiny).
    """
    return dict(
        subject=subject,
        filename=filename,
        onset=onset,
        apex=apex,
        offset=offset,
        emotion=emotion,
        frames=list(frames) if frames is not None else list(range(onset, offset + 1)),
        write=write,
        images=images,
    )


def make_casme2(
    root: Path,
    samples: Sequence[dict[str, Any]] | None = None,
    coding_name: str = "CASME2-coding-20140508.xlsx",
    header: Sequence[str] = CASME2_HEADER,
    blank_columns: Sequence[int] = (),
) -> Path:
    """`root/CASME2-coding-*.xlsx` + `root/CASME2_RAW_selected/subNN/<Filename>/img<N>.jpg`.

    `header` may spell the columns differently (a sheet version); `blank_columns` inserts columns with a blank header
    and blank cells at those positions (`CASME2-coding-updated.xlsx` has them at 2 and 6: pandas' `Unnamed: 2`).
    """
    samples = samples if samples is not None else [casme2_sample()]
    table = []
    (root / "CASME2_RAW_selected").mkdir(parents=True, exist_ok=True)
    for s in samples:
        table.append([s["subject"], s["filename"], s["onset"], s["apex"], s["offset"], "12", s["emotion"]])
        if s["write"]:
            number = int(str(s["subject"]).lower().removeprefix("sub"))
            folder = root / "CASME2_RAW_selected" / f"sub{number:02d}" / s["filename"]
            write_frames(folder, [f"img{n}.jpg" for n in s["frames"]], s.get("images"))
    header_row: list[Any] = list(header)
    for i in sorted(blank_columns):
        for line in [header_row, *table]:
            line.insert(i, None)
    write_xlsx(root / coding_name, header_row, table)
    return root


def samm_sample(
    subject: int | str = 6,
    filename: str = "006_1_2",
    onset: int = 5562,
    apex: int = 5588,
    offset: int = 5600,
    emotion: str = "Anger",
    frames: Iterable[int] | None = None,
    write: bool = True,
    images: Sequence[np.ndarray] | None = None,
) -> dict[str, Any]:
    """One SAMM coding row (+ frames <subject>_<NNNNN>.jpg for onset..offset unless told otherwise).

    `apex` -1 is how SAMM codes a clip without an apex; `images` are the frames' pixels (default tiny).
    """
    return dict(
        subject=subject,
        filename=filename,
        onset=onset,
        apex=apex,
        offset=offset,
        emotion=emotion,
        frames=list(frames) if frames is not None else list(range(onset, offset + 1)),
        write=write,
        images=images,
    )


def make_samm(
    root: Path,
    samples: Sequence[dict[str, Any]] | None = None,
    coding_name: str = "SAMM_Micro_FACS_Codes_v2.xlsx",
    preamble: bool = True,
    sheet: str | None = None,
    before: Sequence[str] = (),
    header: Sequence[str] = (),
) -> Path:
    """`root/SAMM_Micro_FACS_Codes_v2.xlsx` (13 preamble rows, header on row 14) + `root/SAMM/006/006_1_2/*.jpg`.

    `preamble=False` writes the header on row 1 (`SAMM_20181215_Micro_FACS_Codes_v2.xlsx`, `SAMM.xlsx`); `sheet` names
    the coding sheet and `before` adds other sheets in front of it (`SAMM.xlsx`: `MICRO_ONLY` is not the first);
    `header` replaces the column names.
    """
    samples = samples if samples is not None else [samm_sample()]
    table: list[list[Any]] = []
    (root / "SAMM").mkdir(parents=True, exist_ok=True)
    for s in samples:
        table.append(
            [
                s["subject"],
                s["filename"],
                "1_2",
                s["onset"],
                s["apex"],
                s["offset"],
                40,
                "Micro",
                "AU4",
                "",
                s["emotion"],
            ]
        )
        if s["write"]:
            sub = f"{int(s['subject']):03d}"
            names = [f"{sub}_{n:05d}.jpg" for n in s["frames"]]
            write_frames(root / "SAMM" / sub / s["filename"], names, s.get("images"))
    write_xlsx(root / coding_name, list(header or SAMM_HEADER), table, SAMM_PREAMBLE if preamble else [],
               title=sheet or "Sheet1", before=before)  # fmt: skip
    return root


def make_smic(root: Path, clips: Sequence[tuple[str, str, str, int]] | None = None, micro: bool = True) -> Path:
    """`root/HS/<subject>/micro/<class>/<clip>/image<N>.jpg`; clips are (subject, class, clip, n_frames).

    `micro=False` leaves out the `micro/` level (`HS/<subject>/<class>/<clip>/`), as some copies do."""
    clips = clips if clips is not None else [("s1", "negative", "s1_ne_01", 5)]
    for subject, cls, clip, n in clips:
        folder = root / "HS" / subject / ("micro" if micro else "") / cls / clip
        write_frames(folder, [f"image{90823 + i:06d}.jpg" for i in range(n)])
    return root


def make_ckplus(root: Path, sequences: Sequence[dict[str, Any]] | None = None) -> Path:
    """`root/cohn-kanade-images/S005/001/S005_001_000000NN.png` + `root/Emotion/S005/001/..._emotion.txt`.

    Each sequence: subject, seq, n (frames), code (a number, a raw text such as "garbage", or None: no emotion file).
    """
    sequences = sequences if sequences is not None else [dict(subject="S005", seq="001", n=11, code=3)]
    (root / "Emotion").mkdir(parents=True, exist_ok=True)
    for s in sequences:
        stem = f"{s['subject']}_{s['seq']}"
        names = [f"{stem}_{i:08d}.png" for i in range(1, s["n"] + 1)]
        write_frames(root / "cohn-kanade-images" / s["subject"] / s["seq"], names)
        if s.get("code") is not None:
            text = s["code"] if isinstance(s["code"], str) else f"   {float(s['code']):.7e}\n"
            label = root / "Emotion" / s["subject"] / s["seq"] / f"{stem}_{s['n']:08d}_emotion.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(text)
    return root


def make_oulu(root: Path, sequences: Sequence[tuple[str, str, int]] | None = None) -> Path:
    """`root/OriginalImg/VL/Strong/<P001>/<Emotion>/000.jpeg`; sequences are (subject, emotion folder, n_frames)."""
    sequences = sequences if sequences is not None else [("P001", "Happiness", 6)]
    for subject, emotion, n in sequences:
        folder = root / "OriginalImg" / "VL" / "Strong" / subject / emotion
        write_frames(folder, [f"{i:03d}.jpeg" for i in range(n)])
    return root


def make_jaffe(root: Path, names: Sequence[str] | None = None) -> Path:
    """A flat JAFFE folder of `KA.AN1.39.tiff`-style files (names given without or with an extension)."""
    names = names if names is not None else ["KA.AN1.39", "KA.HA2.30", "KA.NE1.26", "YM.SU3.60"]
    for name in names:
        write_image(root / (name if Path(name).suffix in (".tiff", ".tif", ".png") else f"{name}.tiff"))
    return root


def make_mug(root: Path, takes: Sequence[dict[str, Any]] | None = None) -> Path:
    """`root/subjects3/<001>/[<session>/]<emotion>/<take000>/img_NNNN.jpg`; takes: subject emotion take n session."""
    takes = takes if takes is not None else [dict(subject="001", emotion="happiness", take="take000", n=20)]
    for t in takes:
        folder = root / "subjects3" / t["subject"]
        if t.get("session"):
            folder = folder / t["session"]
        folder = folder / t["emotion"] / t["take"]
        write_frames(folder, [f"img_{i:04d}.jpg" for i in range(1, t["n"] + 1)])
    return root


def make_folder(root: Path, samples: Sequence[tuple[str, str, str, int, Any]] | None = None) -> Path:
    """`root/<label>/<subject>/<sample>/frame<N>.png`; samples are (label, subject, sample, n_frames, apex.txt text)."""
    samples = samples if samples is not None else [("positive", "alice", "clip1", 5, None)]
    for label, subject, sample, n, apex in samples:
        folder = root / label / subject / sample
        write_frames(folder, [f"frame{i}.png" for i in range(1, n + 1)])
        if apex is not None:
            (folder / "apex.txt").write_text(f"{apex}\n")
    return root


def write_megc_list(
    path: Path, entries: Sequence[tuple[str, str, str, int]], header: bool = False, style: str = "plain"
) -> Path:
    """A `combined_3class_gt.csv`: rows dataset,subject,filename,label (0 neg / 1 pos / 2 sur).

    `style`: "plain" (LF), "crlf" (the 442-row `combined_3class_gt.csv`) or "blank" (the official
    `combined_3class_gt-2.csv`: LF and a `,,,` line after every row but the last).
    """
    lines = ["dataset,subject,filename,label"] if header else []
    lines += [",".join(str(v) for v in e) for e in entries]
    path.parent.mkdir(parents=True, exist_ok=True)
    if style == "crlf":
        path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    elif style == "blank":
        path.write_bytes(("\n,,,\n".join(lines) + "\n").encode())
    else:
        path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------ the MEGC2019 composite at full size

# Published facts (docs/datasets.md, ../shared/DATASETS.md): what each dataset's label file holds and what the
# MEGC2019 list keeps. The trees below are built from them; names follow the documented spellings, not the real list.
CASME2_LISTED = {"disgust": 61, "repression": 27, "happiness": 32, "surprise": 25}  # 145 = 88 / 32 / 25
CASME2_UNLISTED = {"others": 99, "sadness": 7, "fear": 2}  # + the two disgust samples the list leaves out
CASME2_UNLISTED_DISGUST = [(4, "EP12_01f"), (5, "EP09_05f")]
CASME2_UNLISTED_SUBJECTS = (10, 18)  # 26 subjects in the sheet, 24 in the list
SAMM_LISTED = {"Anger": 57, "Contempt": 12, "Disgust": 9, "Fear": 8, "Sadness": 6, "Happiness": 26, "Surprise": 15}
SAMM_OTHER = 26
SAMM_SUBJECTS = [n for n in range(6, 38) if n not in (8, 25, 27)]  # 29 subjects with micro-movements
SAMM_ONLY_OTHER = 29  # the subject whose rows are all Other: 28 listed subjects
SAMM_APEX_LESS = {"028_4_1": 0, "032_3_1": 0, "032_3_2": 0}  # apex -1 rows, all listed negative; 032_3_1 only in 442
SMIC_SUBJECTS = [n for n in range(1, 21) if n not in (7, 10, 16, 17)]  # 16 subjects
SMIC_CLASSES = {"negative": 70, "positive": 51, "surprise": 43}
LIST_LABEL = {"negative": 0, "positive": 1, "surprise": 2}
CASME2_CLASS = {"disgust": "negative", "repression": "negative", "happiness": "positive", "surprise": "surprise"}
SAMM_CLASS = {**dict.fromkeys(["Anger", "Contempt", "Disgust", "Fear", "Sadness"], "negative"),
              "Happiness": "positive", "Surprise": "surprise"}  # fmt: skip


def _spread(counts: dict[str, int]) -> list[str]:
    """The labels of `counts` interleaved (a, b, c, a, b, ...), so round-robin subjects get a mix."""
    pools = {k: v for k, v in counts.items()}
    out: list[str] = []
    while any(pools.values()):
        for k in pools:
            if pools[k]:
                out.append(k)
                pools[k] -= 1
    return out


def make_megc_trees(root: Path) -> dict[str, Any]:
    """CASME II (255 sheet rows, 26 subjects), SAMM (159 rows after a 13-row preamble, 29 subjects) and SMIC-HS (164
    clips, 16 subjects) in their shipped layouts with 2 tiny frames per sample, and the two MEGC2019 list variants:
    `combined_3class_gt.csv` (442 rows, CRLF) and `combined_3class_gt-2.csv` (441 rows, LF + `,,,` lines).

    Quirks on board: CASME II apex `/` rows, SAMM apex -1 rows (028_4_1, 032_3_1, 032_3_2), SAMM integer subjects in
    the sheet and the list, SMIC folders `s1/micro/negative/s1_ne_01` listed as `s01,s01_ne_01`. Returns the roots,
    the list paths and the listed entries.
    """
    listed: list[tuple[str, str, str, int]] = []
    # CASME II
    casme_rows: list[dict[str, Any]] = []
    counter: dict[int, int] = {}

    def casme_name(subject: int) -> str:
        k = counter[subject] = counter.get(subject, 19) + 1
        return f"EP{k:02d}_{k % 9 + 1:02d}" + ("f" if k % 3 == 0 else "")

    listed_subjects = [n for n in range(1, 27) if n not in CASME2_UNLISTED_SUBJECTS]
    for i, emotion in enumerate(_spread(CASME2_LISTED)):
        subject = listed_subjects[i % len(listed_subjects)]
        name, onset = casme_name(subject), 46 + i
        apex: int | str = "/" if i % 20 == 7 else onset + 1
        casme_rows.append(casme2_sample(subject, name, onset, apex, onset + 1, emotion, frames=[onset, onset + 1]))
        listed.append(("casme2", f"sub{subject:02d}", name, LIST_LABEL[CASME2_CLASS[emotion]]))
    for i, emotion in enumerate(_spread(CASME2_UNLISTED)):
        subject, onset = i % 26 + 1, 100 + i
        casme_rows.append(casme2_sample(subject, casme_name(subject), onset, onset + 1, onset + 1, emotion,
                                        frames=[onset, onset + 1]))  # fmt: skip
    for subject, name in CASME2_UNLISTED_DISGUST:
        casme_rows.append(casme2_sample(subject, name, 10, 11, 11, "disgust", frames=[10, 11]))
    casme = make_casme2(root / "CASME2", casme_rows)
    # SMIC-HS: folders s1/…/s1_ne_01, the list writes s01,s01_ne_01
    clips, seen = [], {}
    for i, cls in enumerate(_spread(SMIC_CLASSES)):
        n = SMIC_SUBJECTS[i % len(SMIC_SUBJECTS)]
        seen[(n, cls)] = seen.get((n, cls), 0) + 1
        short = {"negative": "ne", "positive": "po", "surprise": "sur"}[cls]
        clips.append((f"s{n}", cls, f"s{n}_{short}_{seen[(n, cls)]:02d}", 2))
        listed.append(("smic", f"s{n:02d}", f"s{n:02d}_{short}_{seen[(n, cls)]:02d}", LIST_LABEL[cls]))
    smic_root = make_smic(root / "SMIC", clips)
    # SAMM: integer subjects, header on row 14, apex -1 rows
    samm_rows: list[dict[str, Any]] = []
    with_listed = [n for n in SAMM_SUBJECTS if n != SAMM_ONLY_OTHER]
    emotions = _spread(SAMM_LISTED)
    named = [(28, "028_4_1"), (32, "032_3_1"), (32, "032_3_2")]  # the apex -1 rows, negative (Anger)
    for i, emotion in enumerate(emotions):
        if i < len(named):
            subject, name = named[i]
            emotion, apex = "Anger", -1
        else:
            subject = with_listed[i % len(with_listed)]
            name, apex = f"{subject:03d}_{i % 7 + 1}_{i + 10}", 5001
        samm_rows.append(samm_sample(subject, name, 5000, apex, 5001, emotion, frames=[5000, 5001]))
        listed.append(("samm", str(subject), name, LIST_LABEL[SAMM_CLASS[emotion]]))
    others = [SAMM_ONLY_OTHER] * 3 + SAMM_SUBJECTS
    for i in range(SAMM_OTHER):
        subject = others[i % len(others)]
        samm_rows.append(samm_sample(subject, f"{subject:03d}_9_{i + 1}", 10, 11, 11, "Other", frames=[10, 11]))
    samm_root = make_samm(root / "SAMM", samm_rows)
    gt442 = write_megc_list(root / "combined_3class_gt.csv", listed, style="crlf")
    gt441 = write_megc_list(root / "combined_3class_gt-2.csv", [e for e in listed if e[2] != "032_3_1"], style="blank")
    return {
        "roots": {"casme2": casme, "samm": samm_root, "smic": smic_root},
        "list442": gt442,
        "list441": gt441,
        "listed": listed,
    }
