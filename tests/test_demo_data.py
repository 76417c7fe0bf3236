"""The generated demo corpus: real layouts and quirks, counts that match the files, determinism, visible expressions."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mer.config import CLASSES
from mer.demo import MARKER, DemoSpec, DemoSummary, generate_corpus, load_summary
from mer.errors import ConfigError, DataError

CKPLUS_CLASS = {1: "negative", 2: "negative", 3: "negative", 4: "negative", 5: "positive", 6: "negative", 7: "surprise"}
JAFFE_CLASS = {
    "AN": "negative",
    "DI": "negative",
    "FE": "negative",
    "SA": "negative",
    "HA": "positive",
    "SU": "surprise",
}
CASME2_CLASS = {"disgust": "negative", "repression": "negative", "happiness": "positive", "surprise": "surprise"}
SAMM_CLASS = {"anger": "negative", "contempt": "negative", "disgust": "negative", "fear": "negative",
              "sadness": "negative", "happiness": "positive", "surprise": "surprise"}  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    """The quick corpus, generated once for the module."""
    return generate_corpus(tmp_path_factory.mktemp("demo") / "data", seed=0, quick=True)


def number(path: Path) -> int:
    """The last digit run of a file stem (img46 → 46)."""
    return int(re.findall(r"\d+", path.stem)[-1])


def frames_of(folder: Path) -> list[Path]:
    """Image files of a clip in numeric order."""
    return sorted((p for p in folder.iterdir() if p.suffix in {".jpg", ".png"}), key=number)


def gray(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert img is not None, path
    return img.astype(np.float32)


def smooth(path: Path) -> np.ndarray:
    """A frame, gray and lightly blurred so that pixel noise averages out and warps remain."""
    return cv2.GaussianBlur(gray(path), (0, 0), 1.5)


def read_casme2(root: Path) -> pd.DataFrame:
    return pd.read_excel(root / "CASME2-coding-20140508.xlsx", engine="openpyxl")


def read_samm(root: Path) -> pd.DataFrame:
    return pd.read_excel(root / "SAMM_Micro_FACS_Codes_v2.xlsx", header=13, engine="openpyxl", dtype={"Subject": str})


def test_roots_and_real_file_names(corpus: DemoSummary) -> None:
    roots = corpus.roots
    assert set(roots) == {"casme2", "samm", "smic", "ckplus", "jaffe"}
    assert [roots[k].name for k in ("casme2", "samm", "smic", "ckplus", "jaffe")] == [
        "CASME2",
        "SAMM",
        "SMIC",
        "CK+",
        "JAFFE",
    ]
    assert (roots["casme2"] / "CASME2-coding-20140508.xlsx").is_file()
    assert (roots["samm"] / "SAMM_Micro_FACS_Codes_v2.xlsx").is_file()
    casme_frames = list(
        (roots["casme2"] / "CASME2_RAW_selected").glob("sub[0-9][0-9]/EP[0-9][0-9]_[0-9][0-9]*/img*.jpg")
    )
    assert casme_frames and all(re.fullmatch(r"img\d+\.jpg", p.name) for p in casme_frames)
    first_numbers = {number(frames_of(d)[0]) for d in (roots["casme2"] / "CASME2_RAW_selected").glob("*/*")}
    assert 1 not in first_numbers  # CASME II frame numbers continue the original video's numbering
    samm_frames = list((roots["samm"] / "SAMM").glob("[0-9][0-9][0-9]/*/*.jpg"))
    assert samm_frames and all(
        re.fullmatch(rf"{p.parent.parent.name}_\d{{5}}\.jpg", p.name)
        and p.parent.name.startswith(p.parent.parent.name + "_")
        for p in samm_frames
    )
    for label, short in (("negative", "ne"), ("positive", "po"), ("surprise", "sur")):
        clips = list((roots["smic"] / "HS").glob(f"s*/micro/{label}/*"))
        assert clips and all(re.fullmatch(rf"s\d+_{short}_\d\d", c.name) for c in clips)
        assert all(re.fullmatch(r"image\d{6}\.jpg", f.name) for c in clips for f in c.iterdir())
    pngs = list((roots["ckplus"] / "cohn-kanade-images").glob("S[0-9][0-9][0-9]/[0-9][0-9][0-9]/*.png"))
    assert pngs and all(re.fullmatch(r"S\d{3}_\d{3}_\d{8}\.png", p.name) for p in pngs)
    emotions = list((roots["ckplus"] / "Emotion").glob("S*/*/*_emotion.txt"))
    assert emotions
    for path in emotions:
        assert re.fullmatch(r"   [1-7]\.0000000e\+00\n", path.read_text())
        seq = roots["ckplus"] / "cohn-kanade-images" / path.parent.parent.name / path.parent.name
        assert path.name == frames_of(seq)[-1].stem + "_emotion.txt"  # the label sits on the last (peak) frame
    tiffs = sorted(p.name for p in roots["jaffe"].iterdir())
    assert tiffs and all(re.fullmatch(r"[A-Z]{2}\.(AN|DI|FE|HA|NE|SA|SU)\d\.\d+\.tiff", n) for n in tiffs)
    assert any(".NE" in n for n in tiffs)
    assert corpus.preview.is_file() and corpus.preview == corpus.root / "demo_preview.png"
    assert cv2.imread(str(corpus.preview)) is not None


def test_coding_sheets_readable_with_their_quirks(corpus: DemoSummary) -> None:
    casme = read_casme2(corpus.roots["casme2"])
    assert list(casme.columns[:5]) == ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame"]
    assert "Estimated Emotion" in casme.columns
    assert pd.api.types.is_integer_dtype(casme["Subject"])
    assert (casme["ApexFrame"].astype(str) == "/").sum() == 1
    assert (casme["Estimated Emotion"] == "fear").sum() == 1
    samm = read_samm(corpus.roots["samm"])
    for col in ("Subject", "Filename", "Onset Frame", "Apex Frame", "Offset Frame", "Estimated Emotion"):
        assert col in samm.columns
    assert (pd.to_numeric(samm["Apex Frame"]) == -1).sum() == 1
    # every coding row points at a frame folder whose files carry the coded frame numbers
    for _, r in casme.iterrows():
        folder = corpus.roots["casme2"] / "CASME2_RAW_selected" / f"sub{int(r['Subject']):02d}" / str(r["Filename"])
        nums = [number(p) for p in frames_of(folder)]
        assert nums[0] == r["OnsetFrame"] and nums[-1] == r["OffsetFrame"]
        assert r["ApexFrame"] == "/" or int(r["ApexFrame"]) in nums
    for _, r in samm.iterrows():
        nums = [number(p) for p in frames_of(corpus.roots["samm"] / "SAMM" / r["Subject"] / r["Filename"])]
        assert nums[0] < r["Onset Frame"] < r["Offset Frame"] < nums[-1]  # SAMM clips run past onset and offset
        assert int(r["Apex Frame"]) == -1 or int(r["Apex Frame"]) in nums


def disk_counts(roots: dict[str, Path]) -> pd.DataFrame:
    """The samples a protocol-following reader keeps, counted from the files alone (not from the summary); rows
    without an apex label (CASME II "/", SAMM -1) are kept: `mer prepare` spots their apex."""
    rows = []
    casme = read_casme2(roots["casme2"])
    for _, r in casme.iterrows():
        if r["Estimated Emotion"] in CASME2_CLASS:
            rows.append(("casme2", CASME2_CLASS[r["Estimated Emotion"]], 1))
    for _, r in read_samm(roots["samm"]).iterrows():
        if r["Estimated Emotion"].lower() in SAMM_CLASS:
            rows.append(("samm", SAMM_CLASS[r["Estimated Emotion"].lower()], 1))
    for clip in (roots["smic"] / "HS").glob("s*/micro/*/*"):
        rows.append(("smic", clip.parent.name, 1))
    for seq in (roots["ckplus"] / "cohn-kanade-images").glob("S*/*"):
        labels = list((roots["ckplus"] / "Emotion" / seq.parent.name / seq.name).glob("*_emotion.txt"))
        if labels:
            code = int(float(labels[0].read_text()))
            rows.append(("ckplus", CKPLUS_CLASS[code], min(3, len(frames_of(seq)))))
    for path in roots["jaffe"].glob("*.tiff"):
        code = path.name.split(".")[1][:2]
        if code != "NE":
            rows.append(("jaffe", JAFFE_CLASS[code], 1))
    df = pd.DataFrame(rows, columns=["dataset", "label", "n"])
    return df.pivot_table(index="dataset", columns="label", values="n", aggfunc="sum", fill_value=0)


def test_counts_match_files_on_disk(corpus: DemoSummary) -> None:
    counts = corpus.counts
    assert list(counts.index) == ["casme2", "samm", "smic", "ckplus", "jaffe"]
    assert list(counts.columns) == list(CLASSES)
    on_disk = disk_counts(corpus.roots).reindex(index=counts.index, columns=counts.columns, fill_value=0)
    assert (on_disk.values == counts.values).all(), f"\n{on_disk}\n!=\n{counts}"
    # quick size: 2 subjects × 2 clips per class per micro set, plus the apex-less rows; macro sets balanced
    apex_less = corpus.samples[corpus.samples["apex_less"]]
    extra = pd.crosstab(apex_less["dataset"], apex_less["label"]).reindex(
        index=counts.index, columns=counts.columns, fill_value=0
    )
    assert ((counts - extra).loc[["casme2", "samm", "smic"]].values == 4).all()
    assert (counts.loc[["ckplus", "jaffe"]].nunique(axis=1) == 1).all()
    assert 40 <= int(counts.loc[["ckplus", "jaffe"]].values.sum()) <= 80
    for dataset, subjects in corpus.subjects.items():
        assert subjects and all(s.startswith(dataset + "/") for s in subjects)
    assert len(corpus.apex) == int(counts.loc[["casme2", "samm", "smic"]].values.sum())


def test_deliberate_skips_are_listed(corpus: DemoSummary) -> None:
    skipped = corpus.samples[~corpus.samples["keep"]]
    assert len(skipped) == corpus.skipped_expected == sum(corpus.skipped.values())
    reasons = skipped.groupby("dataset")["reason"].apply(list).to_dict()
    assert any("fear" in r for r in reasons["casme2"])
    assert corpus.samples.loc[corpus.samples["apex_less"], "keep"].all()  # kept: their apex is spotted
    assert all("emotion file" in r for r in reasons["ckplus"])
    assert all("neutral" in r for r in reasons["jaffe"])
    for path in skipped.loc[skipped["dataset"] == "ckplus", "path"]:  # an unlabelled CK+ sequence: empty Emotion folder
        seq = corpus.root / path
        assert frames_of(seq) and not list((corpus.roots["ckplus"] / "Emotion" / seq.parent.name / seq.name).iterdir())


def test_micro_apex_differs_from_neutral_more_than_noise(corpus: DemoSummary) -> None:
    table = corpus.samples.set_index(["dataset", "sample_id"])
    # pixel noise alone: SAMM's two frames after the offset are both neutral (no expression, no distractor)
    samm = [frames_of(corpus.root / p) for p in table.query("dataset == 'samm' and keep")["path"]]
    floor = float(np.mean([np.abs(smooth(f[-1]) - smooth(f[-2])).mean() for f in samm]))
    micro_peaks, macro_peaks, micro_px, macro_px = [], [], [], []
    for (dataset, sample_id), apex in corpus.apex.items():
        info = table.loc[(dataset, sample_id)]
        frames = frames_of(corpus.root / info["path"])
        assert len(frames) == info["n_frames"] and info["onset"] < apex < info["offset"]
        if dataset == "smic":  # no apex label: the reader takes the middle frame; the true apex lies near it
            assert abs(apex - (len(frames) - 1) // 2) <= max(1, len(frames) // 6)
        # the last frame is neutral (the offset, or SAMM's padding after it); class-free movements may still be
        # fading at the onset, so neutral is the last frame, not the first
        neutral = smooth(frames[-1])
        at_apex = np.abs(smooth(frames[apex]) - neutral).mean()
        assert at_apex > floor * 1.2, (dataset, sample_id, at_apex, floor)
        micro_peaks.append(at_apex - floor)
        micro_px.append(peak_motion(frames[-1], frames[apex]))
    assert len({a for (d, _), a in corpus.apex.items() if d != "smic"}) > 1  # the apex is not always the same frame
    for path in corpus.samples.query("dataset == 'ckplus' and keep")["path"]:
        frames = frames_of(corpus.root / path)
        macro_peaks.append(np.abs(smooth(frames[-1]) - smooth(frames[0])).mean() - floor)
        macro_px.append(peak_motion(frames[0], frames[-1]))
    assert np.mean(macro_peaks) > np.mean(micro_peaks) > 0
    # micro warps move a few pixels, macro ones about twice as far (optical flow, in frame pixels); the class-free
    # movements that rise with some micro expressions (up to 2.25 × their amplitude) raise the micro figure
    unit = corpus.spec.micro_size / corpus.spec.face_span
    assert 0.05 * unit < np.median(micro_px) < 0.3 * unit, (np.median(micro_px), unit)
    assert np.median(macro_px) > 1.3 * np.median(micro_px), (np.median(macro_px), np.median(micro_px))


def peak_motion(first: Path, second: Path) -> float:
    """The 99th percentile of the optical-flow magnitude between two frames, in pixels: how far the warp moved."""
    flow = cv2.calcOpticalFlowFarneback(gray(first).astype(np.uint8), gray(second).astype(np.uint8), None,
                                        0.5, 3, 15, 3, 5, 1.2, 0)  # fmt: skip
    return float(np.percentile(np.linalg.norm(flow, axis=2), 99))


def test_same_seed_same_bytes_other_seed_differs(corpus: DemoSummary, tmp_path: Path) -> None:
    # "same" first looks like a run that was interrupted: its marker says incomplete, a stray file is left
    stray = tmp_path / "same" / "CASME2" / "CASME2_RAW_selected" / "sub99" / "EP01_01" / "img1.jpg"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"half-written")
    (tmp_path / "same" / MARKER).write_text('{"digest": "0", "complete": false}')
    again = generate_corpus(tmp_path / "same", seed=0, quick=True)
    other = generate_corpus(tmp_path / "other", seed=1, quick=True)
    assert not again.reused and not stray.exists()
    picks = [
        Path("CASME2/CASME2-coding-20140508.xlsx"),
        Path("SAMM/SAMM_Micro_FACS_Codes_v2.xlsx"),
        *[Path(p) for p in corpus.samples.groupby("dataset")["path"].first()],
    ]
    files = []
    for rel in picks:
        path = corpus.root / rel
        files += [path] if path.is_file() else frames_of(path)[:2]
    files += sorted((corpus.roots["ckplus"] / "Emotion").glob("*/*/*.txt"))[:1]
    for path in files:
        rel = path.relative_to(corpus.root)
        assert (again.root / rel).read_bytes() == path.read_bytes(), rel
    assert (other.root / picks[0]).read_bytes() != (corpus.root / picks[0]).read_bytes()
    for dataset in ("jaffe", "ckplus"):  # file names are random too, so compare pixels of the first image
        ours, theirs = (sorted(c.roots[dataset].rglob("*.*[gf]"))[0] for c in (corpus, other))
        assert gray(ours).shape == gray(theirs).shape and np.abs(gray(ours) - gray(theirs)).mean() > 5
    assert other.counts.equals(corpus.counts)  # same sizes, other content


def test_rerun_reuses_and_refuses_foreign_folders(corpus: DemoSummary, tmp_path: Path) -> None:
    again = generate_corpus(corpus.root, seed=0, quick=True)
    assert again.reused and again.counts.equals(corpus.counts) and again.apex == corpus.apex
    assert load_summary(corpus.root).subjects == corpus.subjects
    assert (corpus.root / MARKER).is_file()
    text = again.describe()
    assert "casme2" in text and "jaffe" in text and str(corpus.preview) in text
    foreign = tmp_path / "real"
    (foreign / "CASME2").mkdir(parents=True)
    with pytest.raises(DataError, match="not a mer demo corpus"):
        generate_corpus(foreign, seed=0, quick=True)
    with pytest.raises(DataError, match="no complete demo corpus"):
        load_summary(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="micro_seconds"):
        generate_corpus(tmp_path / "bad", spec=DemoSpec(micro_seconds=(0.02, 0.03)))  # < 5 frames at 100 fps


def test_readers_build_the_counted_manifest(corpus: DemoSummary) -> None:
    from mer.data.datasets import build_manifest  # a broken import fails here, never skips

    manifest, report = build_manifest({name: str(root) for name, root in corpus.roots.items()})
    got = pd.crosstab(manifest["dataset"], manifest["label"]).reindex(
        index=corpus.counts.index, columns=corpus.counts.columns, fill_value=0
    )
    assert (got.values == corpus.counts.values).all(), f"\n{got}\n!=\n{corpus.counts}"
    dropped = report[~report["reason"].astype(str).str.startswith("apex (kept)")]
    assert len(dropped) == corpus.skipped_expected, report.to_string()
    micro = manifest[(manifest["kind"] == "micro") & (manifest["apex_source"] != "spotted")]
    apex = {(d, s): int(a) for d, s, a in zip(micro["dataset"], micro["sample_id"], micro["apex"], strict=True)}
    coded = {
        k: v
        for k, v in corpus.apex.items()
        if k[0] != "smic" and k in set(zip(micro["dataset"], micro["sample_id"], strict=True))
    }
    assert {k: v for k, v in apex.items() if k[0] != "smic"} == coded
    n_frames = corpus.samples.set_index(["dataset", "sample_id"])["n_frames"]
    assert all(a == (n_frames[k] - 1) // 2 for k, a in apex.items() if k[0] == "smic")  # SMIC: the middle frame
    assert {d: sorted(manifest.loc[manifest["dataset"] == d, "subject"].unique()) for d in corpus.subjects} == (
        corpus.subjects
    )


def test_mtcnn_finds_one_face_per_frame(corpus: DemoSummary) -> None:
    from mer.face.detect import FaceDetector

    images = []
    for _, row in corpus.samples.groupby("dataset").head(3).iterrows():
        path = corpus.root / row["path"]
        frame = path if path.is_file() else frames_of(path)[row["apex"]]
        images.append(cv2.cvtColor(cv2.imread(str(frame)), cv2.COLOR_BGR2RGB))
    faces = FaceDetector(device="cpu").detect(images)
    assert [len(f) for f in faces] == [1] * len(images)
    assert min(f[0].prob for f in faces) > 0.9


def test_identities_are_distinct_and_never_shared(corpus: DemoSummary) -> None:
    """Micro and macro sets hold different people (generator ids); the test video's person is in neither."""
    people = corpus.identities
    assert people["ident"].is_unique
    micro = set(people.loc[people["role"] == "micro", "ident"])
    macro = set(people.loc[people["role"] == "macro", "ident"])
    held = set(people.loc[people["role"] == "held_out", "ident"])
    assert micro and macro and len(held) == 1
    assert not micro & macro and not held & (micro | macro)
    # the samples themselves: each subject is one identity, and no identity renders samples of two kinds or subjects
    samples = corpus.samples
    per_subject = samples.groupby("subject")["identity"].nunique()
    assert (per_subject == 1).all()
    assert (samples.groupby("identity")["subject"].nunique() == 1).all()
    assert set(samples.loc[samples["kind"] == "micro", "identity"]) == micro
    assert set(samples.loc[samples["kind"] == "macro", "identity"]) == macro
    assert not held & set(samples["identity"])
    # person-like and distinct: no two identities share their geometry and morph parameters
    params = people.drop(columns=["ident", "dataset", "subject", "role"]).round(3)
    assert not params.duplicated().any()
    assert params["morph_upper"].std() > 0.1 and params["face_width"].std() > 0.02
    assert corpus.identity_sheet is not None and cv2.imread(str(corpus.identity_sheet)) is not None


