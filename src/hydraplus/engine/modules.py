"""Lightning modules: train an ensemble, or distil it into a student.

Shared by both (see docs/method.md#optimisation): Adam without built-in decay (the L2 term is explicit),
cosine annealing over all epochs, NaN gradients zeroed, gradient norm clipped at 5.0
(per member for ensembles), steps with a non-finite loss skipped and counted, and an
optional seeded augmentation of each training batch (off in the paper's settings).

On several processes (DDP) each trains on its rows of every global batch. Clipping and zeroing
act on the gradients DDP has already averaged, so they are the same on every process; whether a
step is skipped is decided together (a non-finite loss on any process skips it on all); the
logged epoch means are over the global batches; and every process ends with rank 0's model.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hydraplus.core.containers import Ensemble
from hydraplus.core.losses import check_task, gaussian_nll, l2_penalty
from hydraplus.core.precision import full_precision
from hydraplus.engine.auto_lambda import (
    AutoLambda,
    Candidate,
    Fit,
    ProbeSet,
    Selection,
    diversity_epochs,
    log_ratio,
    off_data,
    rise_limit,
    student_kl_values,
)
from hydraplus.engine.data import SeededAugment, SeededMixup, seeded_generator
from hydraplus.engine.distributed import all_sum, from_rank_zero, gather, rank_rows
from hydraplus.engine.early_stopping import EarlyStopping
from hydraplus.methods import StudentMethod, get_method
from hydraplus.spec import StudentSpec


def _student_part(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The student's weights in a `DistillModule`'s state dict (its keys start with ``student.``)."""
    return {k.removeprefix("student."): v for k, v in state.items() if k.startswith("student.")}


class NonFiniteLossError(RuntimeError):
    """Raised after too many consecutive steps with a NaN or infinite loss."""


