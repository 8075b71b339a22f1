"""The LightningModule: one training step, validation with the course's metrics, and the optimiser.

The network predicts depth in a training unit (normalised, log, …); every metric decodes the
prediction to metres and compares with the untouched ground truth in metres (a published pitfall was
scoring in log space).
"""

from __future__ import annotations

import argparse
import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor

from mtl.data.classes import CLASS_NAMES
from mtl.data.transforms import normalize_rgb
from mtl.engine import schedule
from mtl.engine.callbacks import NonFiniteLoss
from mtl.engine.config import outputs_desc
from mtl.engine.visualize import grid, sample_row
from mtl.losses import TaskLoss, build_weighting, make_depth_unit
from mtl.metrics import DEPTH_METRIC_NAMES, DepthMetrics, SemsegMetrics, checkpoint_rank, grader_score, total_score
from mtl.models import build_model


def final(output: Tensor | list[Tensor]) -> Tensor:
    """The prediction of a task: the last element of a deep-supervision list."""
    return output[-1] if isinstance(output, (list, tuple)) else output


class MultiTaskModule(pl.LightningModule):
    def __init__(self, config: dict[str, Any], depth_mean: float, depth_std: float) -> None:
        super().__init__()
        # Plain types only, so checkpoints load with torch.load(weights_only=True).
        self.save_hyperparameters()
        self.cfg = argparse.Namespace(**config)
        self.tasks = tuple(self.cfg.tasks)
        self.depth_unit = make_depth_unit(self.cfg.depth_unit, depth_mean, depth_std)
        self.cfg.depth_target_range = self.depth_unit.range
        self.model = build_model(self.cfg, outputs_desc(self.cfg))
        if self.cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # Not registered as a submodule: the compiled wrapper would duplicate every key in the state dict.
        object.__setattr__(self, "net", torch.compile(self.model) if self.cfg.compile else self.model)
        self.task_losses = {t: TaskLoss(t, self.cfg.loss_depth, self.depth_unit) for t in self.tasks}
        self.weighting = build_weighting(
            self.cfg.loss_weighting, self.tasks, {t: getattr(self.cfg, f"loss_weight_{t}") for t in self.tasks}
        )
        self.semseg_metrics = SemsegMetrics()
        self.depth_metrics = DepthMetrics()
        self.observed: list[np.ndarray] = []
        self.observed_depth: list[tuple[Tensor, Tensor]] = []  # (GT, prediction) metres, for the histograms
        self.val_loss_sums: dict[str, Tensor] = {}
        self.csv_logger = None  # set by the trainer builder; its row count goes into checkpoints
        self.set_steps_per_epoch(1)

    def set_steps_per_epoch(self, steps: int) -> None:
        """Known once the data and the number of processes are: the step-unit schedule depends on it."""
        self.steps_per_epoch = steps
        self.segments = [schedule.Segment(0, self.schedule_length(self.cfg.num_epochs), 1.0)]

    # ----------------------------------------------------------------------------------- forward
    def forward(self, rgb: Tensor) -> dict[str, Tensor | list[Tensor]]:
        """uint8 (or float 0..255) RGB B×3×H×W → model outputs at input size, in training units."""
        x = normalize_rgb(rgb.float())
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    @torch.no_grad()
    def predict(self, rgb: Tensor) -> dict[str, Tensor]:
        """Semseg trainIds (B×H×W int64) and depth in metres (B×H×W float32) for a batch."""
        return self.decode_outputs(self(rgb))

    def decode_outputs(self, outputs: dict[str, Any]) -> dict[str, Tensor]:
        """Raw outputs → trainIds and metres (the final element of deep-supervision lists)."""
        result = {}
        if "semseg" in outputs:
            result["semseg"] = final(outputs["semseg"]).detach().argmax(1)
        if "depth" in outputs:
            result["depth"] = self.depth_unit.decode(final(outputs["depth"]).detach()[:, 0])
        return result

    def compute_losses(self, outputs: dict[str, Any], batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        losses = {t: self.task_losses[t](outputs[t], batch[t])[0] for t in self.tasks}
        shared = None if self.cfg.loss_weighting == "fixed" else list(self.model.parameters())
        return self.weighting(losses, shared), losses

    # ---------------------------------------------------------------------------------- training
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        outputs = self(batch["rgb"])
        total, losses = self.compute_losses(outputs, batch)
        if not torch.isfinite(total):
            raise NonFiniteLoss(
                f"loss_train/total is {total.item()} at epoch {self.current_epoch}, step {self.global_step} "
                f"({', '.join(f'{t}={v.item():.4g}' for t, v in losses.items())}); training stopped, "
                "the last good checkpoint is checkpoints/last.ckpt"
            )
        step = self.global_step
        if step % self.cfg.log_every_n_steps == 0:
            scalars = {"epoch": float(self.current_epoch), **{f"loss_train/{t}": v.item() for t, v in losses.items()}}
            scalars["loss_train/total"] = total.item()
            scalars["LR"] = self.optimizers().param_groups[0]["lr"]
            scalars.update({f"loss_weight/{t}": float(w) for t, w in self.weighting.weights.items()})
            self.log_scalars(scalars, step)
        first, interval = self.cfg.num_steps_visualization_first, self.cfg.num_steps_visualization_interval
        if step == first or (interval > 0 and step % interval == 0):
            self.log_batch_crops(batch, outputs, step)
        return total

    # -------------------------------------------------------------------------------- validation
    def on_validation_epoch_start(self) -> None:
        self.observed = []
        self.observed_depth = []
        self.val_loss_sums = {}

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        outputs = self(batch["rgb"])
        total, losses = self.compute_losses(outputs, batch)
        n = batch["rgb"].shape[0]
        for key, value in {**losses, "total": total}.items():
            self.val_loss_sums[key] = self.val_loss_sums.get(key, 0) + value.detach().double() * n
        self.val_loss_sums["count"] = self.val_loss_sums.get("count", 0) + torch.tensor(n, device=self.device)
        pred = self.decode_outputs(outputs)
        if "semseg" in pred:
            self.semseg_metrics.update(pred["semseg"], batch["semseg"])
        if "depth" in pred:
            self.depth_metrics.update(pred["depth"], batch["depth"])
        observe = set(self.cfg.observe_valid_ids)
        for i, index in enumerate(batch["index"].tolist()):
            if index in observe:
                self.observed.append(self.row(batch, pred, i))
                if "depth" in pred:
                    self.observed_depth.append((batch["depth"][i].cpu(), pred["depth"][i].float().cpu()))

    def row(self, batch: dict[str, Tensor], pred: dict[str, Tensor], i: int) -> np.ndarray:
        pick = lambda d, k: d[k][i] if k in d else None  # noqa: E731
        return sample_row(
            batch["rgb"][i], pick(batch, "semseg"), pick(pred, "semseg"), pick(batch, "depth"), pick(pred, "depth")
        )

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self.semseg_metrics.reset()
            self.depth_metrics.reset()
            return
        scalars = self.validation_scalars()
        # best.ckpt: highest grader; ties (e.g. a grader of 0 early in training) go to the higher total.
        rank = checkpoint_rank(scalars["metrics_summary/grader"], scalars["metrics_summary/total"])
        self.log("checkpoint_rank", rank, logger=False, sync_dist=False)
        self.log("metrics_summary/grader", scalars["metrics_summary/grader"], logger=False, sync_dist=False)
        self.log_scalars(scalars, self.global_step)
        if self.trainer.is_global_zero:
            parts = [f"epoch {self.current_epoch}", f"grader {scalars['metrics_summary/grader']:.2f}"]
            if "semseg" in self.tasks:
                parts.append(f"mIoU {scalars['metrics_summary/semseg']:.2f}")
            if "depth" in self.tasks:
                parts.append(f"SI-logRMSE {scalars['metrics_summary/depth']:.2f}")
            self.print(" | ".join(parts))
        self.log_observed()

    def validation_scalars(self) -> dict[str, float]:
        """All validation scalars with the course's TensorBoard tags (metrics reduced over processes)."""
        scalars: dict[str, float] = {"epoch": float(self.current_epoch)}
        sums = {k: self.all_reduce_sum(v) for k, v in self.val_loss_sums.items()}
        count = float(sums.pop("count", 1))
        scalars.update({f"loss_val/{k}": float(v) / count for k, v in sums.items()})
        miou, si = 50.0, 50.0  # a task that is not trained contributes 0 to the grader
        if "semseg" in self.tasks:
            result = self.semseg_metrics.compute()
            miou = float(result["miou"])
            scalars["metrics_summary/semseg"] = miou
            for name, iou in zip(CLASS_NAMES, result["iou_per_class"].tolist()):
                scalars[f"metrics_task_semseg/{name.replace(' ', '_')}"] = iou
            self.semseg_metrics.reset()
        if "depth" in self.tasks:
            result = self.depth_metrics.compute()
            si = float(result["si_log_rmse"])
            scalars["metrics_summary/depth"] = si
            scalars.update({f"metrics_task_depth/{k}": float(result[k]) for k in DEPTH_METRIC_NAMES})
            self.depth_metrics.reset()
        scalars["metrics_summary/grader"] = grader_score(miou, si)
        scalars["metrics_summary/total"] = total_score(miou, si)
        return scalars

    def all_reduce_sum(self, value: Tensor | float) -> Tensor:
        value = torch.as_tensor(value, device=self.device, dtype=torch.float64)
        return self.trainer.strategy.reduce(value, reduce_op="sum") if self.trainer.world_size > 1 else value

    # ----------------------------------------------------------------------------------- logging
    def log_scalars(self, scalars: dict[str, float], step: int) -> None:
        """Straight to every logger, at once: rows must exist before a checkpoint taken right after."""
        for logger in self.loggers:
            logger.log_metrics(scalars, step=step)

    def tensorboard(self) -> Any | None:
        from pytorch_lightning.loggers import TensorBoardLogger

        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger) and self.trainer.is_global_zero:
                return logger.experiment
        return None

    def log_batch_crops(self, batch: dict[str, Tensor], outputs: dict[str, Any], step: int) -> None:
        writer = self.tensorboard()
        if writer is None:
            return
        pred = self.decode_outputs(outputs)
        n = min(self.cfg.visualize_num_samples_in_batch, batch["rgb"].shape[0])
        picture = grid([self.row(batch, pred, i) for i in range(n)])
        writer.add_image("train/batch_crops", picture, step, dataformats="HWC")

    def log_observed(self) -> None:
        writer = self.tensorboard()
        if writer is None:
            return
        step = self.global_step
        if self.observed:
            writer.add_image("valid/observed_samples", grid(self.observed), step, dataformats="HWC")
            if self.observed_depth:
                self.log_depth_histograms(writer, step)
        train = self.trainer.datamodule.train_dataset.base
        ids = [i for i in self.cfg.observe_train_ids if i < len(train)]
        if ids:
            batch = torch.utils.data.default_collate([train[i] for i in ids])
            pred = self.predict(batch["rgb"].to(self.device))
            rows = [self.row(batch, {k: v.cpu() for k, v in pred.items()}, i) for i in range(len(ids))]
            writer.add_image("train/observed_samples", grid(rows), step, dataformats="HWC")

    def log_depth_histograms(self, writer: Any, step: int) -> None:
        """GT and predicted depth of the observed validation samples, in metres and in the training unit."""
        gt_m = torch.stack([gt for gt, _ in self.observed_depth])
        pred_m = torch.stack([pred for _, pred in self.observed_depth])
        valid = torch.isfinite(gt_m)
        writer.add_histogram("depth_histogram/gt_metres", gt_m[valid], step)
        writer.add_histogram("depth_histogram/pred_metres", pred_m, step)
        writer.add_histogram("depth_histogram/gt_unit", self.depth_unit.encode(gt_m[valid]), step)
        writer.add_histogram("depth_histogram/pred_unit", self.depth_unit.encode(pred_m), step)

    # ------------------------------------------------------------------------------ optimisation
    def schedule_length(self, num_epochs: int) -> int:
        return num_epochs * (self.steps_per_epoch if self.cfg.lr_scheduler_step_unit == "step" else 1)

    def configure_optimizers(self) -> dict[str, Any]:
        cfg = self.cfg
        # Learned loss weights (e.g. uncertainty) get no weight decay: it would pull them back to a fixed value.
        groups = [{"params": list(self.model.parameters())}]
        if list(self.weighting.parameters()):
            groups.append({"params": list(self.weighting.parameters()), "weight_decay": 0.0})
        if cfg.optimizer == "sgd":
            optimizer = torch.optim.SGD(
                groups, lr=cfg.optimizer_lr, momentum=cfg.optimizer_momentum, weight_decay=cfg.optimizer_weight_decay
            )
        elif cfg.optimizer == "adam":
            optimizer = torch.optim.Adam(groups, lr=cfg.optimizer_lr, weight_decay=cfg.optimizer_weight_decay)
        else:
            optimizer = torch.optim.AdamW(groups, lr=cfg.optimizer_lr, weight_decay=cfg.optimizer_weight_decay)
        segments, power, warmup = self.segments, cfg.lr_scheduler_power, cfg.lr_warmup
        constant = cfg.lr_scheduler == "constant"

        def factor(index: int) -> float:
            warm = (index + 1) / (warmup + 1) if index < warmup else 1.0
            return warm if constant else schedule.poly_factor(index, segments, power, warmup)

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": cfg.lr_scheduler_step_unit},
        }

    def on_train_start(self) -> None:
        """Re-evaluate the schedule at the restored position: a resumed run whose schedule was extended
        (--num_epochs raised) must not keep the learning rate computed with the old end (e.g. 0)."""
        scheduler = self.lr_schedulers()
        for group, base, factor in zip(self.optimizers().param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
            group["lr"] = base * factor(scheduler.last_epoch)
        scheduler._last_lr = [group["lr"] for group in self.optimizers().param_groups]

    # ---------------------------------------------------------------------------- checkpointing
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Add what Lightning does not keep: RNG states, the schedule's segments, the data position."""
        checkpoint["mtl"] = {
            "rng_torch": torch.get_rng_state(),
            "rng_numpy": _numpy_state_to_plain(np.random.get_state()),
            "rng_python": random.getstate(),
            "schedule_segments": schedule.to_state(self.segments),
            "epoch": self.current_epoch,
            "global_step": self.global_step,
            "batches_done": self.trainer.fit_loop.epoch_loop.batch_progress.current.processed,
            "csv_rows": len(self.csv_logger.rows) if self.csv_logger is not None else 0,
        }
        if self.csv_logger is not None:
            self.csv_logger.save()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["mtl"]
        torch.set_rng_state(state["rng_torch"])
        np.random.set_state(_numpy_state_from_plain(state["rng_numpy"]))
        random.setstate(_as_tuple(state["rng_python"]))
        self.segments = schedule.from_state(state["schedule_segments"])
        if self.cfg.lr_scheduler_step_unit == "step":
            resume_index = state["epoch"] * self.steps_per_epoch + state["batches_done"]
        else:
            resume_index = state["epoch"] + int(state["batches_done"] >= self.steps_per_epoch)
        self.segments = schedule.extend(
            self.segments, resume_index, self.schedule_length(self.cfg.num_epochs), self.cfg.lr_scheduler_power
        )
        self.resume_state = state


def _numpy_state_to_plain(state: tuple) -> tuple:
    name, keys, pos, has_gauss, cached = state
    return (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached)


def _numpy_state_from_plain(state: tuple) -> tuple:
    name, keys, pos, has_gauss, cached = state
    return (name, keys.numpy().astype(np.uint32), pos, has_gauss, cached)


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
