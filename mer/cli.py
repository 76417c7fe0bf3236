"""The `mer` command: demo, prepare, pretrain, loso, report, compare, sweep, predict, spot, export, bench.

Every subcommand takes `--config` (a YAML path or a shipped name such as `demo` or `paper`) and trailing
`key=value` overrides; user mistakes print one line naming the file or key and exit 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated  # noqa: UP035 - typer needs typing.Optional on 3.10

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import typer  # noqa: E402

from mer.errors import MerError  # noqa: E402

# Each command imports what it needs inside its body (lazy: `mer --help` stays instant, and `mer prepare` and
# `mer report` do not pay for lightning, wandb or albumentations, which only training and inference use).

app = typer.Typer(
    name="mer",
    help=(
        "Micro-expression recognition experiments: apex frame → MTCNN-aligned face → MobileViT pre-trained on "
        "macro-expressions → fine-tuned per LOSO fold → SVM on embeddings → MEGC metrics.\n\n"
        "Start with `mer demo --out runs/demo` (a generated corpus, minutes on a laptop CPU)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML config file or shipped name (default, paper, demo, ablation/<name>); repeat to stack: "
        "--config paper --config ablation/resnet18.",
    ),
]
Overrides = Annotated[
    list[str] | None,
    typer.Argument(help="Dotted config overrides, e.g. train.finetune.lr=0.003 model.backbone=mobilevit_xs."),
]
DevicesOpt = Annotated[
    str | None,
    typer.Option(
        help="Where worker processes run: GPU indices round-robin as this process numbers them (cuda:0, cuda:1; "
        "within CUDA_VISIBLE_DEVICES when it is set), e.g. 0,1 (several processes per GPU when --workers is "
        "larger), or cpu. Default: every visible GPU, else CPU."
    ),
]


def _cfg(config: list[str] | None, overrides: list[str] | None, flags: list[str] | None = None):  # noqa: ANN202
    """The command's Config (a mer.config.Config): its files, then the trailing overrides, then the overrides that
    stand for its flags (`--prepared` → data.prepared, ...), so a flag wins over the same key given as an override."""
    from mer.config import load_config  # lazy: omegaconf is not needed for --help

    return load_config(config or ["default"], [*(overrides or []), *(flags or [])])


def _flag(key: str, value: object) -> list[str]:
    """The override a flag stands for, or none when the flag was not given."""
    from mer.config import as_override  # lazy, as above

    return [] if value is None else [as_override(key, value)]


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the generated corpus and every result.")] = Path("runs/demo"),
    data_only: Annotated[bool, typer.Option("--data-only", help="Only generate the corpus; no training.")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="Tiny corpus and epochs (the tests' version).")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the generated corpus and of training.")] = 0,
    ablations: Annotated[
        bool, typer.Option("--ablations", help="Then the paper's ablations on the same seeds (OUT/ablations.md).")
    ] = False,
    methods: Annotated[
        bool,
        typer.Option(
            "--methods",
            help="Instead of the pipeline: the four methods (conf/method/demo/*.yaml: paper, STSTNet, OFF-ApexNet, "
            "LBP-TOP) through `mer compare` on the same seeds (OUT/methods.md).",
        ),
    ] = False,
) -> None:
    """Generate a corpus in the real datasets' layouts and run the whole pipeline on it.

    Writes OUT/data/{CASME2,SAMM,SMIC,CK+,JAFFE} (faces from public-domain photos with synthetic expression warps),
    then prepare → pretrain → LOSO (3 seeds; --quick: 1) → final bundle → one test video per class of a held-out
    person, and prints the summary, what `mer predict` says for each video beside the class it shows, and a
    `mer predict` command to try.
    """
    from mer.demo.corpus import generate_corpus

    summary = generate_corpus(out / "data", seed=seed, quick=quick)
    typer.echo(summary.describe())
    if data_only:
        return
    if methods:
        from mer.demo.run import run_methods

        run_methods(out, summary, quick=quick, seed=seed)
        return
    from mer.demo.run import run_demo

    run_demo(out, summary, quick=quick, seed=seed)
    if ablations:
        from mer.demo.run import run_ablations

        run_ablations(out, summary, quick=quick, seed=seed)


@app.command()
def prepare(
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data",
            "-d",
            help="NAME=ROOT, repeatable (sets data.roots.NAME). Names: casme2 samm smic casme3a casme3c 4dme mmew "
            "dfme ckplus oulu jaffe mug folder.",
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (sets data.prepared; default: the config's).")] = None,
    megc_list: Annotated[
        Path | None,
        typer.Option(help="MEGC2019 combined_3class_gt.csv: keep exactly those samples (sets data.megc_list)."),
    ] = None,
    manifest_only: Annotated[bool, typer.Option("--manifest-only", help="Stop after manifest.csv (no faces).")] = False,
    preview: Annotated[
        bool, typer.Option("--preview", help="Write preview.png, a contact sheet of aligned faces.")
    ] = False,
    config: ConfigOpt = None,
    overrides: Overrides = None,
) -> None:
    """Read dataset folders into OUT/manifest.csv, detect + align faces into a crop cache.

    Writes manifest.csv (every usable sample), prepare_report.csv (every skipped sample or frame with its reason),
    prepared.csv (samples with their aligned crop) and crops/ (content-addressed cache; re-runs are free).
    """
    from mer.prepare import parse_data_args, run_prepare

    flags = [f for name, root in parse_data_args(data or []).items() for f in _flag(f"data.roots.{name}", root)]
    flags += _flag("data.prepared", out) + _flag("data.megc_list", megc_list)
    run_prepare(_cfg(config, overrides, flags), manifest_only=manifest_only, preview=preview)


datasets_app = typer.Typer(help="Look at dataset folders before preparing them.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")


@datasets_app.command("check")
def datasets_check(
    data: Annotated[
        list[str],
        typer.Option("--data", "-d", help="NAME=ROOT, repeatable, as for `mer prepare` (e.g. casme2=/data/CASME2)."),
    ],
    megc_list: Annotated[
        Path | None, typer.Option(help="MEGC2019 combined_3class_gt.csv: count the listed samples found and missing.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the check as JSON (for scripts).")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when any count differs from the published one.")
    ] = False,
) -> None:
    """Say what dataset folders hold, beside the published counts, in seconds (no face detection, no torch).

    Per dataset: label-file rows, sample folders on disk, rows with frames missing, rows without an apex label, rows
    outside the 3 classes, subjects, the label-file version; with --megc-list the listed samples found and missing.
    Exit 0 unless a root is missing or does not look like its dataset (exit 2, one line); --strict: 1 on differences.
    """
    from mer.data.check import check_roots, render
    from mer.data.datasets import parse_data_args

    result = check_roots(parse_data_args(data), megc_list)
    if json_out:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        from rich.console import Console

        console = Console(highlight=False, width=max(Console().width, 150))
        for item in render(result):
            console.print(item)
    if strict and result.differences():
        raise typer.Exit(1)


@app.command()
def pretrain(
    out: Annotated[Path, typer.Option(help="Run folder: checkpoints, logs, config, metrics.")] = Path("runs/pretrain"),
    prepared: Annotated[Path | None, typer.Option(help="Folder written by `mer prepare` (sets data.prepared).")] = None,
    config: ConfigOpt = None,
    overrides: Overrides = None,
) -> None:
    """Stage 1: train the network on the macro-expression rows (CK+, Oulu, JAFFE, MUG).

    Keeps the best checkpoint by validation accuracy on held-out macro subjects; writes OUT/best.ckpt,
    OUT/pretrain.json (its path and metrics), OUT/config.yaml and OUT/run_info.json. pretrained.pt records how the
    hyper-parameters were chosen (the study named by selected_by=STORAGE_URL::STUDY, from `mer sweep --best` of a
    stage: pretrain sweep, or fixed), and `mer loso --pretrained` stamps its report from it.
    """
    from mer.sweep.storage import selection_of
    from mer.train import run_pretrain

    cfg = _cfg(config, overrides, _flag("data.prepared", prepared))
    run_pretrain(cfg, out, selection_of(cfg))


@app.command()
def loso(
    out: Annotated[Path, typer.Option(help="Run folder: folds/<subject>/{predictions.csv,metrics.json}.")] = Path(
        "runs/loso"
    ),
    pretrained: Annotated[
        Path | None, typer.Option(help="Checkpoint from `mer pretrain` (omit for no transfer).")
    ] = None,
    prepared: Annotated[Path | None, typer.Option(help="Folder written by `mer prepare` (sets data.prepared).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Fold processes, one GPU each when present (sets loso.workers).")
    ] = None,
    devices: DevicesOpt = None,
    fold_index: Annotated[
        int | None, typer.Option(help="This call runs only fold I of the run's plan (SLURM array task).")
    ] = None,
    folds: Annotated[
        str | None,
        typer.Option(
            help="This call runs only these folds of the run's plan: comma-separated held-out subjects, e.g. "
            "casme2/sub01. The plan and config stay the same (the report waits for every planned fold); to "
            "restrict the plan itself, set loso.folds=[...]."
        ),
    ] = None,
    from_study: Annotated[
        str | None,
        typer.Option(help="STORAGE_URL::STUDY: the best parameters of an Optuna study, as overrides after yours."),
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            help="Run the protocol once per seed into OUT/seed<k>/, e.g. 0,1,2 (sets loso.seeds); the report gives "
            "mean ± sd over seeds. With --fold-index I: fold I % n_folds of seed I // n_folds."
        ),
    ] = None,
    final: Annotated[
        bool, typer.Option("--final", help="Instead of LOSO, train on every subject and save OUT/bundle for predict.")
    ] = False,
    protocol: Annotated[
        str | None,
        typer.Option(
            help="composite (LOSO over all datasets together, default), per_dataset (LOSO within each dataset), "
            "lodo (leave one dataset out: a report per held-out dataset and a pooled one) or dfme (DFME's train → "
            "testA / testB split); sets loso.protocol."
        ),
    ] = None,
    nested: Annotated[
        Path | None,
        typer.Option(
            help="Sweep file: nested LOSO, each fold's hyper-parameters chosen by its own inner study over its "
            "training subjects (sets loso.nested; --config replaces the sweep's base, --workers runs inner trials)."
        ),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(help="With --nested: storage of every inner study (default OUT/nested.db; postgresql://...)."),
    ] = None,
    allow_mixed: Annotated[
        bool,
        typer.Option(
            "--allow-mixed",
            help="Resume (or run an array task) even when the folds already in OUT were made under another regime "
            "(mer commit, package versions, resolved precision/TF32/deterministic/device); the report is then "
            "stamped MIXED and lists the regime of every fold. Without it such a call is refused.",
        ),
    ] = False,
    config: ConfigOpt = None,
    overrides: Overrides = None,
) -> None:
    """Stage 2: leave-one-subject-out fine-tuning + SVM on embeddings, one fold per micro subject.

    Complete folds are skipped, so rerunning resumes a killed run (refused when the folds there were made under
    another regime: commit, package versions, resolved numerics; see --allow-mixed). Writes the report when all
    folds are done.
    With --final, fits one model on all subjects and writes a bundle (network + scaler + SVM) for `mer predict`.
    With --nested SWEEP.yaml, each fold first runs an Optuna study over its own training subjects.
    """
    from mer.sweep.modes import run_loso_command

    flags = _flag("data.prepared", prepared) + _flag("loso.workers", workers) + _flag("loso.seeds", _seed_list(seeds))
    flags += _flag("loso.devices", _device_list(devices)) + _flag("loso.protocol", protocol)
    run_loso_command(
        config, overrides or [], flags, out, pretrained=pretrained, prepared=prepared, final=final, nested=nested,
        storage=storage, from_study=from_study, fold_index=fold_index, folds=folds, protocol=protocol,
        allow_mixed=allow_mixed,
    )  # fmt: skip


def _device_list(text: str | None) -> list[str] | None:
    """`--devices 0,1` → ["0", "1"]; `--devices cpu` → ["cpu"]; not given → None (the config's loso.devices)."""
    if text is None:
        return None
    return [d.strip() for d in text.split(",") if d.strip()]


def _seed_list(text: str | None) -> list[int] | None:
    """`--seeds 0,1,2` → [0, 1, 2]; a value that is not a comma-separated list of integers is a one-line error."""
    if text is None:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise MerError(f"--seeds {text!r}: give comma-separated integers, e.g. --seeds 0,1,2") from None


@app.command()
def report(
    run_dir: Annotated[Path | None, typer.Argument(help="A `mer loso` run folder.")] = None,
    compare: Annotated[
        list[Path] | None, typer.Option("--compare", help="Several run folders to put side by side.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Where to write (default: the run folder).")] = None,
    resamples: Annotated[
        int, typer.Option(help="Subject-bootstrap resamples for the 95 % intervals and paired differences (0: none).")
    ] = 1000,
    bootstrap_seed: Annotated[int, typer.Option(help="Seed of the bootstrap resampling.")] = 0,
) -> None:
    """Pool a LOSO run's predictions into MEGC metrics: report.md, report.html, confusion matrix, per-fold plot.

    A multi-seed folder (`mer loso --seeds`) gets per-seed rows and mean ± sd; every headline number carries a 95 %
    bootstrap interval over subjects. --compare adds the paired difference of runs on the same samples.
    """
    from mer.evaluation.compare import compare_runs
    from mer.evaluation.report import write_report

    if compare:
        typer.echo(compare_runs(compare, out or Path("runs/compare"), resamples=resamples, seed=bootstrap_seed))
    elif run_dir is not None:
        typer.echo(write_report(run_dir, out, resamples=resamples, seed=bootstrap_seed))
    else:
        raise MerError("give a run folder (mer report runs/loso) or --compare DIR1 --compare DIR2")


@app.command(name="compare")
def compare_methods(
    items: Annotated[
        list[str] | None,
        typer.Argument(
            help="Method config files (conf/method/*.yaml), then dotted key=value overrides applied to every method.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for prepared data, runs and the table.")] = Path("runs/compare"),
    seeds: Annotated[
        str | None, typer.Option(help="Seeds for every method, e.g. 0,1,2 (sets loso.seeds; default: each config's).")
    ] = None,
    resamples: Annotated[int, typer.Option(help="Subject-bootstrap resamples for the table's 95 % intervals.")] = 1000,
    config: Annotated[
        list[str] | None,
        typer.Option(
            "--config",
            "-c",
            help="Overlay stacked on every method (data roots, workers, ...); repeatable. An overlay that sets the "
            "network or its sizes changes every method: demo-sized methods are conf/method/demo/*.yaml.",
        ),
    ] = None,
) -> None:
    """Run several methods through the same leakage-free harness and write one comparison table.

    For each METHOD.yaml (with the --config overlays and key=value overrides on top): `mer prepare` its input into
    OUT/prepared/<input>/ (one folder per distinct input and flow setting, shared between methods; a folder that
    already matches, such as the configured data.prepared, is reused; a new one starts from the crops cached in the
    others), `mer pretrain` into OUT/pretrain/<method>/ when the method transfers (loso.transfer), LOSO over the
    seeds into OUT/runs/<method>/, then the Methods table of `mer report --compare` in OUT/compare.md (+ .html,
    .csv, .json): method, input, UF1 / UAR mean ± sd over seeds, bootstrap interval, how the hyper-parameters were
    chosen, the published figure. Rerunning the same command skips finished work.

    Example: mer compare conf/method/*.yaml -c site.yaml --seeds 0,1,2 --out runs/methods
    """
    from mer.evaluation.methods import load_methods, run_compare

    files = [i for i in items or [] if "=" not in i or Path(i).is_file()]
    overrides = [i for i in items or [] if i not in files]
    methods = load_methods(files, config or [], overrides)
    typer.echo(str(run_compare(methods, out, seeds=_seed_list(seeds), resamples=resamples)))


@app.command()
def sweep(
    spec: Annotated[Path, typer.Argument(help="Sweep file, e.g. sweeps/paper_grid.yaml.")],
    storage: Annotated[
        str | None,
        typer.Option(
            help="Optuna storage: sqlite:///x.db, journal:<file> (many processes, one node), postgresql://... "
            "(cluster). Default: OUT/study.db, or OUT/study.journal with --workers > 1."
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes on this machine sharing the study.")] = 1,
    devices: DevicesOpt = None,
    n_trials: Annotated[
        int | None, typer.Option(help="At most N trials from this command (the study's budget is the file's).")
    ] = None,
    best: Annotated[
        bool, typer.Option("--best", help="Print the best parameters as an override line (and its value) and exit.")
    ] = False,
    prepared: Annotated[Path | None, typer.Option(help="Folder written by `mer prepare` (sets data.prepared).")] = None,
    pretrained: Annotated[
        Path | None, typer.Option(help="Checkpoint from `mer pretrain` each trial fine-tunes from.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Sweep folder (default: the file's `out`).")] = None,
    holdout: Annotated[
        str | None,
        typer.Option(help="Comma-separated micro subjects no trial may see (an outer test set), e.g. casme2/sub01."),
    ] = None,
    live: Annotated[
        bool | None, typer.Option("--live/--no-live", help="Live trial table (default: when in a terminal).")
    ] = None,
    config: ConfigOpt = None,
    overrides: Overrides = None,
) -> None:
    """Optuna study (grid or TPE) over batch size, learning rate, weight decay or any config key.

    Each trial is scored on grouped inner folds of the training subjects (never a LOSO test fold, unless the
    file asks for the leaky objective). Re-running the same command resumes the study; grid points are never
    evaluated twice, also with several processes on one storage. Trials write OUT/trials/<number>/.
    """
    from mer.config import as_override
    from mer.sweep import apply_flags, load_sweep, run_sweep, show_best

    holdouts = [s for s in (holdout or "").split(",") if s]
    sweep_spec = apply_flags(load_sweep(spec), out=out, base=config, holdout=holdouts, pretrained=pretrained)
    if best:
        show_best(sweep_spec, storage)
        return
    flags = [as_override("data.prepared", prepared)] if prepared is not None else []  # --prepared wins
    chosen = _device_list(devices) or []
    if workers <= 1:  # trials run in this process: pin it before anything initialises CUDA
        from mer.runtime import pin_process

        pin_process(chosen)
    run_sweep(sweep_spec, [*(overrides or []), *flags], storage=storage, workers=workers, n_trials=n_trials, live=live,
              devices=chosen if workers > 1 else ())  # fmt: skip


@app.command()
def predict(
    path: Annotated[Path, typer.Argument(help="An image, a folder of frames or a video (mp4/mov/avi).")],
    model: Annotated[
        Path | None, typer.Option(help="Bundle folder (network + SVM), a .ckpt/.pt checkpoint or an .onnx file.")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the result as JSON here.")] = None,
    window: Annotated[
        int, typer.Option(help="Also classify the K strongest motion peaks as candidate apexes (0 = apex only).")
    ] = 0,
    max_frames: Annotated[int | None, typer.Option(help="Read only the first N frames of a long video.")] = None,
    detect_max_side: Annotated[
        int, typer.Option(help="Frames are scaled down to this longer side for face detection (0 = full size).")
    ] = 640,
    config: Annotated[
        str | None, typer.Option("--config", "-c", help="Training config for a plain checkpoint (face pipeline).")
    ] = None,
    engine: Annotated[
        str, typer.Option(help="What runs the network: auto, torch, onnxruntime, openvino (the openvino extra).")
    ] = "auto",
) -> None:
    """Run a trained model on your own image, frames or video: face → apex → label with probabilities.

    Prints a table (file, frames with a face, apex frame/time, label, probabilities) and writes the JSON documented
    in docs/inference.md with --json. Exits 2 with one line when the input is unreadable or holds no face.
    """
    from rich.console import Console

    from mer.inference.bundle import load_bundle
    from mer.inference.predict import predict_path, result_table, use_engine

    if model is None:
        raise MerError("give the model with --model: a bundle folder (mer loso --final), a .ckpt/.pt or an .onnx file")
    bundle = use_engine(load_bundle(model, _cfg(config, []) if config else None), engine)
    result = predict_path(path, bundle, window=window, max_frames=max_frames, detect_max_side=detect_max_side)
    console = Console(width=max(Console().width, 120))
    console.print(result_table([result]))
    if result["face_note"]:
        console.print(f"note: {result['face_note']}")
    if bundle.classifier == "svm":
        console.print("label from the bundle's SVM on the embedding; probabilities from the softmax head")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2))
        console.print(f"wrote {json_out}")


@app.command()
def spot(
    path: Annotated[
        Path | None, typer.Argument(help="A long video (any frame rate) or a folder of its frames (or use --data).")
    ] = None,
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data",
            "-d",
            help="Dataset mode: NAME=ROOT, repeatable (casme_sq, samm_lv, casme3a_lv): both spotters "
            "leave-one-subject-out with seeds and a subject bootstrap, report in --out.",
        ),
    ] = None,
    out: Annotated[
        Path,
        typer.Option(
            help="Dataset mode: folder for the report, scores, features and one file per finished fold. Rerun the "
            "same command to resume a killed run (finished folds are reused); other inputs into the same folder are "
            "refused (exit 2)."
        ),
    ] = Path("runs/spot"),
    seeds: Annotated[int, typer.Option(help="Dataset mode: seeds of the learned spotter (0 … N-1).")] = 3,
    recognise: Annotated[
        str | None,
        typer.Option(
            help="Dataset mode: also spot-then-recognize (STR) with this method config (e.g. method/lbptop: LBP-TOP "
            "+ SVM): per fold it is trained on the training subjects' annotated intervals and labels the held-out "
            "subject's spotted intervals; STRS, UF1 and UAR join the report. Any method: method/paper trains its "
            "network on the interval's aligned apex crop, method/ststnet on its onset→apex flow."
        ),
    ] = None,
    pretrained: Annotated[
        Path | None,
        typer.Option(
            help="Dataset mode with a network --recognise method: start each fold's network from these weights "
            "(e.g. `mer pretrain`'s pretrained.pt) instead of from scratch."
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(help="Label each interval's apex with this model (bundle folder, .ckpt/.pt or .onnx)."),
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the intervals as JSON here.")] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write a PNG of the score curves, thresholds and intervals here.")
    ] = None,
    p: Annotated[
        float,
        typer.Option(
            help="Threshold T = mean + p (max - mean) of the contrast curve, per video and scale (the MEGC baseline; "
            "choose p on labelled training videos when you have them)."
        ),
    ] = 0.5,
    fps: Annotated[
        float | None, typer.Option(help="Frame rate to use (a frames folder needs it; overrides the file's).")
    ] = None,
    max_frames: Annotated[int | None, typer.Option(help="Read only the first N frames.")] = None,
    detect_every: Annotated[int, typer.Option(help="Run face detection every N frames; follow the face between.")] = 10,
    bounds: Annotated[
        str, typer.Option(help="Interval bounds: motion (refined from the flow) or window (peak ± k, MDMD's).")
    ] = "motion",
    min_contrast: Annotated[
        float, typer.Option(help="A peak must also reach this contrast (crop pixels); 0 = the baseline as published.")
    ] = 0.1,
    config: Annotated[
        str | None, typer.Option("--config", "-c", help="Training config for a plain checkpoint (face pipeline).")
    ] = None,
    engine: Annotated[str, typer.Option(help="What runs the network: auto, torch, onnxruntime, openvino.")] = "auto",
) -> None:
    """Spot micro- (ME) and macro-expression (MaE) intervals in a long video with the MEGC optical-flow baseline,
    or (--data) evaluate the baseline and the learned spotter on long-video datasets, leave one subject out.

    Prints a table (start, apex, end in frames and seconds, type, score; label and probabilities with --model),
    writes --json and a --plot of the score curves. Frames without a face are never spotted; a video without a face
    gives no interval and a note; an unreadable file exits 2 with one line. docs/spotting.md explains the method.

    Dataset mode resumes: rerun the same command into the same --out and every finished (dataset, spotter, seed,
    fold) is read back instead of rerun; a rerun with other settings, data, --recognise config or mer version is
    refused with the first difference (use a new --out).
    """
    from rich.console import Console

    from mer.spotting.baseline import BaselineConfig
    from mer.spotting.features import FeatureConfig
    from mer.spotting.spot import plot_spot, spot_table, spot_video

    if data:
        if path is not None:
            raise MerError("mer spot: give a VIDEO or --data NAME=ROOT, not both")
        _spot_datasets(data, out, seeds, detect_every, recognise, pretrained)
        return
    if path is None:
        raise MerError("mer spot: give a VIDEO (or a frames folder), or --data NAME=ROOT for dataset mode")
    if recognise is not None or pretrained is not None:
        raise MerError("mer spot: --recognise is for dataset mode (--data); to label a video's intervals use --model")

    try:
        cfg = BaselineConfig(p=p, bounds=bounds, min_contrast=min_contrast)
        feature_cfg = FeatureConfig(detect_every=detect_every)
    except ValueError as exc:
        raise MerError(f"mer spot: {exc}") from None
    if detect_every < 1:
        raise MerError(f"--detect-every must be at least 1, got {detect_every}")
    bundle = None
    if model is not None:
        from mer.inference.bundle import load_bundle
        from mer.inference.predict import use_engine

        bundle = use_engine(load_bundle(model, _cfg([config], []) if config else None), engine)
    out, result, feats = spot_video(path, bundle, cfg, feature_cfg, fps=fps, max_frames=max_frames)
    console = Console(width=max(Console().width, 120))
    console.print(spot_table(out))
    if not out["intervals"]:
        console.print("no interval spotted")
    for note in out["notes"]:
        console.print(f"note: {note}")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(out, indent=2))
        console.print(f"wrote {json_out}")
    if plot is not None:
        console.print(f"wrote {plot_spot(out, result, feats, plot)}")