class _TrainingModule(L.LightningModule):
    """Optimiser, schedule, NaN handling and clipping common to both modules."""

    def __init__(self, lr: float, weight_decay: float, epochs: int, clip_norm: float = 5.0,
                 max_nan_steps: int = 20, augment: SeededAugment | None = None):
        super().__init__()
        if not lr > 0:
            raise ValueError(f"learning rate must be > 0, got {lr}")
        if weight_decay < 0:
            raise ValueError(f"weight decay must be >= 0, got {weight_decay}")
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        self.lr, self.weight_decay, self.epochs = lr, weight_decay, epochs
        self.clip_norm, self.max_nan_steps = clip_norm, max_nan_steps
        self.augment = augment
        self.skipped_steps = 0
        self._nan_streak = 0
        self._skip_step = False  # several processes: this step is skipped on all of them
        self._epoch_sums: dict[str, Tensor] = {}
        self._epoch_examples = 0
        self.epoch_extras: dict[str, float] = {}  # values callbacks add to the epoch's log row

    @property
    def world_size(self) -> int:
        """The number of processes training this module together (1 outside a fit)."""
        trainer = self._trainer  # as Lightning's own properties read it: None outside a fit
        return 1 if trainer is None else trainer.world_size

    def setup(self, stage: str) -> None:
        """On several processes each draws its own random numbers (dropout masks, samples), seeded
        from the run's seed and its rank; a resumed run then restores them from the checkpoint."""
        if self.world_size > 1:
            torch.manual_seed(seeded_generator(torch.initial_seed(), self.global_rank).initial_seed())

    def _augmented(self, images: Tensor, batch_idx: int) -> Tensor:
        """``images [B, ..., C, H, W]`` augmented (each image its own draw), or as they are.

        On several processes each image gets the draw it gets in the whole global batch."""
        if self.augment is None:
            return images
        flat = images.reshape(-1, *images.shape[-3:])
        part = None
        if self.world_size > 1:
            per_row = flat.shape[0] // images.shape[0]
            first, total = self._global_rows(images.shape[0])
            part = (first * per_row, total * per_row)
        return self.augment(flat, self.current_epoch, batch_idx, part).view_as(images)

    def _global_rows(self, rows: int) -> tuple[int, int]:
        """``(first row, rows in all)`` of this process's ``rows`` in the current global batch."""
        total = int(all_sum(torch.tensor([rows], device=self.device)).item())
        return rank_rows(total, self.global_rank, self.world_size)[0], total

    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(self.parameters(), lr=self.lr, foreach=True)  # the same floats, faster on CPUs
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.epochs)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    def _finite_or_skip(self, loss: Tensor, rows: int) -> Tensor | None:
        """Return the loss of this batch of ``rows``, or None (Lightning then skips the step) when
        it is not finite.

        On several processes they decide together with one all-reduce: a loss that is not finite
        on any of them skips the step on all (each returns a zero loss, since DDP needs every
        backward, and applies nothing). Each process's loss is weighted by its share of the global
        batch, so DDP's average of the gradients is the gradient of the global batch's mean loss.
        """
        total = rows
        if self.world_size == 1:
            finite = bool(torch.isfinite(loss))
        else:
            flags = torch.stack([(~torch.isfinite(loss.detach())).double(),
                                 torch.tensor(float(rows), dtype=torch.float64, device=loss.device)])
            not_finite, total = all_sum(flags).tolist()
            finite = not_finite == 0
        if finite:
            self._nan_streak = 0
            if rows * self.world_size == total:
                return loss
            return loss * (rows * self.world_size / total)
        self.skipped_steps += 1
        self._nan_streak += 1
        if self._nan_streak >= self.max_nan_steps:
            raise NonFiniteLossError(
                f"{self._nan_streak} consecutive steps had a non-finite loss "
                f"(epoch {self.current_epoch}); lower the learning rate or check the data"
            )
        if self.world_size == 1:
            return None
        self._skip_step = True
        return torch.stack([p.sum() for p in self.parameters() if p.requires_grad]).sum() * 0.0

    def _log_terms(self, terms: dict[str, Tensor], batch_size: int) -> None:
        """Add one batch's terms to the epoch's example-weighted sums."""
        for name, value in terms.items():
            weighted = value.detach().float() * batch_size
            previous = self._epoch_sums.get(name)
            self._epoch_sums[name] = weighted if previous is None else previous + weighted
        self._epoch_examples += batch_size

    def on_train_epoch_start(self) -> None:
        self._epoch_sums, self._epoch_examples, self.epoch_extras = {}, 0, {}

    def epoch_metrics(self) -> dict[str, float]:
        """One CSV row per epoch: every term's example-weighted mean, skipped steps, learning rate,
        and what callbacks added (``val/kl`` of early stopping)."""
        out = {f"train/{name}": (total / max(self._epoch_examples, 1)).item()
               for name, total in self._epoch_sums.items()}
        out["train/skipped_steps"] = float(self.skipped_steps)
        out["train/lr"] = float(self.trainer.optimizers[0].param_groups[0]["lr"])
        return {**out, **self.epoch_extras}

    def _add_up_processes(self) -> None:
        """The epoch sums of every process added up (on each), so the means are the global batches'."""
        names = sorted(self._epoch_sums)
        count = torch.tensor(float(self._epoch_examples), dtype=torch.float64, device=self.device)
        totals = all_sum(torch.stack([*(self._epoch_sums[name].double() for name in names), count]))
        self._epoch_sums = {name: total.float() for name, total in zip(names, totals[:-1], strict=True)}
        self._epoch_examples = int(totals[-1].item())

    def on_train_epoch_end(self) -> None:
        if self.world_size > 1:
            self._add_up_processes()
        # Straight to the logger, once per epoch: Lightning's `log` costs about 0.6 ms a call,
        # more than a toy model's whole training step.
        if self.logger is not None:  # saved now: the epoch's row is on disk before its checkpoint
            self.logger.log_metrics({**self.epoch_metrics(), "epoch": self.current_epoch},
                                    step=self.global_step)
            self.logger.save()

    def on_train_end(self) -> None:
        if self.world_size > 1:  # rank 0's exact model on every process (its batch-norm statistics too)
            from_rank_zero([*self.parameters(), *self.buffers()])

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self._skip_step:  # skipped on every process: Adam leaves parameters without gradients alone
            self._skip_step = False
            for p in self.parameters():
                p.grad = None
            return
        for p in self.parameters():
            if p.grad is not None:
                torch.nan_to_num_(p.grad, nan=0.0, posinf=0.0, neginf=0.0)
        self.clip_gradients_()

    def clip_gradients_(self) -> None:
        nn.utils.clip_grad_norm_(self.parameters(), self.clip_norm)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["hydraplus"] = {
            "skipped_steps": self.skipped_steps,
            "nan_streak": self._nan_streak,
            "torch_rng": torch.get_rng_state(),
            "world_size": self.world_size,  # a resume must split the batches the same way
        }
        if torch.cuda.is_initialized():
            checkpoint["hydraplus"]["cuda_rng"] = torch.cuda.get_rng_state_all()
        if self.world_size > 1:  # every process's own random state, in rank order
            states = {"torch_rng_ranks": torch.get_rng_state()}
            if torch.cuda.is_initialized():
                states["cuda_rng_ranks"] = torch.cuda.get_rng_state()
            for key, value in states.items():
                checkpoint["hydraplus"][key] = gather(value.to(self.device)).cpu()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("hydraplus", {})
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self._nan_streak = int(state.get("nan_streak", 0))
        if "torch_rng_ranks" in state:  # saved on several processes: this process's own
            # (copied out of the stacked tensor: torch's set_rng_state crashes on such a row view)
            torch.set_rng_state(state["torch_rng_ranks"][self.global_rank].cpu().clone())
            if "cuda_rng_ranks" in state and torch.cuda.is_available():
                torch.cuda.set_rng_state(state["cuda_rng_ranks"][self.global_rank].cpu().clone())
            return
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"].cpu())
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"][: torch.cuda.device_count()]])


