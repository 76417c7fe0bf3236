"""`mer spot --data NAME=ROOT`: both spotters on long-video datasets, subject-wise, with seeds, a subject bootstrap
and the published MEGC2020 baselines beside the results (as context only).

Per dataset: read the videos (`mer.data.datasets.long_videos.read_long`), extract each video's region features once
(`mer.spotting.features.extract_features`, at the baseline's windows; cached in OUT/features, so a rerun reuses them),
then leave one subject out: the MEGC baseline with p chosen on the training subjects (`ThresholdSpotter`) and the
learned spotter trained on them (`LearnedSpotter`, once per seed). With a recognition method (`recognise`, a config
whose `model.backbone` is in `mer.spotting.recognise.RECOGNISERS`), spot-then-recognize too: per fold, a recogniser
trained on the training subjects' annotated intervals labels the held-out subject's spotted intervals, and STR is
scored (`mer.spotting.recognise.evaluate_str`). Writes OUT/spot_report.md, OUT/spot_scores.json,
OUT/reader_report.csv and OUT/predictions_<dataset>_<spotter>.csv, rebuilt from one file per finished fold: a killed
run, called again the same way, resumes (the folder's layout and its record: `mer.spotting.run_folder`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mer.config import Config, class_names, to_dict
from mer.data.datasets.long_videos import long_name, read_long
from mer.data.intervals import KINDS
from mer.data.longvideo import LongVideo
from mer.errors import ConfigError
from mer.files import atomic_write_json, atomic_write_text
from mer.spotting.baseline import BaselineConfig, required_windows, spot_baseline
from mer.spotting.evaluate import (
    PUBLISHED,
    LearnedConfig,
    LearnedSpotter,
    SpotVideo,
    ThresholdSpotter,
    evaluate_spotter,
)
from mer.spotting.features import FeatureConfig, VideoFeatures, extract_features
from mer.spotting.metrics import OVERALL
from mer.spotting.recognise import (
    NETWORK_INPUTS,
    RECOGNISERS,
    STR_KINDS,
    ApexCrops,
    ClipFeatures,
    LbpTopRecogniser,
    NetworkRecogniser,
    OnsetApexMotion,
    str_labels,
)
from mer.spotting.run_folder import READER_REPORT, REPORT_MD, SCORES_JSON, SpotRunFolder, code_record, predictions_file

P_GRID = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2).tolist())  # the baseline's p, chosen on training subjects
SPOTTERS = ("baseline", "learned")
SYNTHETIC_NOTE = "Synthetic data (the mer demo's long videos): comparable with nothing published."


def _stamp(video: LongVideo, ks: Sequence[int], cfg: FeatureConfig) -> str:
    """What a cached feature file was computed from: frames (paths, sizes), fps, windows and feature settings."""
    sizes = [os.path.getsize(f) for f in video.frames]
    text = json.dumps([video.frames, sizes, video.fps, list(ks), repr(cfg)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def video_features(video: LongVideo, cfg: FeatureConfig, cache: Path | None) -> VideoFeatures:
    """The region features of one long video at the baseline's windows, from the cache when it matches."""
    ks = required_windows(video.fps, video.n_frames)
    stamp = _stamp(video, ks, cfg)
    path = cache / f"{'__'.join(video.key).replace('/', '_')}.pkl" if cache is not None else None
    if path is not None and path.is_file():
        with path.open("rb") as fh:
            saved = pickle.load(fh)
        if saved.get("stamp") == stamp:
            return saved["features"]
    feats = extract_features(video.frames, ks, cfg, fps=video.fps)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            pickle.dump({"stamp": stamp, "features": feats}, fh)
    return feats


def spot_videos(videos: Sequence[LongVideo], cfg: FeatureConfig, cache: Path | None, progress: bool = True
                ) -> list[SpotVideo]:  # fmt: skip
    """SpotVideos: per-frame features = every window's region features side by side; `extra` = the VideoFeatures."""
    iterator: Sequence[LongVideo] = videos
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(videos, desc="spot features", unit="video", leave=False)
    out = []
    for v in iterator:
        feats = video_features(v, cfg, cache)
        x = np.concatenate([feats.values[k].reshape(feats.n_frames, -1) for k in sorted(feats.values)], axis=1)
        out.append(SpotVideo(v.key, v.dataset, v.subject, v.fps, x, list(v.intervals), feats))
    return out


def baseline_spot(video: SpotVideo, p: float) -> list:
    """The MEGC baseline's intervals of one video at threshold setting p."""
    return spot_baseline(video.extra, BaselineConfig(p=p)).intervals