def _check_identities_found(spec: DemoSpec, seed: int) -> int:
    """Every identity's neutral frame: MTCNN finds one face whose eyes are where the generator put them, and finds
    the face again in the aligned crop, with the eyes where the aligner places them. Returns how many were checked."""
    from mer.config import FaceConfig
    from mer.demo.corpus import held_out_identity, make_identities
    from mer.demo.pictures import neutral_frame
    from mer.face.align import align, aligned_landmarks
    from mer.face.detect import FaceDetector, pick_face

    people = [*make_identities(spec, seed).values(), held_out_identity(spec, seed, spec.micro_size)]
    frames = [neutral_frame(p, spec, seed) for p in people]
    detector = FaceDetector(device="cpu")
    cfg = FaceConfig(size=112, eye_mask="none")
    crops, expected = [], []
    for person, frame, found in zip(people, frames, detector.detect(frames), strict=True):
        face, _ = pick_face(found)
        assert face is not None and len(found) == 1 and face.prob > 0.9, (person.ident, len(found))
        eyes = np.sort(face.landmarks[:2], axis=0)
        truth = np.sort(person.landmarks[:2], axis=0)
        assert np.abs(eyes - truth).max() < 0.2 * person.unit, (person.ident, eyes, truth)
        crop = align(frame, face.landmarks, cfg)
        crops.append(np.repeat(crop.crop[..., None], 3, axis=2))
        expected.append(aligned_landmarks(face.landmarks, cfg, roll=crop.roll)[:2])
    for person, found, eyes in zip(people, detector.detect(crops), expected, strict=True):
        face, _ = pick_face(found)
        assert face is not None and face.prob > 0.9, person.ident
        assert np.abs(face.landmarks[:2] - eyes).max() < 6, (person.ident, face.landmarks[:2], eyes)
    return len(people)


