"""Training stages: macro pre-training (`mer pretrain`) and per-fold micro fine-tuning (used by LOSO and sweeps).

One function, `train_stage`, builds the data module, the LightningModule, callbacks, loggers and Trainer from the
config, trains, and returns the module with its best weights loaded.
"""

from __future__ import annotations

import json
import logging
import netrc
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger

from mer.config import Config, StageConfig, flatten, to_dict
from mer.data.datamodule import MERDataModule
from mer.data.prepared import check_scheme, load_prepared
from mer.errors import MerError
from mer.models.backbones import build_net, load_weights, save_weights
from mer.models.module import MERModule
from mer.models.unfreeze import GradualUnfreeze
from mer.provenance import (
    CHECKPOINT_SELECTION,
    config_selection,
    resolve_precision,
    trainer_on_cuda,
    write_run_info,
)
from mer.runtime import configure_torch

log = logging.getLogger(__name__)

for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda", "lightning.fabric"):
    logging.getLogger(_name).setLevel(logging.WARNING)
warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*LeafSpec.*")
warnings.filterwarnings("ignore", ".*number of training batches.*smaller than the logging interval.*")
warnings.filterwarnings("ignore", ".*The `srun` command is available on your system.*")  # a login node with Slurm


@dataclass
class StageResult:
    """What a training stage leaves: the module with its best weights, where they are, and the scores."""

    module: MERModule
    datamodule: MERDataModule
    best_path: Path | None
    best_score: float | None
    best_epoch: int | None
    epochs_run: int
    seconds: float
    monitor: str | None


def wandb_mode(cfg: Config) -> str:
    """'auto' → online when the user is logged in (an API key is configured), else offline; never asks to log in."""
    if cfg.logging.wandb_mode != "auto":
        return cfg.logging.wandb_mode
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        auth = netrc.netrc().authenticators("api.wandb.ai")
        return "online" if auth else "offline"
    except (OSError, netrc.NetrcParseError):
        return "offline"


def build_loggers(
    cfg: Config, out_dir: Path, name: str, group: str | None = None, job_type: str | None = None
) -> list[Logger]:
    """CSV always; TensorBoard and W&B when the config turns them on (W&B offline unless logged in)."""
    loggers: list[Logger] = [CSVLogger(str(out_dir), name="logs", version="")]
    if cfg.logging.tensorboard:
        loggers.append(TensorBoardLogger(str(out_dir), name="tensorboard", version=""))
    if cfg.logging.wandb:
        loggers.append(
            WandbLogger(
                project=cfg.logging.wandb_project,
                entity=cfg.logging.wandb_entity,
                name=name,
                group=cfg.logging.wandb_group or group or cfg.name,
                job_type=job_type,
                save_dir=str(out_dir),
                mode=wandb_mode(cfg),
                config=flatten(to_dict(cfg)),
                reinit="finish_previous",
            )
        )
    return loggers


def log_wandb_summary(
    cfg: Config,
    out_dir: Path,
    name: str,
    job_type: str,
    summary: dict[str, Any],
    config: dict[str, Any] | None = None,
    history: Sequence[dict[str, Any]] = (),
) -> None:
    """One W&B run that only carries results (a LOSO run's or a seed study's pooled scores, intervals, stamps), in
    the same group as the fold runs (`logging.wandb_group`, else the config name); nothing when W&B is off."""
    if not cfg.logging.wandb:
        return
    import wandb  # lazy: slow to import, needed only when W&B logging is on

    finish_wandb()
    run = wandb.init(
        project=cfg.logging.wandb_project,
        entity=cfg.logging.wandb_entity,
        group=cfg.logging.wandb_group or cfg.name,
        job_type=job_type,
        name=name,
        dir=str(out_dir),
        mode=wandb_mode(cfg),  # type: ignore[arg-type]
        config={**flatten(to_dict(cfg)), **(config or {})},
        reinit="finish_previous",
    )
    for step, row in enumerate(history):
        run.log(row, step=step)
    run.summary.update(summary)
    run.finish()