class EnsembleModule(_TrainingModule):
    """Trains N members at once; each its own initialisation, data order and clipping.

    Batches are ``x [B, N, ...]``, ``y [B, N]``: column n is member n's own order.
    The loss is the sum of the members' mean losses, so each member's gradient is
    exactly what it would get trained alone. With ``augment`` every member sees its own
    augmented view of its own images. ``label_smoothing`` s in [0, 1) trains each member's
    cross-entropy against ``(1 - s)`` times the one-hot label plus ``s / C`` on every class
    (classification only; docs/method.md#label-smoothing-of-the-members).
    """

    def __init__(self, ensemble: Ensemble, task: str, lr: float, weight_decay: float, epochs: int,
                 clip_norm: float = 5.0, max_nan_steps: int = 20,
                 augment: SeededAugment | None = None, label_smoothing: float = 0.0):
        super().__init__(lr, weight_decay, epochs, clip_norm, max_nan_steps, augment)
        self.task = check_task(task)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        if label_smoothing and self.task != "classification":
            raise ValueError(f"label_smoothing applies to classification only, not {self.task}")
        self.label_smoothing = float(label_smoothing)
        self.ensemble = ensemble

    def forward(self, x: Tensor) -> Tensor:
        return self.ensemble(x)

    def member_losses(self, out: Tensor, y: Tensor) -> Tensor:
        """Mean loss of each member ``[N]`` for per-member outputs ``[B, N, D]``."""
        b, n, d = out.shape
        if self.task == "classification":
            flat = F.cross_entropy(out.reshape(b * n, d), y.reshape(-1), reduction="none",
                                   label_smoothing=self.label_smoothing)
            return flat.view(b, n).mean(0)
        return torch.stack([gaussian_nll(out[:, i : i + 1], y[:, i]) for i in range(n)])

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor | None:
        x, y = batch
        x = self._augmented(x, batch_idx)
        out = self.ensemble(x, per_member=True)
        with full_precision():
            per_member = self.member_losses(out.float(), y)
            decay = l2_penalty(self.ensemble.parameters())
        fit = per_member.sum()
        loss = fit + self.weight_decay * decay
        self._log_terms({"loss": per_member.mean(), "weight_decay": decay / self.ensemble.size},
                        x.shape[0])
        return self._finite_or_skip(loss, x.shape[0])

    def clip_gradients_(self) -> None:
        self.ensemble.clip_member_grad_norms(self.clip_norm)