def _spot_datasets(
    data: list[str], out: Path, seeds: int, detect_every: int, recognise: str | None = None,
    pretrained: Path | None = None,
) -> None:  # fmt: skip
    """`mer spot --data`: both spotters on the datasets, LOSO, seeds, subject bootstrap (and STR with a recognition
    method); prints the report."""
    from mer.spotting.datasets import check_recogniser, run_spot_datasets
    from mer.spotting.features import FeatureConfig

    roots = {}
    for item in data:
        name, sep, root = item.partition("=")
        if not sep or not name or not root:
            raise MerError(f"--data {item!r}: use NAME=ROOT, e.g. --data casme_sq=/data/CASME_sq")
        roots[name] = Path(root)
    if seeds < 1:
        raise MerError(f"--seeds must be at least 1, got {seeds}")
    from mer.demo import MARKER

    method = None
    if recognise is not None:
        method = _cfg([recognise], [])
        check_recogniser(method, pretrained)
    elif pretrained is not None:
        raise MerError("mer spot: --pretrained is the --recognise method's starting weights: give --recognise too")
    synthetic = any((root.expanduser().parent / MARKER).is_file() for root in roots.values())  # the demo's corpus
    report = run_spot_datasets(
        roots,
        out,
        seeds=range(seeds),
        feature_cfg=FeatureConfig(detect_every=detect_every),
        synthetic=synthetic,
        recognise=method,
        pretrained=pretrained,
    )
    typer.echo(report.read_text())
    typer.echo(f"report: {report}")