PREDICTION_COLUMNS = ["dataset", "subject", "video", "kind", "onset", "apex", "offset", "score", "label"]


def _predictions_frame(predictions: Mapping[Any, list]) -> pd.DataFrame:
    rows = [{"dataset": k[0], "subject": k[1], "video": k[2], "kind": i.kind, "onset": i.onset, "apex": i.apex,
             "offset": i.offset, "score": i.score, "label": i.label} for k, ivs in predictions.items()
            for i in ivs]  # fmt: skip
    return pd.DataFrame(rows, columns=PREDICTION_COLUMNS)


def check_recogniser(cfg: Config, pretrained: str | Path | None = None) -> None:
    """ConfigError unless `cfg` names a method STR can train per fold here: a feature method (model.backbone in
    `RECOGNISERS`) or a network on the apex crop or the onset→apex motion (data.input in `NETWORK_INPUTS`; TV-L1
    flow only where OpenCV's contrib module is installed); a `pretrained` checkpoint only with a network, and one that
    fits it (`mer.train.check_pretrained`)."""
    from mer.config import MOTION_INPUTS, tvl1_available

    network = cfg.model.backbone not in RECOGNISERS
    if network and cfg.data.input not in NETWORK_INPUTS:
        raise ConfigError(
            f"--recognise: method '{cfg.name}' (data.input {cfg.data.input}) cannot be used for STR yet; STR supports "
            f"model.backbone {' or '.join(RECOGNISERS)} and data.input {' or '.join(NETWORK_INPUTS)} methods, e.g. "
            "--recognise method/lbptop or method/paper"
        )
    if network and cfg.data.input in MOTION_INPUTS and cfg.data.flow_method == "tvl1" and not tvl1_available():
        raise ConfigError(
            f"--recognise: method '{cfg.name}' asks for data.flow_method=tvl1, which needs OpenCV's contrib module "
            "(pip install 'mer-lightning[flow-tvl1]'); or use data.flow_method=farneback"
        )
    if pretrained is not None:
        if not network:
            raise ConfigError(f"--pretrained: method '{cfg.name}' (model.backbone {cfg.model.backbone}) has no network")
        from mer.train import check_pretrained

        check_pretrained(cfg, pretrained)


def recogniser_factory(
    cfg: Config, videos: Sequence[LongVideo], spot: Sequence[SpotVideo], work: Path | None = None,
    pretrained: str | Path | None = None,
) -> Any:  # fmt: skip
    """A factory of fresh recognisers over `videos` (their frames and tracks): `LbpTopRecogniser`s sharing one
    feature cache, or `NetworkRecogniser`s sharing crops and fits (training files under `work`)."""
    check_recogniser(cfg, pretrained)
    frames, tracks = {v.key: v.frames for v in videos}, {v.key: v.extra for v in spot}
    if cfg.model.backbone in RECOGNISERS:
        clips = ClipFeatures(frames, tracks, cfg.face, cfg.lbptop)
        classes = list(class_names(cfg.data))
        return lambda: LbpTopRecogniser(clips, cfg.svm, classes)
    if work is None:
        raise ValueError("a network recogniser needs a work folder")
    inputs: Any = (
        ApexCrops(frames, tracks, cfg.face)
        if cfg.data.input == "apex"
        else OnsetApexMotion(frames, tracks, cfg.face, cfg.data.input, cfg.data.flow_method)
    )
    fitted: dict[Any, Any] = {}
    return lambda: NetworkRecogniser(inputs, cfg, work, pretrained, fitted=fitted)