def finish_wandb() -> None:
    """Close the current W&B run, if any, so the next fold/trial starts its own."""
    if "wandb" in sys.modules:
        import wandb  # lazy: only when a W&B logger has loaded it already (importing it costs ~0.7 s)

        if wandb.run is not None:
            wandb.finish()


def train_stage(
    cfg: Config,
    prepared: pd.DataFrame,
    stage: str,
    out_dir: str | Path,
    held_out: Sequence[str] = (),
    init_weights: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
    seed: int | None = None,
    run_name: str | None = None,
    group: str | None = None,
    job_type: str | None = None,
    keep_checkpoint: bool = True,
    enable_progress: bool | None = None,
) -> StageResult:
    """Train one stage ('pretrain' on macro rows, 'finetune' on micro rows minus `held_out`) and load its best weights.

    `init_weights` is a checkpoint to start from; in fine-tuning its classifier is skipped, everything else must fit.
    The best epoch is chosen on validation subjects from the training side; without them, the last epoch is kept.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage_cfg: StageConfig = getattr(cfg.train, stage)
    seed = cfg.seed if seed is None else seed
    pl.seed_everything(seed, workers=True, verbose=False)
    configure_torch(cfg.train.threads, cfg.train.tf32)
    dm = MERDataModule(prepared, cfg, stage=stage, held_out=held_out)
    precision, channels_last = resolve_precision(cfg.train, *trainer_on_cuda(cfg.train))  # "auto" → per device
    module = MERModule.from_config(cfg.model, stage_cfg, cfg.data.image_size, channels_last)
    if init_weights is not None:
        load_weights(module.net, init_weights, strict=True, skip_head=(stage == "finetune"))
    if cfg.train.compile:
        module.net.model = torch.compile(module.net.model)

    has_val = len(dm.val_df) > 0
    monitor = ("val/acc" if stage == "pretrain" else "val/uf1") if has_val else None
    cbs: list[Callback] = list(callbacks)
    # Without validation the last epoch is kept, and the module holds it when fit returns: a checkpoint that is not
    # kept would only be written every epoch and read back once (~7 % of a demo fold's training).
    ckpt = (
        ModelCheckpoint(
            dirpath=str(out_dir / "checkpoints"),
            filename="best",
            monitor=monitor,
            mode="max",
            save_top_k=1,
            save_weights_only=True,
            enable_version_counter=False,
        )
        if monitor is not None or keep_checkpoint
        else None
    )
    if ckpt is not None:
        cbs.append(ckpt)
    if stage_cfg.unfreeze:
        cbs.append(GradualUnfreeze(stage_cfg.unfreeze, stage_cfg.unfreeze_lr_factor, stage_cfg.train_bn))
    if stage_cfg.patience > 0 and monitor:
        cbs.append(EarlyStopping(monitor=monitor, mode="max", patience=stage_cfg.patience))
    progress = cfg.logging.progress_bar if enable_progress is None else enable_progress
    trainer = pl.Trainer(
        max_epochs=stage_cfg.epochs,
        accelerator=cfg.train.accelerator,
        devices=cfg.train.devices,
        precision=precision,
        deterministic=cfg.train.deterministic,
        callbacks=cbs,
        logger=build_loggers(cfg, out_dir, run_name or f"{cfg.name}-{stage}", group, job_type),
        enable_progress_bar=progress,
        enable_checkpointing=ckpt is not None,
        enable_model_summary=False,
        log_every_n_steps=1,
        limit_train_batches=stage_cfg.limit_batches,
        num_sanity_val_steps=0,
        default_root_dir=str(out_dir),
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    seconds = time.perf_counter() - start
    if trainer.interrupted:
        raise KeyboardInterrupt
    best_path = Path(ckpt.best_model_path) if ckpt is not None and ckpt.best_model_path else None
    best_epoch = None
    if best_path is not None and best_path.is_file():
        payload = torch.load(best_path, map_location="cpu", weights_only=True)
        module.load_state_dict(payload["state_dict"])
        best_epoch = int(payload.get("epoch", -1))
    elif ckpt is None:  # the last epoch's weights are the module's own
        best_epoch = trainer.current_epoch - 1
    best_score = float(ckpt.best_model_score) if ckpt is not None and ckpt.best_model_score is not None else None
    if not keep_checkpoint and best_path is not None:
        best_path.unlink(missing_ok=True)
        best_path = None
    module.eval()
    return StageResult(module, dm, best_path, best_score, best_epoch, trainer.current_epoch, seconds, monitor)


@torch.inference_mode()
def embed_split(module: MERModule, dm: MERDataModule, split: str, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Embeddings, logits and softmax probabilities of a split, unaugmented, in row order."""
    module.eval()
    outs: dict[str, list[np.ndarray]] = {"embeddings": [], "logits": [], "probs": []}
    device = next(module.parameters()).device
    for x, _ in dm.eval_dataloader(split):
        res = module.predict_step(x.to(device), 0)
        for k in outs:
            outs[k].append(res[k].float().cpu().numpy())
    dim = module.net.embed_dim
    n_cls = module.net.num_classes
    empty = {"embeddings": np.zeros((0, dim)), "logits": np.zeros((0, n_cls)), "probs": np.zeros((0, n_cls))}
    return {k: np.concatenate(v) if v else empty[k] for k, v in outs.items()}


