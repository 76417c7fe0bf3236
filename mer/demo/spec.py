"""What a demo corpus is made of: its datasets and folders, and `DemoSpec`, the sizes and calibration of one corpus.

The lowest module of `mer.demo`: the face renderer, the layout planners and the corpus writer all read it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from mer.config import CLASSES
from mer.errors import ConfigError

GENERATOR_VERSION = 1
DATASETS = ("casme2", "samm", "smic", "ckplus", "jaffe")
MICRO = ("casme2", "samm", "smic")
MACRO = ("ckplus", "jaffe")
FOLDERS = {"casme2": "CASME2", "samm": "SAMM", "smic": "SMIC", "ckplus": "CK+", "jaffe": "JAFFE"}
NEG, POS, SUR = CLASSES
JAFFE_CODES = ("KA", "KL", "KM", "KR", "MK", "NA", "NM", "TM", "UY", "YM")  # the real JAFFE subjects' codes


@dataclass(frozen=True)
class DemoSpec:
    """Sizes and calibration of the demo corpus; the defaults train end to end in minutes on 2 CPU cores."""

    micro_subjects: int = 3  # subjects per micro dataset (CASME II, SAMM, SMIC)
    micro_per_class: int = 3  # clips per class per micro subject
    micro_frames: int = 9  # frames per micro clip (odd: SMIC's reader takes the middle frame as apex)
    micro_size: int = 200  # micro frame side in pixels
    ckplus_subjects: int = 8
    ckplus_per_class: int = 10  # labelled sequences per class per CK+ subject
    ckplus_unlabelled: int = 1  # sequences per CK+ subject without an emotion file (the reader skips them)
    ckplus_frames: tuple[int, int] = (6, 9)  # min, max frames per CK+ sequence (neutral → apex)
    jaffe_subjects: int = 4
    jaffe_per_class: int = 6  # labelled images per class per JAFFE subject
    jaffe_neutral: int = 2  # NE images per JAFFE subject (dropped by the protocol)
    macro_size: int = 200  # CK+ and JAFFE image side in pixels
    face_span: float = 3.8  # image side in face units (≈ eye distance): room for MTCNN's box plus the crop margin
    macro_amplitude: float = 0.12  # peak expression displacement, in face units
    micro_amplitude: float = 0.04
    amplitude_jitter: float = 0.3  # ± relative random change of the amplitude per sample
    sigma: float = 0.18  # width of each displacement bump, in face units
    identity_shape: float = 0.015  # std of the per-identity feature displacements, in face units (< micro_amplitude)
    noise: float = 2.0  # per-frame Gaussian pixel noise (0-255 scale)
    jpeg_quality: int = 92

    @classmethod
    def quick(cls) -> DemoSpec:
        """The tests' tiny corpus: 2 subjects per micro set, 2 clips per class, 7 frames, 54 macro images."""
        return cls(
            micro_subjects=2,
            micro_per_class=2,
            micro_frames=7,
            micro_size=160,
            ckplus_subjects=4,
            ckplus_per_class=1,
            ckplus_frames=(5, 7),
            jaffe_subjects=3,
            jaffe_per_class=2,
            jaffe_neutral=1,
            macro_size=160,
        )

    def validate(self) -> None:
        """ConfigError for sizes the generator or the readers cannot use."""
        problems = []
        if self.micro_frames < 5 or self.micro_frames % 2 == 0:
            problems.append(f"micro_frames={self.micro_frames} (need an odd number ≥ 5)")
        lo, hi = self.ckplus_frames
        if not 4 <= lo <= hi:
            problems.append(f"ckplus_frames={self.ckplus_frames} (need 4 ≤ min ≤ max)")
        for name in ("micro_subjects", "micro_per_class", "ckplus_subjects", "ckplus_per_class", "jaffe_subjects"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} (need ≥ 1)")
        if self.micro_subjects > 20 or self.jaffe_subjects > len(JAFFE_CODES) or self.ckplus_subjects > 90:
            problems.append("too many subjects (at most 20 per micro set, 90 CK+, 10 JAFFE)")
        if min(self.micro_size, self.macro_size) < 96:
            problems.append("micro_size/macro_size below 96 px (MTCNN needs the face larger than 40 px)")
        if problems:
            raise ConfigError("DemoSpec: " + "; ".join(problems))

    def digest(self, seed: int) -> str:
        """Hash of the generator version, the spec and the seed: names one exact corpus."""
        text = json.dumps({"version": GENERATOR_VERSION, "spec": asdict(self), "seed": seed}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