def checkpoint_record(path: str | Path | None) -> dict[str, Any] | None:
    """A pre-trained checkpoint as the run record keeps it: its file name and a hash of its bytes."""
    if path is None:
        return None
    return {"file": Path(path).name, "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]}


def run_record(
    videos: Mapping[str, Sequence[LongVideo]],
    learned: LearnedConfig,
    feature_cfg: FeatureConfig,
    n_resamples: int,
    recognise: Config | None,
    pretrained: str | Path | None = None,
) -> dict[str, Any]:
    """What every fold of a run depends on (the run folder's record): settings, the videos of each dataset (stamps
    of their frames and windows) with their annotations, the recognition config, the code and package versions."""
    data = {}
    for name, vids in videos.items():
        data[name] = {"/".join(v.key): [_stamp(v, required_windows(v.fps, v.n_frames), feature_cfg),
                                        hashlib.sha256(repr(v.intervals).encode()).hexdigest()[:16]]
                      for v in vids}  # fmt: skip
    return {
        "settings": {
            "features": dataclasses.asdict(feature_cfg),
            "learned": dataclasses.asdict(learned),
            "baseline_p_grid": list(P_GRID),
            "n_resamples": n_resamples,
            "recognise": to_dict(recognise) if recognise is not None else None,
            "pretrained": checkpoint_record(pretrained),
        },
        "data": data,
        "code": code_record(),
    }


def run_spot_datasets(
    roots: Mapping[str, str | Path],
    out: str | Path,
    seeds: Sequence[int] = (0, 1, 2),
    learned: LearnedConfig | None = None,
    feature_cfg: FeatureConfig | None = None,
    n_resamples: int = 1000,
    synthetic: bool = False,
    progress: bool = True,
    recognise: Config | None = None,
    pretrained: str | Path | None = None,
) -> Path:
    """Both spotters on every dataset in `roots` (name → root), and STR when `recognise` (a method config) is given,
    its network from `pretrained` when given; returns OUT/spot_report.md. Resumes: folds already in OUT
    (`mer.spotting.run_folder`) are read back, not rerun, and OUT holding a run of other inputs is refused (MerError
    naming the first difference)."""
    if pretrained is not None and recognise is None:
        raise ConfigError("--pretrained is the --recognise method's starting weights: give --recognise too")
    if recognise is not None:
        check_recogniser(recognise, pretrained)
    folder = SpotRunFolder(out)
    feature_cfg = feature_cfg or FeatureConfig()
    learned = learned or LearnedConfig()
    read: dict[str, list[LongVideo]] = {}
    reports = []
    for given, root in roots.items():
        name = long_name(given)
        read[name], report = read_long(name, root)
        reports.append(report)
    folder.out.mkdir(parents=True, exist_ok=True)
    folder.check_record(run_record(read, learned, feature_cfg, n_resamples, recognise, pretrained))
    results: dict[str, dict[str, Any]] = {}
    reused = computed = 0
    for name, videos in read.items():
        spot = spot_videos(videos, feature_cfg, folder.features, progress)
        results[name] = {
            "videos": len(videos),
            "subjects": len({v.subject for v in videos}),
            "truth": {k: sum(i.kind == k for v in videos for i in v.intervals) for k in KINDS},
        }
        makers = {"baseline": lambda: ThresholdSpotter(baseline_spot, P_GRID),
                  "learned": lambda: LearnedSpotter(learned)}  # fmt: skip
        recogniser = None
        if recognise is not None:
            scored = set(class_names(recognise.data))
            if any(set(str_labels(spot, kinds)) & scored for kinds in STR_KINDS.values()):
                recogniser = recogniser_factory(recognise, videos, spot, folder.str_work(name), pretrained)
                results[name]["recogniser"] = recognise.name
            else:
                results[name]["str_note"] = "no interval of the sheet has an emotion class: STR cannot be scored"
        for spotter, make in makers.items():
            store = folder.folds(name, spotter)
            run = evaluate_spotter(spot, make, seeds if spotter == "learned" else (seeds[0],), n_resamples, progress,
                                   recogniser, store)  # fmt: skip
            reused, computed = reused + store.reused, computed + store.computed
            _predictions_frame(run.pop("predictions")).to_csv(folder.out / predictions_file(name, spotter),
                                                              index=False)  # fmt: skip
            results[name][spotter] = run
    if progress and reused:
        print(f"mer spot: {reused} folds already complete in {folder.out} (reused), {computed} run now")
    pd.concat(reports, ignore_index=True).to_csv(folder.out / READER_REPORT, index=False)
    atomic_write_json(folder.out / SCORES_JSON, results, indent=1, default=str)
    return atomic_write_text(folder.out / REPORT_MD, report_text(results, synthetic))


def _cell(run: dict[str, Any], kind: str) -> str:
    s = run["summary"][kind]
    sd = f" ± {s['f1_sd']:.3f}" if s["f1_sd"] is not None else ""
    low, high = run["bootstrap"][kind]
    return f"{s['f1']:.3f}{sd} [{low:.3f}, {high:.3f}]"


def _str_cell(scores: dict[str, Any], metric: str) -> str:
    s = scores["summary"]
    sd = f" ± {s[f'{metric}_sd']:.3f}" if s[f"{metric}_sd"] is not None else ""
    low, high = scores["bootstrap"][metric]
    return f"{s[metric]:.3f}{sd} [{low:.3f}, {high:.3f}]"


def _str_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    """The STR section of the report (empty when no dataset was run with a recogniser)."""
    if not any("recogniser" in r or "str_note" in r for r in results.values()):
        return []
    lines = [
        "",
        "## Spot-then-recognize (STR)",
        "",
        "Each fold's recogniser is trained on the training subjects' annotated intervals (ME and MaE with a class) "
        "and labels the held-out subject's spotted intervals. Spotting F1 over the scored types; analysis on the "
        "true-positive pairs (F1_analysis = 2·P̄·R̄ / (P̄ + R̄) over the truth's classes, UF1, UAR); "
        "STRS = F1_spot × F1_analysis (MEGC2024/2025: types ME). Mean ± sd over seeds [95 % subject bootstrap "
        "interval]; the baseline spotter is deterministic (one run, labelled by the first seed's recognisers).",
        "",
        "| dataset | spotter | recogniser | seeds | types | F1 spot | F1 analysis | UF1 | UAR | STRS |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        if "str_note" in r:
            lines.append(f"| {name} | – | – | – | – | {r['str_note']} | | | | |")
            continue
        if "recogniser" not in r:
            continue
        for spotter in SPOTTERS:
            run = r[spotter]["str"]
            for scores in run["scores"].values():
                cells = " | ".join(_str_cell(scores, m) for m in ("f1_spot", "f1_analysis", "uf1", "uar", "strs"))
                lines.append(f"| {name} | {spotter} | {r['recogniser']} | {len(run['seeds'])} | "
                             f"{'+'.join(scores['kinds'])} | {cells} |")  # fmt: skip
    for name, r in results.items():
        if "recogniser" in r:
            folds = r["learned"]["str"]["recognisers"][r["learned"]["str"]["seeds"][0]]
            n = sorted({f["n_train"] for f in folds.values()})
            sizes = f"{n[0]}" if n[0] == n[-1] else f"{n[0]}–{n[-1]}"
            lines.append("")
            lines.append(
                f"- {name}: {len(folds)} fold recognisers, {sizes} training intervals each; none was trained "
                "on its held-out subject (checked; spot_scores.json lists their subjects)"
            )
    return lines


def report_text(results: dict[str, dict[str, Any]], synthetic: bool = False) -> str:
    """The markdown report: F1 per spotter, dataset and type (mean ± sd over seeds, subject bootstrap interval),
    precision and recall, what each fold chose, and the published baselines as context."""
    lines = ["# mer spot: spotting, leave one subject out", ""]
    if synthetic:
        lines += [f"> {SYNTHETIC_NOTE}", ""]
    lines += [
        "MEGC interval metric (IoU ≥ 0.5 with a truth of the same type, one-to-one, TP/FP/FN pooled over videos; "
        "overall = ME and MaE counts added). F1 as mean ± sd over seeds [95 % subject bootstrap interval]; the "
        "baseline is deterministic (one run, its p chosen per fold on the training subjects).",
        "",
        "| dataset | spotter | seeds | F1 ME | F1 MaE | F1 overall | P overall | R overall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        for spotter in SPOTTERS:
            run = r[spotter]
            o = run["summary"][OVERALL]
            lines.append(f"| {name} | {spotter} | {len(run['seeds'])} | {_cell(run, 'ME')} | {_cell(run, 'MaE')} | "
                         f"{_cell(run, OVERALL)} | {o['precision']:.3f} | {o['recall']:.3f} |")  # fmt: skip
        if name in PUBLISHED and not synthetic:
            pub = PUBLISHED[name]
            lines.append(f"| {name} | *MEGC2020 baseline, published (context only)* | – | {pub['ME']:.4f} | "
                         f"{pub['MaE']:.4f} | {pub[OVERALL]:.4f} | – | – |")  # fmt: skip
    lines += _str_lines(results)
    lines += ["", "## Data", ""]
    for name, r in results.items():
        lines.append(f"- {name}: {r['videos']} videos of {r['subjects']} subjects, {r['truth']['ME']} ME and "
                     f"{r['truth']['MaE']} MaE intervals")  # fmt: skip
    lines += ["", "## Chosen on the training subjects of each fold", ""]
    for name, r in results.items():
        ps = sorted({v for v in r["baseline"]["chosen"][r["baseline"]["seeds"][0]].values()})
        lines.append(f"- {name}, baseline p: {', '.join(f'{p:g}' for p in ps)}")
        seed0 = r["learned"]["chosen"][r["learned"]["seeds"][0]]
        th = {k: sorted({c["thresholds"][k] for c in seed0.values()}) for k in KINDS}
        lines.append(f"- {name}, learned thresholds (seed {r['learned']['seeds'][0]}): "
                     + "; ".join(f"{k} {', '.join(f'{t:g}' for t in v)}" for k, v in th.items()))  # fmt: skip
    if not synthetic:
        lines += ["", "Published MEGC2020 numbers come from other thresholds and protocols; they are context, not a "
                  "comparison (docs/spotting.md)."]  # fmt: skip
    return "\n".join(lines) + "\n"