def test_every_identity_neutral_crop_is_found_quick(corpus: DemoSummary) -> None:
    assert _check_identities_found(corpus.spec, corpus.seed) == len(corpus.identities)


@pytest.mark.slow
def test_every_identity_neutral_crop_is_found_default_corpus() -> None:
    """The same check on the default demo's 49 identities (24 micro, 24 macro, 1 held out)."""
    assert _check_identities_found(DemoSpec(), 0) == 49


def test_clips_have_frame_rates_and_apex_less_rows(corpus: DemoSummary) -> None:
    from mer.demo.spec import FPS, SAMM_PAD

    spec = corpus.spec
    samples = corpus.samples
    micro = samples[samples["kind"] == "micro"]
    for dataset, clips in micro.groupby("dataset"):
        assert (clips["fps"] == FPS[dataset]).all()
        lo, hi = (spec.frames(dataset, s) for s in spec.micro_seconds)
        assert clips["n_frames"].between(lo, hi).all(), (dataset, clips["n_frames"].tolist())
        for _, clip in clips.iterrows():
            frames = frames_of(corpus.root / clip["path"])
            assert len(frames) == clip["n_frames"]
            numbers = [number(f) for f in frames]
            assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # consecutive camera frames
            pad = SAMM_PAD if dataset == "samm" else 0
            assert (clip["onset"], clip["offset"]) == (pad, clip["n_frames"] - 1 - pad)
            assert clip["onset"] < clip["apex"] < clip["offset"]
    assert set(FPS.values()) == {200.0, 100.0} and FPS["smic"] == 100.0
    # apex-less rows as the real coding files hold them, marked in the summary, each with a real movement
    casme = read_casme2(corpus.roots["casme2"])
    samm = read_samm(corpus.roots["samm"])
    marked = samples[samples["apex_less"]]
    assert (casme["ApexFrame"].astype(str) == "/").sum() == spec.apex_less == (marked["dataset"] == "casme2").sum()
    assert (pd.to_numeric(samm["Apex Frame"]) == -1).sum() == spec.apex_less == (marked["dataset"] == "samm").sum()
    assert marked["keep"].all() and marked["subject"].is_unique  # kept: mer prepare spots their apex
    for _, clip in marked.iterrows():
        frames = frames_of(corpus.root / clip["path"])
        assert np.abs(smooth(frames[clip["apex"]]) - smooth(frames[clip["onset"]])).mean() > 0.3


