"""The LightningModule: one training step, validation with each task's metrics, and the optimiser.

The network predicts in training units (normalised depth, logits, …); each task decodes predictions into
its own units (class ids, metres, …) and scores them against the untouched ground truth (a published
pitfall was scoring depth in log space). The weighting method owns the backward pass, so optimisation is
written out here (Lightning's manual optimisation) rather than left to the trainer.

Gradient accumulation (``--accumulate_grad_batches N``) is done here too: the batches of an epoch form
windows of N (the last may be shorter), gradients are zeroed at a window's first batch, the method is told
how many batches the window holds and which is its last (where it combines what it accumulated), and the
optimiser and a step-unit schedule step once per window. A checkpoint taken inside a window keeps the
gradients accumulated so far, so a run resumed from it continues the same window.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from mtl.datasets import DatasetLayout
from mtl.engine import schedule
from mtl.engine.optim import build_optimizer, build_scheduler
from mtl.engine.representation import RepresentationCapture
from mtl.errors import RunSetupError
from mtl.inference.predictor import Predictor
from mtl.optimization import OptimizerOptions, ScheduleOptions
from mtl.weighting import Weighting
from mtl.weighting.base import StepContext


class NonFiniteLoss(RuntimeError):
    """A training loss became NaN or infinite; raised before the optimiser step, so the weights are still good."""


class MultiTaskModule(pl.LightningModule):
    def __init__(
        self,
        predictor: Predictor,
        weighting: Weighting,
        dataset: DatasetLayout,
        optimizer: OptimizerOptions,
        schedule_options: ScheduleOptions,
        hparams: dict[str, Any],
        log_every_n_steps: int = 10,
        accumulate_grad_batches: int = 1,
        grad_scaler: torch.amp.GradScaler | None = None,
    ) -> None:
        """``grad_scaler``: the one the trainer's precision plugin scales fp16 losses with (16-mixed), else None."""
        super().__init__()
        self.automatic_optimization = False  # the weighting method owns the backward pass
        # Plain values (the run's flags and the tasks' measured state), in every checkpoint: weights_only loading.
        self.save_hyperparameters(hparams)
        self.predictor = predictor
        self.tasks = predictor.tasks
        self.weighting = weighting
        # Learned task weights (e.g. uncertainty) move, train and are saved with the model.
        self.weighting_parameters = nn.ParameterDict(weighting.parameters())
        self.metrics = nn.ModuleDict({name: task.metric(predictor.protocol) for name, task in self.tasks.items()})
        self.dataset = dataset
        self.optimizer_options = optimizer
        self.schedule_options = schedule_options
        self.log_every_n_steps = log_every_n_steps
        self.grad_scaler = grad_scaler
        self.resume_index: int | None = None  # scheduler index a resumed run continues from
        self.val_loss_sums: dict[str, Tensor] = {}
        self.accumulate = accumulate_grad_batches
        weighting.check_accumulation(self.accumulate)
        self.epoch_position = (-1, 0)  # (epoch, batches of it done): where accumulation windows start
        self.pending_grads: dict[str, Tensor] | None = None  # a mid-window checkpoint's gradients
        try:
            self.representation = (
                RepresentationCapture(predictor.model, self.shared_parameters()) if weighting.wants_representation else None
            )
        except ValueError as exc:  # the model has no single cut between shared and task-specific layers
            raise RunSetupError(str(exc)) from exc
        self.set_steps_per_epoch(1)

    def set_steps_per_epoch(self, batches: int) -> None:
        """Known once the data and the number of processes are: the step-unit schedule depends on it.
        ``batches`` per process and epoch; with accumulation the epoch has ⌈batches / N⌉ optimiser steps."""
        self.batches_per_epoch = batches
        self.steps_per_epoch = math.ceil(batches / self.accumulate)
        self.segments = [schedule.Segment(0, self.schedule_options.length(self.steps_per_epoch), 1.0)]

    def forward(self, rgb: Tensor) -> dict[str, Tensor | list[Tensor]]:
        return self.predictor(rgb)

    def task_losses(self, outputs: dict[str, Any], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Each task's loss, outside autocast: whatever precision the network ran in (bf16, fp16), losses are fp32
        arithmetic (under autocast even a float32 matmul would run in half precision)."""
        with torch.autocast(self.device.type, enabled=False):
            return {name: task.loss(outputs[name], batch[name]) for name, task in self.tasks.items()}

    def shared_parameters(self) -> list[nn.Parameter]:
        """The parameters every task's loss reaches (the encoder); a model may say which, else all are."""
        model = self.predictor.model
        return list(model.shared_parameters() if hasattr(model, "shared_parameters") else model.parameters())

    # ---------------------------------------------------------------------------------- training
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Any]:
        optimizer, scheduler = self.optimizers(), self.lr_schedulers()
        step, lr = self.global_step, optimizer.param_groups[0]["lr"]
        first, last, size = self.accumulation_window()
        with self.representation.capturing() if self.representation else contextlib.nullcontext(()) as representation:
            outputs = self(batch["rgb"])
        losses = self.task_losses(outputs, batch)
        if first:
            optimizer.zero_grad()
        self.restore_pending_grads()
        context = StepContext(
            parameters=[p for p in self.predictor.parameters() if p.requires_grad], representation=representation,
            micro_batches=size, last=last, epoch=self.current_epoch, loss_scale=self.loss_scale(),
        )
        with torch.autocast(self.device.type, enabled=False):  # a method combines in fp32, as the losses are
            total = self.weighting.backward(losses, self.shared_parameters(), self.manual_backward, context)
        if not torch.isfinite(total):
            parts = ", ".join(f"{t}={v.item():.4g}" for t, v in losses.items())
            raise NonFiniteLoss(f"loss_train/total is {total.item()} at epoch {self.current_epoch}, step {step} ({parts})")
        if last:
            optimizer.step()
            if self.schedule_options.unit == "step":
                scheduler.step()
            if self.weighting.needs_losses_after_step:
                self.weighting.after_step(self.losses_after_step(batch))
        self.log("loss", total, prog_bar=True, logger=False)  # shown in the progress bar
        if last and step % self.log_every_n_steps == 0:
            scalars = {"epoch": float(self.current_epoch), **{f"loss_train/{t}": v.item() for t, v in losses.items()}}
            scalars["loss_train/total"] = total.item()
            scalars["LR"] = lr
            scalars.update({f"loss_weight/{t}": float(w) for t, w in self.weighting.weights.items()})
            self.log_scalars(scalars, step)
        return {"outputs": outputs}  # for the pictures of training crops (mtl.engine.pictures)

    def accumulation_window(self) -> tuple[bool, bool, int]:
        """(first batch of its window, last batch, batches in the window) for the batch about to be trained on."""
        epoch, done = self.epoch_position
        if epoch != self.current_epoch:
            epoch, done = self.current_epoch, 0
        self.epoch_position = (epoch, done + 1)
        start = done - done % self.accumulate
        size = max(1, min(self.accumulate, self.batches_per_epoch - start))
        return done == start, done + 1 >= start + size, size

    def loss_scale(self) -> float:
        """The GradScaler's current factor under 16-mixed precision (gradient methods divide it out), else 1."""
        if self.grad_scaler is None:
            return 1.0
        # The scaler creates its scale on its first scale() call. A gradient method on the parameters writes .grad
        # itself (already multiplied by this factor) and never calls backward(), so without this the optimiser
        # step's unscale_ finds no scale and stops the run.
        self.grad_scaler.scale(torch.zeros((), device=self.device))
        return float(self.grad_scaler.get_scale())

    def losses_after_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """The same batch's losses with the updated weights (FAMO): no gradient, normalisation statistics kept."""
        buffers = [b.detach().clone() for b in self.predictor.buffers()]
        with torch.no_grad():
            losses = {t: v.detach() for t, v in self.task_losses(self(batch["rgb"]), batch).items()}
            for buffer, saved in zip(self.predictor.buffers(), buffers):
                buffer.copy_(saved)
        return losses

    def restore_pending_grads(self) -> None:
        if self.pending_grads is None:
            return
        for name, p in self.named_parameters():
            if name in self.pending_grads:
                p.grad = self.pending_grads[name].to(p)
        self.pending_grads = None

    def on_train_epoch_end(self) -> None:
        # After the callbacks' epoch-end hooks: last.ckpt holds the epoch's final scheduler state.
        if self.schedule_options.unit == "epoch":
            self.lr_schedulers().step()

    # -------------------------------------------------------------------------------- validation
    def on_validation_epoch_start(self) -> None:
        self.val_loss_sums = {}
        if self.trainer.world_size > 1:
            # DDP broadcasts buffers (BatchNorm statistics) from process 0 before a forward pass only when the
            # previous one ended outside a backward pass; with the backward inside the training step it never
            # does, so every process would validate with its own statistics. Validate with process 0's, which
            # are also the ones checkpoints hold.
            for buffer in self.predictor.buffers():
                torch.distributed.broadcast(buffer, src=0)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        outputs = self(batch["rgb"])
        losses = self.task_losses(outputs, batch)
        total = self.weighting.loss(losses)
        n = batch["rgb"].shape[0]
        for key, value in {**losses, "total": total}.items():
            self.val_loss_sums[key] = self.val_loss_sums.get(key, 0) + value.detach().double() * n
        self.val_loss_sums["count"] = self.val_loss_sums.get("count", 0) + torch.tensor(n, device=self.device)
        predictions = self.predictor.decode(outputs)
        for name, metric in self.metrics.items():
            metric.update(predictions[name], batch[name])
        return predictions

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            for metric in self.metrics.values():
                metric.reset()
            return
        scalars = self.validation_scalars()
        self.log("checkpoint_rank", scalars.pop("checkpoint_rank"), logger=False, sync_dist=False)
        headline = f"metrics_summary/{self.dataset.headline}"
        self.log(headline, scalars[headline], logger=False, sync_dist=False)
        self.log_scalars(scalars, self.global_step)
        if self.trainer.is_global_zero:
            parts = [f"epoch {self.current_epoch}", f"{self.dataset.headline} {scalars[headline]:.2f}"]
            parts += [f"{task.summary_label} {scalars[f'metrics_summary/{name}']:.2f}" for name, task in self.tasks.items()]
            self.print(" | ".join(parts))

    def validation_scalars(self) -> dict[str, float]:
        """All validation scalars by TensorBoard tag (reduced over processes): each task's ``scalars`` and its
        ``summary`` as ``metrics_summary/<task>``, the dataset's scores, and the checkpoint rank."""
        scalars: dict[str, float] = {"epoch": float(self.current_epoch)}
        sums = {k: self.all_reduce_sum(v) for k, v in self.val_loss_sums.items()}
        count = float(sums.pop("count", 1))
        scalars.update({f"loss_val/{k}": float(v) / count for k, v in sums.items()})
        summary = {}
        for name, task in self.tasks.items():
            result = self.metrics[name].compute()
            scalars.update(task.scalars(result))
            summary[name] = task.summary(result)  # the task's own summary: its scalars need not hold it
            scalars[f"metrics_summary/{name}"] = summary[name]
            self.metrics[name].reset()
        scores = self.dataset.scores(summary, {name: task.higher_is_better for name, task in self.tasks.items()})
        scalars.update({f"metrics_summary/{k}": v for k, v in scores.items()})
        scalars["checkpoint_rank"] = self.dataset.checkpoint_rank(scores)
        return scalars

    def all_reduce_sum(self, value: Tensor | float) -> Tensor:
        value = torch.as_tensor(value, device=self.device, dtype=torch.float64)
        return self.trainer.strategy.reduce(value, reduce_op="sum") if self.trainer.world_size > 1 else value

    def log_scalars(self, scalars: dict[str, float], step: int) -> None:
        """Straight to every logger, at once: rows must exist before a checkpoint taken right after."""
        for logger in self.loggers:
            logger.log_metrics(scalars, step=step)

    # ------------------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> dict[str, Any]:
        # Learned loss weights get no weight decay: it would pull them back to a fixed value.
        groups = [{"params": list(self.predictor.parameters())}]
        if len(self.weighting_parameters):
            groups.append({"params": list(self.weighting_parameters.values()), "weight_decay": 0.0})
        optimizer = build_optimizer(groups, self.optimizer_options)
        scheduler = build_scheduler(optimizer, self.schedule_options, self.segments)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": self.schedule_options.unit}}

    def on_train_start(self) -> None:
        """Put the schedule at the restored position and re-evaluate it there: an epoch-end checkpoint is taken
        before that epoch's scheduler step, and a resumed run whose schedule was extended (--num_epochs raised)
        must not keep the learning rate computed with the old end (e.g. 0)."""
        scheduler = self.lr_schedulers()
        index = scheduler.last_epoch if self.resume_index is None else self.resume_index
        if self.resume_index is not None:
            # A restored optimiser brings the learning rate it was created with; a resumed run allowed to change
            # --optimizer_lr (--allow_changed_code) must use the new one.
            scheduler.base_lrs = [self.optimizer_options.lr for _ in scheduler.base_lrs]
        # step() advances to ``index`` and sets each group's rate to base × factor(index) (and get_last_lr()).
        scheduler.last_epoch = index - 1
        scheduler.step()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # A weights-only checkpoint (best.ckpt) still says when it was taken; full ones have ResumeState's record.
        checkpoint.setdefault("mtl", {"epoch": self.current_epoch, "global_step": self.global_step})
        checkpoint["schedule_segments"] = schedule.to_state(self.segments)
        checkpoint["weighting_state"] = self.weighting.state_dict()
        epoch, done = self.epoch_position
        if epoch == self.current_epoch and done % self.accumulate and done < self.batches_per_epoch:
            # Inside an accumulation window: keep what its first batches contributed.
            checkpoint["accumulated_grads"] = {
                name: p.grad.detach().clone() for name, p in self.named_parameters() if p.grad is not None
            }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the weighting's state, and continue the poly decay to the current --num_epochs from where
        the run stopped (``checkpoint["mtl"]``: its position, see ResumeState)."""
        self.weighting.load_state_dict(checkpoint.get("weighting_state", {}))
        epoch, batches_done = checkpoint["mtl"]["epoch"], checkpoint["mtl"]["batches_done"]
        self.epoch_position = (epoch, batches_done)
        self.pending_grads = checkpoint.get("accumulated_grads")
        if self.schedule_options.unit == "step":
            windows = self.steps_per_epoch if batches_done >= self.batches_per_epoch else batches_done // self.accumulate
            self.resume_index = epoch * self.steps_per_epoch + windows
        else:
            self.resume_index = epoch + int(batches_done >= self.batches_per_epoch)
        self.segments = schedule.extend(
            schedule.from_state(checkpoint["schedule_segments"]),
            self.resume_index,
            self.schedule_options.length(self.steps_per_epoch),
            self.schedule_options.power,
        )