class DistillModule(_TrainingModule):
    """Distils a teacher's outputs into a student with a method's losses.

    ``method`` is a registered `StudentMethod` (or its name); ``spec`` holds the student's
    resolved settings (loss weights, lambda schedule, optimiser, epochs). Without ``teacher``,
    batches are ``(x, y, teacher_outputs [B, N, D])`` (cached outputs). With ``teacher`` they
    are ``(x, y)`` and the frozen teacher runs on every (augmented) batch in one pass: needed
    when ``augment`` or ``mixup`` changes the images (mixup also mixes the labels).
    """

    def __init__(
        self,
        student: nn.Module,
        method: StudentMethod | str,
        task: str,
        spec: StudentSpec,
        *,
        clip_norm: float = 5.0,
        max_nan_steps: int = 20,
        teacher: nn.Module | None = None,
        augment: SeededAugment | None = None,
        probe: ProbeSet | None = None,
        mixup: SeededMixup | None = None,
    ):
        super().__init__(spec.lr, spec.weight_decay, spec.epochs, clip_norm, max_nan_steps, augment)
        if (augment is not None or mixup is not None) and teacher is None:
            raise ValueError("augmented distillation needs the teacher module (augment and mixup change "
                             "the images): cached teacher outputs belong to the unchanged images")
        self.mixup = mixup
        self.method = get_method(method)
        self.task = check_task(task)
        self.method.check_task(self.task)
        self.method.check_student(student)
        self.student, self.spec = student, spec
        # A plain attribute, not a submodule: the teacher is not trained, not in the
        # optimiser, not in checkpoints, and Lightning's train() does not reach it.
        object.__setattr__(self, "teacher", teacher)
        self.auto_lambda: AutoLambda | None = None
        self.probe: ProbeSet | None = None
        self.extra_epochs = 0  # epochs the trainer may run beyond spec.epochs: the diversity phase
        if spec.lam.auto:
            if probe is None or probe.guard is None or probe.teacher_values is None:
                raise ValueError("an automatic lambda needs a probe set: inputs away from the data with the "
                                 "teacher's epistemic uncertainty on them, and guard inputs with its "
                                 "predictions (teacher_probe(..., train=...))")
            self.probe = probe
            self.auto_lambda = AutoLambda(spec.lam.value, probe.target, max_up=rise_limit(spec.epochs))
            self.extra_epochs = diversity_epochs(spec.epochs)
        self.phase = "fit"  # an automatic lambda's: "fit" (the lambda = 0 run), "diversity", "done"
        self.phase_start = 0  # epochs trained when the diversity phase began
        self.selection = Selection()
        self._probe_measure: float | None = None
        self._fit: Fit | None = None
        self._pending: tuple[int, dict[str, Tensor]] | None = None  # a resumed run's undone epoch end
        self._chosen = False

    @property
    def early_stopping_done(self) -> bool:
        """Whether early stopping has had its say (`EarlyStopping` leaves the diversity phase alone)."""
        return self.phase != "fit"

    def current_lambda(self) -> float:
        """This epoch's diversity weight: the schedule's, or the controller's (0 before its diversity
        phase)."""
        if self.auto_lambda is not None:
            return self.auto_lambda.value if self.phase == "diversity" else 0.0
        return self.spec.lam(self.current_epoch)

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        self._after_epoch(self.current_epoch + 1)

    def on_train_start(self) -> None:
        if self._pending is not None:  # resumed from a checkpoint taken before its epoch end was handled
            self._after_epoch(self._pending[0])

    def _after_epoch(self, epochs: int) -> None:
        """An automatic lambda's step after ``epochs`` epochs (after the checkpoint: a run resumed from it
        takes the step again, on the same weights). In the lambda = 0 phase: nothing until that run
        would end, then the lambda = 0 student is measured and the diversity phase begins or the run
        ends. In the diversity phase: the weights are a candidate and lambda steps."""
        self._pending = None
        if self.auto_lambda is None or self.phase == "done":
            return
        if self.phase == "fit":
            if self.trainer.should_stop or epochs >= self.epochs:
                self._start_diversity(epochs)
            return
        candidate = self._measure(epochs)
        self.selection.offer(candidate, self.student.state_dict())
        if epochs >= self.phase_start + self.extra_epochs:
            self.phase = "done"
            self.trainer.should_stop = True
        else:
            self.auto_lambda.update(self._probe_measure, candidate.fit)  # type: ignore[arg-type]

    def _start_diversity(self, epochs: int) -> None:
        """The lambda = 0 run has ended: its student (early stopping's best weights, else the last)
        is the reference; the diversity phase continues from it when it is less uncertain than the
        teacher on the probe, else the run ends."""
        assert self.auto_lambda is not None
        callbacks = self.trainer.callbacks  # type: ignore[attr-defined]
        stopping = next((c for c in callbacks if isinstance(c, EarlyStopping)), None)
        best = epochs
        if stopping is not None and stopping.best_state is not None:
            self.student.load_state_dict(_student_part(stopping.best_state))
            best = stopping.best_epoch
        reference = self._measure(best)
        self.selection.set_reference(reference, self.student.state_dict())
        if self.auto_lambda.start(self._probe_measure, reference.fit) > 0:  # type: ignore[arg-type]
            self.phase, self.phase_start = "diversity", epochs
            self.trainer.should_stop = False
            self._restart_schedule()
        else:
            self.phase = "done"
            self.trainer.should_stop = True

    def _restart_schedule(self) -> None:
        """The diversity phase's learning rate: a cosine of its own from the full rate down over its
        epochs (a warm restart; the first schedule would go on from 0). The scheduler's state is in
        every checkpoint, so a resumed run keeps it."""
        scheduler = self.trainer.lr_scheduler_configs[0].scheduler
        scheduler.T_max, scheduler.last_epoch = self.extra_epochs, 0  # type: ignore[attr-defined]
        for group in self.trainer.optimizers[0].param_groups:
            group["lr"] = self.lr

    def _measure(self, epochs: int) -> Candidate:
        """The current weights (after ``epochs`` epochs) measured on the probe and the guard inputs."""
        assert self.probe is not None and self.probe.guard is not None
        typical, tv, halves = off_data(self.student, self.probe, self.task)
        kl, agreement = student_kl_values(self.student, self.probe.guard, self.task)
        if self.world_size > 1:  # rank 0's measurements everywhere (a sampling student's differ by process)
            values = [typical, tv, *halves, math.nan if agreement is None else agreement, *kl.tolist()]
            shared = torch.tensor(values, dtype=torch.float64, device=self.device)
            from_rank_zero([shared])
            typical, tv, first, second, agreement, *rest = shared.tolist()
            halves, kl = (first, second), torch.tensor(rest, dtype=torch.float64)
            agreement = None if math.isnan(agreement) else agreement
        candidate = Candidate(epochs, kl, agreement, tv, halves)
        self._probe_measure, self._fit = typical, candidate.fit
        return candidate

    def on_train_end(self) -> None:
        super().on_train_end()
        self._choose()

    def on_fit_end(self) -> None:
        if self._pending is not None:  # resumed with nothing left to train: its last epoch end, on its own
            # weights (early stopping has just restored its best)
            current = {k: v.detach().clone() for k, v in self.student.state_dict().items()}
            self.student.load_state_dict(self._pending[1])
            self._after_epoch(self._pending[0])
            self.student.load_state_dict(current)
        self._choose()

    def _choose(self) -> None:
        """After a diversity phase, end with the chosen weights (`auto_lambda.Selection`); a run that had
        none keeps its own (it is the lambda = 0 run)."""
        if self._chosen or self.phase_start == 0:
            return
        self._chosen = True
        self.student.load_state_dict(self.selection.chosen()[1])

    def epoch_metrics(self) -> dict[str, float]:
        out = super().epoch_metrics()
        if self.method.uses_lambda or self.spec.lam.value > 0:
            out["train/lambda"] = self.current_lambda()
        if self.auto_lambda is not None and self._probe_measure is not None:
            out["train/probe_epistemic_log_ratio"] = log_ratio(self._probe_measure, self.auto_lambda.target)
        if self.auto_lambda is not None and self._fit is not None:
            out["train/guard_kl"] = self._fit.kl
            if self._fit.agreement is not None:
                out["train/guard_agreement"] = self._fit.agreement
        return out

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.auto_lambda is not None:
            checkpoint["hydraplus"]["auto_lambda"] = {**self.auto_lambda.state(), "phase": self.phase,
                                                      "phase_start": self.phase_start}
            checkpoint["hydraplus"]["auto_lambda_selection"] = self.selection.state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("hydraplus", {})
        if self.auto_lambda is not None and "auto_lambda" in state:
            self.auto_lambda.restore(state["auto_lambda"])
            self.phase = str(state["auto_lambda"].get("phase", "fit"))
            self.phase_start = int(state["auto_lambda"].get("phase_start", 0))
            self.selection.restore(state.get("auto_lambda_selection", {}))
            saved = checkpoint.get("state_dict", {})  # the weights after this many epochs:
            self._pending = (int(checkpoint.get("epoch", -1)) + 1, _student_part(saved))

    def on_fit_start(self) -> None:
        if self.teacher is not None:
            self.teacher.to(self.device).eval()

    def forward(self, x: Tensor) -> Tensor:
        return self.student(x)

    def loss_terms(self, x: Tensor, y: Tensor, teacher: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The total loss and every term, for one batch."""
        lam = self.current_lambda()
        terms = self.method.loss_terms(self.student, x, y, teacher, self.task, self.spec, lam)
        return self.method.total(terms, self.spec, lam), terms

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor | None:
        x, y, *cached = batch
        x = self._augmented(x, batch_idx)
        if self.mixup is not None:
            x, y = self.mixup(x, y, self.current_epoch, batch_idx)
        if self.teacher is None:
            teacher = cached[0]
        else:
            with torch.no_grad():
                teacher = self.teacher(x)
        loss, terms = self.loss_terms(x, y, teacher)
        self._log_terms({"loss": loss, **terms}, x.shape[0])
        return self._finite_or_skip(loss, x.shape[0])