def test_micro_nuisance_moves_the_onset_and_drops_action_units() -> None:
    """Micro clips are not clean copies of their class: class-free movements still fading at the onset move the
    onset → apex motion, and an action-unit group may be missing; without nuisance the onset is the neutral face."""
    from mer.demo.faces import AU_GROUPS, EXPRESSIONS, _class_bumps, make_identity, micro_levels, render

    spec = DemoSpec.quick()
    person = make_identity(0, spec.micro_size, np.random.default_rng(0), spec)
    levels = micro_levels(9, 0, 4, 8)
    fading = replace(spec, distractors=4.0, distractor_rising=0.0, noise=0.0)

    def onset_vs_last(nuisance: bool) -> float:
        frames = render(person, CLASSES[1], levels, spec.micro_amplitude, fading, np.random.default_rng(3), True,
                        nuisance=nuisance)  # fmt: skip
        return float(np.abs(frames[0].astype(np.float32) - frames[-1].astype(np.float32)).mean())

    assert onset_vs_last(False) == 0.0  # noise off: onset and offset are the same neutral face
    assert onset_vs_last(True) > 0.2  # fading movements: the onset is not the neutral face
    rng = np.random.default_rng(0)
    always = replace(spec, au_dropout=1.0)
    for label in CLASSES:
        for _ in range(5):
            kept = _class_bumps(label, always, rng, nuisance=True)
            groups = [[EXPRESSIONS[label][i] for i in g] for g in AU_GROUPS[label]]
            assert kept in groups  # all groups dropped → exactly one is put back
        assert _class_bumps(label, always, rng, nuisance=False) == EXPRESSIONS[label]
