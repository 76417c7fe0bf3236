"""What a demo corpus is made of: its datasets and folders, and `DemoSpec`, the sizes and calibration of one corpus.

The lowest module of `mer.demo`: the face renderer, the layout planners and the corpus writer all read it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from mer.config import CLASSES
from mer.errors import ConfigError

# 2: person-like identities, frame rates, apex-less rows; 3: nuisance in micro clips; 4: long videos (spotting)
GENERATOR_VERSION = 4
DATASETS = ("casme2", "samm", "smic", "ckplus", "jaffe")
MICRO = ("casme2", "samm", "smic")
MACRO = ("ckplus", "jaffe")
FOLDERS = {"casme2": "CASME2", "samm": "SAMM", "smic": "SMIC", "ckplus": "CK+", "jaffe": "JAFFE"}
NEG, POS, SUR = CLASSES
JAFFE_CODES = ("KA", "KL", "KM", "KR", "MK", "NA", "NM", "TM", "UY", "YM")  # the real JAFFE subjects' codes


FPS = {"casme2": 200.0, "samm": 200.0, "smic": 100.0}  # the real datasets' high-speed cameras (SMIC-HS: 100 fps)
SAMM_PAD = 2  # neutral frames a SAMM folder holds before the onset and after the offset


@dataclass(frozen=True)
class DemoSpec:
    """Sizes and calibration of the demo corpus; the defaults run `mer demo` (3 seeds of LOSO) in minutes on 2 cores.

    Micro clips last `micro_seconds` from onset to offset at each dataset's frame rate (`FPS`): real ones last
    0.2–0.5 s, these are shortened so the corpus stays small. Amplitudes are peak displacements in face units
    (eye distance).
    """

    micro_subjects: int = 8  # subjects per micro dataset (CASME II, SAMM, SMIC): 24 LOSO folds
    micro_per_class: int = 2  # clips per class per micro subject
    micro_seconds: tuple[float, float] = (0.05, 0.08)  # min, max onset → offset duration of a micro clip
    apex_less: int = 2  # extra CASME II rows with apex "/" and SAMM rows with apex -1 (today's readers drop them)
    micro_size: int = 128  # micro frame side in pixels
    ckplus_subjects: int = 16
    ckplus_per_class: int = 2  # labelled sequences per class per CK+ subject
    ckplus_unlabelled: int = 1  # sequences per CK+ subject without an emotion file (the reader skips them)
    ckplus_frames: tuple[int, int] = (6, 9)  # min, max frames per CK+ sequence (neutral → apex)
    jaffe_subjects: int = 8
    jaffe_per_class: int = 3  # labelled images per class per JAFFE subject
    jaffe_neutral: int = 1  # NE images per JAFFE subject (dropped by the protocol)
    macro_size: int = 128  # CK+ and JAFFE image side in pixels
    face_span: float = 3.8  # image side in face units (≈ eye distance): room for MTCNN's box plus the crop margin
    macro_amplitude: float = 0.3  # peak expression displacement, in face units (≈ 5.6 px at 64² crops)
    micro_amplitude: float = 0.15  # ≈ 2.8 px at 64² crops
    amplitude_jitter: float = 0.25  # ± relative random change of the micro amplitude per sample
    macro_jitter: float = 0.35  # the same for macro samples: posed expressions range from mild to strong
    sigma: float = 0.25  # width of each displacement bump, in face units (amplitude < 1.6 sigma: the warp never folds)
    identity_geometry: float = 1.0  # scale of the identities' geometry spread (faces.GEOMETRY holds the stds)
    au_dropout: float = 0.0  # chance that a micro clip leaves out one of its class's action-unit groups (off: at
    # 0.3 the apex-frame recipe fell to 0.58-0.68 UF1 in calibration, see docs/demo.md)
    distractors: float = 3.0  # class-free movements per micro clip (Poisson mean): blinks, lids, nose, chin, one brow
    distractor_strength: float = 1.5  # their peak displacement relative to the clip's amplitude (× 0.5 … 1.5)
    distractor_rising: float = 0.15  # share of them that rise with the expression; the others fade out by the apex
    noise: float = 2.0  # per-frame Gaussian pixel noise (0-255 scale)
    jpeg_quality: int = 92
    # long videos for spotting (`mer.demo.longvideos`), in the CAS(ME)^2 (30 fps) and SAMM-LV (200 fps) layouts
    long_subjects: int = 4  # subjects per long-video set (0: no long videos)
    long_videos: int = 1  # long videos per subject
    long_seconds: tuple[float, float] = (20.0, 5.0)  # length of a CAS(ME)^2 and of a SAMM-LV video (600, 1000 frames)
    long_micro: int = 3  # micro-expressions per long video
    long_macro: int = 2  # macro-expressions per long video
    long_micro_seconds: tuple[float, float] = (0.2, 0.45)  # min, max onset → offset of an embedded micro-expression
    long_macro_seconds: tuple[float, float] = (0.8, 2.0)  # the same for a macro-expression
    long_blinks: float = 0.3  # blinks per second (Poisson)
    long_talking: float = 1.0  # talking-like mouth spells per video (Poisson mean), 1–2.5 s each
    long_head_turns: float = 1.0  # quick head movements per video (Poisson mean), on top of a slow drift
    long_size: int = 96  # long-video frame side in pixels

    @classmethod
    def quick(cls) -> DemoSpec:
        """The tests' tiny corpus: 2 subjects per micro set, 2 clips per class, short clips, 54 macro images."""
        return cls(
            micro_subjects=2,
            micro_per_class=2,
            micro_seconds=(0.04, 0.05),
            apex_less=1,
            micro_size=96,
            ckplus_subjects=4,
            ckplus_per_class=1,
            ckplus_frames=(5, 7),
            jaffe_subjects=3,
            jaffe_per_class=2,
            jaffe_neutral=1,
            macro_size=96,
            long_subjects=2,
            long_videos=1,
            long_seconds=(6.0, 2.0),
            long_micro=1,
            long_macro=1,
        )

    def frames(self, dataset: str, seconds: float) -> int:
        """Frames of a micro clip of `dataset` whose movement lasts `seconds` (SAMM: plus its neutral padding)."""
        n = int(round(seconds * FPS[dataset])) + 1
        return n + 2 * SAMM_PAD if dataset == "samm" else n

    def validate(self) -> None:
        """ConfigError for sizes the generator or the readers cannot use."""
        problems = []
        lo_s, hi_s = self.micro_seconds
        if not 0 < lo_s <= hi_s or self.frames("smic", lo_s) < 5:
            problems.append(f"micro_seconds={self.micro_seconds} (need 0 < min ≤ max and ≥ 5 frames at 100 fps)")
        lo, hi = self.ckplus_frames
        if not 4 <= lo <= hi:
            problems.append(f"ckplus_frames={self.ckplus_frames} (need 4 ≤ min ≤ max)")
        for name in ("micro_subjects", "micro_per_class", "ckplus_subjects", "ckplus_per_class", "jaffe_subjects"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} (need ≥ 1)")
        if not 0 <= self.apex_less <= self.micro_subjects:
            problems.append(f"apex_less={self.apex_less} (need 0 ≤ apex_less ≤ micro_subjects)")
        if self.micro_subjects > 20 or self.jaffe_subjects > len(JAFFE_CODES) or self.ckplus_subjects > 90:
            problems.append("too many subjects (at most 20 per micro set, 90 CK+, 10 JAFFE)")
        if not 0 <= self.long_subjects <= 20 or self.long_videos < 1:
            problems.append(f"long_subjects={self.long_subjects}, long_videos={self.long_videos} (need 0–20 and ≥ 1)")
        if min(self.long_seconds) <= 0 or self.long_micro + self.long_macro < 1:
            problems.append(f"long_seconds={self.long_seconds}, long_micro + long_macro (need > 0 and ≥ 1)")
        if min(self.micro_size, self.macro_size, self.long_size) < 96:
            problems.append("micro_size/macro_size/long_size below 96 px (MTCNN needs the face larger than 40 px)")
        if problems:
            raise ConfigError("DemoSpec: " + "; ".join(problems))

    def digest(self, seed: int) -> str:
        """Hash of the generator version, the spec and the seed: names one exact corpus."""
        text = json.dumps({"version": GENERATOR_VERSION, "spec": asdict(self), "seed": seed}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