@app.command()
def export(
    fmt: Annotated[str, typer.Argument(help="Export format: onnx.")],
    checkpoint: Annotated[Path, typer.Argument(help="Bundle folder or .ckpt/.pt checkpoint to export.")],
    out: Annotated[Path, typer.Option(help="Output file.")] = Path("model.onnx"),
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 17,
    image_size: Annotated[int | None, typer.Option(help="Input side (default: the network's).")] = None,
    quantize: Annotated[
        str | None, typer.Option(help="Also write OUT.int8.onnx: 'static' (QDQ, calibrated) or 'dynamic'.")
    ] = None,
    calib: Annotated[
        Path | None,
        typer.Option(help="Face crops to calibrate static int8: image folder or .npy (default: sample photos)."),
    ] = None,
    eval_data: Annotated[
        Path | None,
        typer.Option(help="Labelled crops (class folders or CSV label,crop): int8 accuracy change."),
    ] = None,
    exporter: Annotated[str, typer.Option(help="torchscript (default) or dynamo (torch.export).")] = "torchscript",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the export report as JSON here.")] = None,
) -> None:
    """Export the network (logits + embedding, dynamic batch) to ONNX, checked against PyTorch (max abs difference)."""
    from mer.inference.export import export_onnx

    if fmt.lower() != "onnx":
        raise MerError(f"export format '{fmt}' is not supported; use: mer export onnx CHECKPOINT --out model.onnx")
    res = export_onnx(
        checkpoint,
        out,
        opset=opset,
        image_size=image_size,
        quantize=quantize,
        calib=calib,
        eval_data=eval_data,
        exporter=exporter,
    )
    for line in res.lines():
        typer.echo(line)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(res.to_dict(), indent=2))
    if not res.verified:
        raise MerError(f"{out}: ONNX output differs from PyTorch by more than {res.atol:g}; try --exporter dynamo")