def run_pretrain(cfg: Config, out: str | Path, selection: dict[str, Any] | None = None) -> Path:
    """`mer pretrain`: macro-expression pre-training on `data.prepared`; writes best.ckpt, pretrained.pt and
    pretrain.json to `out`.

    `selection` records how the config's hyper-parameters were chosen (`mer.provenance`'s records; default
    `config_selection`: fixed, or unverified when `selected_by` names a study that this caller did not open); it goes
    into pretrained.pt, where `mer loso --pretrained` reads it to stamp its report."""
    out = Path(out)
    prepared = load_prepared(Path(cfg.data.prepared))
    check_scheme(cfg.data.prepared, cfg.data.classes)
    write_run_info(cfg, out)
    result = train_stage(cfg, prepared, "pretrain", out, run_name=f"{cfg.name}-pretrain", job_type="pretrain")
    finish_wandb()
    chosen = selection or config_selection(cfg)
    meta = {"stage": "pretrain", "config": cfg.name, CHECKPOINT_SELECTION: chosen}
    weights = save_weights(result.module.net, out / "pretrained.pt", meta)
    val_acc = result.best_score
    summary = {
        "weights": str(weights),
        "checkpoint": str(result.best_path) if result.best_path else None,
        "monitor": result.monitor,
        "best_val_acc": val_acc,
        "best_epoch": result.best_epoch,
        "epochs": result.epochs_run,
        "seconds": round(result.seconds, 1),
        "n_train": len(result.datamodule.train_df),
        "n_val": len(result.datamodule.val_df),
        "train_subjects": int(result.datamodule.train_df["subject"].nunique()),
        "val_subjects": sorted(result.datamodule.val_df["subject"].unique().tolist()),
        "stage": asdict(cfg.train.pretrain),
        "selection": chosen,
    }
    (out / "pretrain.json").write_text(json.dumps(summary, indent=2, default=str))
    shown = f"{val_acc:.3f}" if val_acc is not None else "n/a (no validation subjects)"
    print(f"pre-training done in {result.seconds:.0f} s: best macro validation accuracy {shown}; weights → {weights}")
    return weights


def check_pretrained(cfg: Config, path: str | Path | None) -> None:
    """Fail before any training if a pre-trained checkpoint is missing or built for another network."""
    if path is None:
        return
    net = build_net(cfg.model.backbone, cfg.model.in_chans, cfg.model.num_classes, 0.0, cfg.data.image_size)
    try:
        load_weights(net, path, strict=True, skip_head=True)
    except MerError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise MerError(
            f"{path}: cannot be loaded into {cfg.model.backbone} ({exc.__class__.__name__}: {exc})"
        ) from None
