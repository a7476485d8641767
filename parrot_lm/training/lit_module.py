"""LitLM: the LightningModule around the plain-torch GPT: steps, metrics, optimizers."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from parrot_lm.evaluation.perplexity import TokenNLL
from parrot_lm.model import GPT, GPTConfig
from parrot_lm.optim import build_optimizer, build_scheduler
from parrot_lm.training.flops import flops_per_token, peak_flops
from parrot_lm.training.loggers import purges_on_resume

log = logging.getLogger(__name__)


class LitLM(L.LightningModule):
    """Hyperparameters are plain dicts so checkpoints load with `weights_only=True`."""

    def __init__(
        self,
        model: dict[str, Any],
        optim: dict[str, Any],
        total_steps: int,
        nonfinite_loss: str = "stop",
        identity: dict[str, str] | None = None,
    ) -> None:
        # identity: the data and tokenizer digests (runs/identity.py), kept in every checkpoint.
        super().__init__()
        self.save_hyperparameters()
        self.model = GPT(GPTConfig(**model))
        self.optim_cfg = optim
        self.total_steps = total_steps
        self.nonfinite_loss = nonfinite_loss
        self.tokens_seen = 0  # training tokens consumed, saved in checkpoints
        self.val_nll = TokenNLL()  # the metric scripts/evaluate.py uses
        self._last_log_time: float | None = None
        self._flops_per_token = flops_per_token(self.model.cfg)
        self._peak_flops: float | None = None
        self._tokens_since_log = 0
        self._finite_batches = 0  # micro-batches with a finite loss since the last step
        self._step_loss_sum: torch.Tensor | None = None  # their summed losses (detached)
        self.last_validation: dict[str, Any] | None = None  # {"step", "metrics"}, checkpointed
        # The same, read from the run's logs when a resume's checkpoint was saved before its
        # step's validation (training/run.py): logged again in on_train_start.
        self.logged_validation: dict[str, Any] | None = None
        self._align_log_step = False
        # This optimizer step's (loss, lr, grad norm) when not yet logged (on_train_batch_end).
        self._unlogged_step: tuple[torch.Tensor | None, float, torch.Tensor] | None = None

    def on_fit_start(self) -> None:
        """The peak MFU is measured against: this device's, in the dtype training computes in."""
        bf16 = str(self.trainer.precision).startswith("bf16")
        dtype = torch.bfloat16 if bf16 and self.device.type == "cuda" else torch.float32
        peak = peak_flops(self.device, dtype)
        self._peak_flops = peak.flops
        log.info("train/mfu is against %.1f GFLOP/s per device (%s)", peak.flops / 1e9, peak.source)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(idx)

    def _loss(self, x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        logits = self.model(x)  # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction=reduction)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        loss = self._loss(x, y)
        finite = torch.isfinite(loss.detach())
        if self.trainer.world_size > 1:  # one decision for every rank, or DDP's all-reduce hangs
            finite = self.trainer.strategy.reduce(finite.float(), reduce_op="min")
        if not finite:
            where = f"at step {self.global_step} (batch {batch_idx} of epoch {self.current_epoch})"
            message = (
                f"The training loss became {loss.item()} {where}"
                if not torch.isfinite(loss)
                else f"The training loss became non-finite on another rank {where}"
            )
            if self.nonfinite_loss == "skip":
                log.warning("%s; skipping this batch (nonfinite_loss=skip).", message)
                if self.trainer.world_size == 1:
                    return None
                # Lightning refuses None under DDP: every rank backpropagates a zero through
                # every weight instead (zero gradients, even for a NaN weight), so the
                # gradient all-reduce still happens.
                zero = sum((p * 0.0).sum() for p in self.parameters() if p.requires_grad)
                return torch.nan_to_num(zero, nan=0.0, posinf=0.0, neginf=0.0)
            raise FloatingPointError(
                f"{message}; the last good checkpoint is kept. Lower optim.lr, check the data, "
                "or set nonfinite_loss=skip."
            )
        self._finite_batches += 1
        self.tokens_seen += x.numel() * self.trainer.world_size
        self._tokens_since_log += x.numel() * self.trainer.world_size
        # Summed every step (logged on the log steps, or at a stop: on_train_batch_end).
        detached = loss.detach()
        self._step_loss_sum = (
            detached if self._step_loss_sum is None else self._step_loss_sum + detached
        )
        return loss

    def _logs_this_step(self) -> bool:
        """Whether Lightning hands this step's metrics to the loggers (the step it would log).

        Logging only then keeps `self.log`'s bookkeeping off the other steps: on the tiny CPU
        model it cost ~5% of the step time.
        """
        every = self.trainer.log_every_n_steps
        return every > 0 and (self.global_step + 1) % every == 0

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Called once per optimizer step after accumulation, before any clipping.
        if self._finite_batches == 0:  # every micro-batch was skipped: no update at all, on
            for p in self.parameters():  # every rank (zero gradients would still decay and
                p.grad = None  # move the weights by momentum; AdamW skips grad-less ones)
        finite_batches, self._finite_batches = self._finite_batches, 0
        clip = self.optim_cfg.get("grad_clip")
        max_norm = float(clip) if clip else math.inf
        norm = torch.nn.utils.clip_grad_norm_(self.parameters(), max_norm)
        # Every micro-batch holds the same number of tokens, so the mean of their mean losses
        # is the mean token NLL of the optimizer step.
        step_loss = None
        if self._step_loss_sum is not None:
            step_loss = self._step_loss_sum / max(finite_batches, 1)
        self._step_loss_sum = None
        self._unlogged_step = (step_loss, optimizer.param_groups[0]["lr"], norm)
        if self._logs_this_step():
            self._log_step(*self._unlogged_step)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """A run that stops at a step Lightning would not log (a signal, or trainer.max_steps
        off the log cadence) still has its metrics handed to the loggers at that step, and
        Lightning's are then those of the last logged step: log this step's own instead. (The
        callbacks that set should_stop run before this hook, Lightning's logging after it.)"""
        if self.trainer.should_stop and self._unlogged_step is not None:
            self._log_step(*self._unlogged_step)
        self._unlogged_step = None

    def _log_step(self, step_loss: torch.Tensor | None, lr: float, norm: torch.Tensor) -> None:
        """This optimizer step's training metrics; sync_dist averages the loss over ranks."""
        self._unlogged_step = None
        if step_loss is not None:
            self.log("train/loss", step_loss, prog_bar=True, sync_dist=True)
        self.log("train/tokens", float(self.tokens_seen))
        self.log("train/lr", lr)
        self.log("train/grad_norm", norm)
        # Once per optimizer step (training_step runs once per accumulated micro-batch).
        now = time.perf_counter()
        if self._last_log_time is not None:
            rate = self._tokens_since_log / max(now - self._last_log_time, 1e-9)
            self.log("train/tokens_per_sec", rate, prog_bar=True)
            if self._peak_flops:  # model FLOPs utilisation against the measured peak
                peak = self._peak_flops * self.trainer.world_size
                self.log("train/mfu", rate * self._flops_per_token / peak)
        self._last_log_time, self._tokens_since_log = now, 0

    def optimizer_step(
        self,
        epoch: int,
        batch_idx: int,
        optimizer: torch.optim.Optimizer,
        optimizer_closure: Any = None,
    ) -> None:
        optimizer.step(closure=optimizer_closure)
        # Free the gradients right after the step, as a hand-written loop does, rather than
        # just before the next backward (Lightning's default, see optimizer_zero_grad): the
        # next forward then runs without the old gradients held, which made a tiny-model CPU
        # step ~6% faster (make bench, ParrotLM vs a bare loop: 0.93 -> 0.99).
        optimizer.zero_grad(set_to_none=True)

    def optimizer_zero_grad(self, epoch: int, batch_idx: int, optimizer: Any) -> None:
        """Nothing to do: optimizer_step already freed the gradients."""

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch  # y: IGNORE where a strided window re-reads context it scored before
        self.val_nll.update(self.model(x), y)

    def val_metric_names(self) -> tuple[str, str]:
        """("val/loss", "val/ppl") when validation scores the whole val split;
        ("val/loss_partial", "val/ppl_partial") when trainer.limit_val_batches cuts it short, so
        a partial figure is never mistaken for the split's."""
        return val_metric_names(self.trainer)

    def on_validation_epoch_end(self) -> None:
        mean_nll = self.val_nll.compute()
        loss_name, ppl_name = self.val_metric_names()
        # compute() already summed over ranks: every rank holds the same value.
        self.log(loss_name, mean_nll, prog_bar=True, rank_zero_only=True, logger=False)
        self.log(ppl_name, torch.exp(mean_nll), rank_zero_only=True, logger=False)
        if not self.trainer.sanity_checking and self.trainer.is_global_zero:
            # At the optimizer step the weights are from (Lightning's own logging would put a
            # validation inside fit one step earlier on the x-axis than one before it).
            metrics = {loss_name: float(mean_nll), ppl_name: math.exp(float(mean_nll))}
            for logger in self.loggers:
                logger.log_metrics(metrics, step=self.global_step)
            self.last_validation = {"step": self.global_step, "metrics": metrics}
        if not self.trainer.sanity_checking:
            log.info(
                "step %d: %s %.4f, %s %.2f, %s tokens seen",
                self.global_step,
                loss_name,
                float(mean_nll),
                ppl_name,
                math.exp(float(mean_nll)),
                f"{self.tokens_seen:,}",
            )
        self.val_nll.reset()

    def configure_optimizers(self):
        optimizer = build_optimizer(self.model, self.optim_cfg)
        scheduler = build_scheduler(optimizer, self.optim_cfg, self.total_steps)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """See on_train_start: Lightning counts a checkpoint saved at the end of a step's batch
        on restart, but not one saved after that step's validation; both end up here."""
        if self._align_log_step:
            self.trainer.fit_loop.epoch_loop._batches_that_stepped = self.global_step
            self._align_log_step = False

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["tokens_seen"] = self.tokens_seen
        if self.last_validation is not None:
            checkpoint["last_validation"] = self.last_validation

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.tokens_seen = int(checkpoint.get("tokens_seen", 0))
        self.last_validation = checkpoint.get("last_validation")

    def on_train_start(self) -> None:
        """On a resume, put the loggers' step axis and history where the checkpoint left them.

        Lightning saves a checkpoint inside a step, before it counts that step on its logging
        axis (`_batches_that_stepped`), so a resumed run would log every training metric one
        step early; the axis is the optimizer step, as validation's is. And the loggers drop
        what the killed run logged from the checkpoint's step on (purge_step), including the
        validation at that very step, which the resumed run does not repeat: it is logged again,
        to those loggers only (W&B and MLflow keep it: a second point), from the checkpoint, or
        from the run's own logs (`logged_validation`) when the checkpoint was saved before it.
        """
        self._align_log_step = True  # at the first batch, after Lightning's own restart logic
        last = self.last_validation
        if not (last and last["step"] == self.global_step):
            last = self.logged_validation
        if self.global_step > 0 and last and last["step"] == self.global_step:
            if self.trainer.is_global_zero:
                for logger in filter(purges_on_resume, self.loggers):
                    logger.log_metrics(dict(last["metrics"]), step=self.global_step)


def val_metric_names(trainer: L.Trainer) -> tuple[str, str]:
    """The names validation logs under: `val/loss`, `val/ppl` over the whole val split, or
    `val/loss_partial`, `val/ppl_partial` when `limit_val_batches` scores only part of it."""
    loaders = trainer.val_dataloaders
    loaders = list(loaders) if isinstance(loaders, list | tuple) else [loaders]
    full = True
    for limited, loader in zip(trainer.num_val_batches, loaders, strict=False):
        try:
            full = full and limited >= len(loader)
        except TypeError:  # a loader without a length: the limit is all we know
            full = full and limited == float("inf")
    return ("val/loss", "val/ppl") if full else ("val/loss_partial", "val/ppl_partial")


def latest_val_loss(trainer: L.Trainer) -> float | None:
    """The last validation's mean token NLL (nats): `val/loss`, or `val/loss_partial` when
    validation was limited; None before any validation."""
    for name in ("val/loss", "val/loss_partial"):
        value = trainer.callback_metrics.get(name)
        if value is not None:
            return float(value)
    return None