@app.command()
def bench(
    backbones: Annotated[
        str, typer.Option(help="Comma-separated backbones (mobilevit_xxs, mobilevit_xs, mobilevit_s, ...).")
    ] = "mobilevit_s",
    image_size: Annotated[int, typer.Option(help="Input side in pixels.")] = 256,
    iterations: Annotated[int, typer.Option(help="Timed calls per engine at batch 1 (median reported).")] = 30,
    warmup: Annotated[int, typer.Option(help="Untimed calls first.")] = 5,
    batch: Annotated[list[int] | None, typer.Option(help="Throughput batch size, repeatable (default 32).")] = None,
    engines: Annotated[
        str,
        typer.Option(
            help="Comma-separated: eager, compile, ort, ort_spin, ort_int8 (static), ort_int8_dynamic, openvino, "
            "openvino_bf16."
        ),
    ] = "eager,ort",
    threads: Annotated[int | None, typer.Option(help="torch and ONNX Runtime threads (default: torch's).")] = None,
    face: Annotated[bool, typer.Option(help="Measure MTCNN detection + alignment.")] = False,
    video: Annotated[bool, typer.Option(help="Measure mer predict end to end on a generated clip.")] = False,
    floor: Annotated[bool, typer.Option(help="Count FLOPs, time an FP32 GEMM, show each engine × floor.")] = True,
    compile_timeout: Annotated[float, typer.Option(help="Seconds allowed for torch.compile per backbone.")] = 300.0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write all rows as JSON here.")] = None,
    markdown_out: Annotated[Path | None, typer.Option("--markdown", help="Write the table as Markdown.")] = None,
) -> None:
    """Latency per sample and throughput of the network against this machine's floor (FLOPs / FP32 GEMM rate).

    Default: mobilevit_s at 256², PyTorch eager and ONNX Runtime (meant to finish within 2 minutes on 2 idle cores);
    torch.compile, int8, OpenVINO, other backbones, the face pipeline and video on request. Printed beside the
    paper's 35.4 ms per sample, with the thread count and CPU. Engines of one backbone are timed in turns of 5 calls;
    on a busy machine PyTorch eager suffers most, so use an idle one (or --threads 1 and the CPU ms column) for
    figures to report.
    """
    from rich.console import Console

    from mer.inference.bench import run_bench
    from mer.inference.bench_report import bench_table, markdown, summary

    result = run_bench(
        [b.strip() for b in backbones.split(",") if b.strip()],
        image_size=image_size,
        iterations=iterations,
        warmup=warmup,
        batches=tuple(batch or (32,)),
        engines=[e.strip() for e in engines.split(",") if e.strip()],
        threads=threads,
        face=face,
        video=video,
        compile_timeout=compile_timeout,
        floor=floor,
    )
    console = Console(width=max(Console().width, 160))
    console.print(bench_table(result))
    for line in summary(result):
        console.print(line)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.to_dict(), indent=2))
    if markdown_out is not None:
        markdown_out.parent.mkdir(parents=True, exist_ok=True)
        markdown_out.write_text(markdown(result) + "\n")


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the app and turns user errors into one line on stderr with exit code 2."""
    try:
        app(args=argv)
    except MerError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
