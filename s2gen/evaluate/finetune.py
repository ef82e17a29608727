"""Full fine-tuning of a series encoder with a linear classification head.

(Forecasting and anomaly heads: ``finetune_series``. For a ``gpt2`` encoder only
its trainable parts move; checkpoints leave its frozen base out.)

The TiMERT workflow (pretrain once, then fine-tune per task): the encoder and
a linear head over its concatenated per-channel [CLS] features are trained
together with cross-entropy. A validation split is carved from the train
split, stratified by class (the test split is never looked at before the
end); an epoch improves on the best when its validation accuracy is higher,
or equal with a lower validation loss; training stops after ``patience``
epochs without improvement, the best epoch's weights are checkpointed and restored,
and the test accuracy is measured once with them.

Cases of unequal length are resampled to the longest train length (linear
interpolation) so that a batch is one tensor; gaps are filled first. The
encoder then brings each series to its window as ``FinetuneConfig.resize``
says ("linear" or "none", see ``SeriesEncoder.forward_features``).
All randomness (head initialisation, dropout, batch order, the validation
split) follows ``FinetuneConfig.seed``; the caller's global torch RNG state is
restored afterwards.
"""

import contextlib
import copy
import dataclasses
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from s2gen.checks import check_float, check_int, fail
from s2gen.evaluate.datasets import ClassificationData
from s2gen.evaluate.preprocess import resample_cases
from s2gen.pretrain.config import RESIZE_MODES

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "finetuned.pt"


@dataclass(frozen=True)
class FinetuneConfig:
    """Fine-tuning settings.

    Attributes
    ----------
    epochs : maximum passes over the train part.
    batch_size : cases per step.
    lr : AdamW learning rate of the encoder.
    head_lr : AdamW learning rate of the linear head.
    weight_decay : AdamW weight decay.
    val_fraction : share of each class moved from train to validation.
    patience : epochs without a better validation accuracy before stopping.
    seed : seed of every random choice.
    resize : how the encoder brings a series to its window: "linear" or "none".
    """

    epochs: int = 100
    batch_size: int = 16
    lr: float = 1e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    val_fraction: float = 0.2
    patience: int = 10
    seed: int = 0
    resize: str = "linear"

    def __post_init__(self):
        for name in ("epochs", "batch_size", "patience"):
            check_int(name, getattr(self, name), 1)
        for name in ("lr", "head_lr"):
            check_float(name, getattr(self, name), 0.0, open_low=True)
        check_float("weight_decay", self.weight_decay, 0.0)
        check_float("val_fraction", self.val_fraction, 0.0, 1.0, open_low=True)
        if self.val_fraction >= 1.0:
            fail("val_fraction", self.val_fraction, "it must be in (0, 1)")
        check_int("seed", self.seed, 0)
        if self.resize not in RESIZE_MODES:
            fail("resize", self.resize, f"choose one of {', '.join(RESIZE_MODES)}")


@dataclass(frozen=True)
class FinetuneResult:
    """What one fine-tuning run achieved.

    Attributes
    ----------
    test_accuracy : accuracy of the best-validation weights on the test split.
    val_accuracy : the best validation accuracy.
    best_epoch : 1-based epoch of the best validation accuracy.
    epochs_run : epochs trained before stopping.
    checkpoint : the saved checkpoint file.
    history : per epoch {"epoch", "train_loss", "val_loss", "val_accuracy"}.
    """

    test_accuracy: float
    val_accuracy: float
    best_epoch: int
    epochs_run: int
    checkpoint: Path
    history: tuple[dict, ...]


class EncoderClassifier(nn.Module):
    """An encoder followed by a linear head over its per-channel features.

    Parameters
    ----------
    encoder : module with ``dim`` and ``forward_features((B, L), resize) -> (B, dim)``.
    n_channels : C, channels per case.
    n_classes : number of classes.
    generator : seeds the head's initialisation.
    resize : passed to ``forward_features``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        n_channels: int,
        n_classes: int,
        generator: torch.Generator,
        resize: str = "linear",
    ):
        super().__init__()
        self.encoder = encoder
        self.n_channels = n_channels
        self.resize = resize
        self.head = nn.Linear(n_channels * encoder.dim, n_classes)
        bound = 1.0 / math.sqrt(self.head.in_features)
        with torch.no_grad():
            self.head.weight.uniform_(-bound, bound, generator=generator)
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, L) series -> (B, n_classes) logits."""
        batch, channels, length = x.shape
        flat = x.reshape(batch * channels, length)  # (B*C, L)
        z = self.encoder.forward_features(flat, resize=self.resize)  # (B*C, dim)
        return self.head(z.reshape(batch, channels * z.shape[-1]))  # (B, n_classes)


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation), taking ``fraction`` of each class to validation.

    A class keeps at least one train member; a class with one member gives
    none to validation.

    Parameters
    ----------
    labels : (n,) integer class indices.
    fraction : share per class for validation.
    seed : seed of the shuffle.

    Returns
    -------
    Two sorted int64 index arrays partitioning 0..n-1.
    """
    rng = np.random.default_rng(seed)
    val = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        take = min(max(int(round(members.size * fraction)), 1), members.size - 1)
        val.extend(members[:take].tolist())
    if not val:
        raise ValueError("every class has one train case: no validation split is possible")
    val_index = np.sort(np.asarray(val, dtype=np.int64))
    train_index = np.setdiff1d(np.arange(labels.size), val_index)
    return train_index, val_index


def _label_indices(labels: np.ndarray, classes: list[str], split: str) -> np.ndarray:
    lookup = {name: k for k, name in enumerate(classes)}
    unknown = sorted(set(labels.tolist()) - set(lookup))
    if unknown:
        raise ValueError(f"{split} labels {unknown} do not occur in the train split")
    return np.array([lookup[label] for label in labels.tolist()], dtype=np.int64)


@torch.no_grad()
def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int):
    """(mean cross-entropy, accuracy) of ``model`` on (n, C, L) ``x``."""
    model.eval()
    losses, correct = [], 0
    for start in range(0, x.shape[0], batch_size):
        logits = model(x[start : start + batch_size])
        target = y[start : start + batch_size]
        losses.append(nn.functional.cross_entropy(logits, target, reduction="sum").item())
        correct += int((logits.argmax(dim=1) == target).sum())
    return sum(losses) / x.shape[0], correct / x.shape[0]


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
) -> float:
    """One pass over (n, C, L) ``x`` in a random order; the mean cross-entropy."""
    model.train()
    order = torch.randperm(x.shape[0], generator=generator)
    total = 0.0
    for start in range(0, order.numel(), batch_size):
        batch = order[start : start + batch_size]
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * batch.numel()
    return total / order.numel()


def snapshot(model: nn.Module) -> dict:
    """A copy of ``model.state_dict()``: tensors cloned, extra states (records) copied."""
    return {
        k: v.detach().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)
        for k, v in model.state_dict().items()
    }


def _save(checkpoint: dict, path: Path) -> None:
    partial = path.with_suffix(".tmp")
    torch.save(checkpoint, partial)
    os.replace(partial, path)


class _MlflowLog:
    """Logs parameters, metrics by epoch and the checkpoint to MLflow when a URI is given."""

    def __init__(self, uri: str | None, run_name: str):
        self.tracker = None
        if uri is not None:
            from s2gen.tracking import Tracker

            self.tracker = Tracker(uri, run_name=run_name)

    @contextlib.contextmanager
    def running(self, params: dict):
        """Start the run with ``params``; an exception inside closes it as FAILED."""
        if self.tracker is not None:
            self.tracker.start(params)
        try:
            yield
        except BaseException:
            if self.tracker is not None:
                self.tracker.abort("FAILED")
            raise

    def metrics(self, values: dict, step: int = 0) -> None:
        if self.tracker is not None:
            self.tracker.write(step, values)

    def end(self, checkpoint: Path) -> None:
        """Log ``checkpoint`` and close the run (FINISHED)."""
        if self.tracker is not None:
            self.tracker.log_artifact(checkpoint)
            self.tracker.end("FINISHED")


def finetune(
    encoder: nn.Module,
    data: ClassificationData,
    cfg: FinetuneConfig,
    out_dir: str | Path,
    mlflow_uri: str | None = None,
    device: str = "cpu",
) -> FinetuneResult:
    """Fine-tune ``encoder`` with a linear head on ``data``; test once at the end.

    Parameters
    ----------
    encoder : a ``SeriesEncoder`` (or any module with ``dim`` and
        ``forward_features``); it is trained in place.
    data : the dataset with its official train/test split.
    cfg : fine-tuning settings.
    out_dir : receives ``finetuned.pt`` (model state, config, classes, epoch).
    mlflow_uri : MLflow tracking URI; None logs nothing.
    device : torch device.

    Returns
    -------
    FinetuneResult.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tracker = _MlflowLog(mlflow_uri, run_name=f"finetune {data.name} seed{cfg.seed}")
    classes = list(data.train.class_names) or sorted(set(data.train.labels.tolist()))
    y_all = _label_indices(data.train.labels, classes, "train")
    y_test = _label_indices(data.test.labels, classes, "test")
    length = int(data.train.lengths.max())
    x_all = torch.from_numpy(resample_cases(data.train.series, length)).float()  # (n, C, L)
    x_test = torch.from_numpy(resample_cases(data.test.series, length)).float()  # (m, C, L)
    train_index, val_index = stratified_split(y_all, cfg.val_fraction, cfg.seed)
    x_train, x_val = x_all[train_index].to(device), x_all[val_index].to(device)
    y_train = torch.from_numpy(y_all[train_index]).to(device)
    y_val = torch.from_numpy(y_all[val_index]).to(device)
    path = out / CHECKPOINT_NAME
    params = {**dataclasses.asdict(cfg), "dataset": data.name, "n_classes": len(classes)}
    with tracker.running(params):  # a failure closes the MLflow run as FAILED
        history, best = [], {"accuracy": -1.0, "loss": math.inf, "epoch": 0, "state": None}
        target = torch.device(device)
        forked = [target.index or 0] if target.type == "cuda" else []
        with torch.random.fork_rng(devices=forked):
            torch.manual_seed(cfg.seed)  # nn.Linear's default init, dropout; restored on exit
            generator = torch.Generator().manual_seed(cfg.seed)
            model = EncoderClassifier(
                encoder, data.n_channels, len(classes), generator, cfg.resize
            ).to(device)
            optimizer = torch.optim.AdamW(
                [
                    {"params": model.encoder.parameters(), "lr": cfg.lr},
                    {"params": model.head.parameters(), "lr": cfg.head_lr},
                ],
                weight_decay=cfg.weight_decay,
            )
            for epoch in range(1, cfg.epochs + 1):
                train_loss = _train_epoch(
                    model, optimizer, x_train, y_train, cfg.batch_size, generator
                )
                val_loss, val_accuracy = _evaluate(model, x_val, y_val, cfg.batch_size * 4)
                row = {
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "val_loss": val_loss,
                    "val_accuracy": val_accuracy,
                }
                history.append(row)
                tracker.metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
                log.info("epoch %d: %s", epoch, row)
                better = val_accuracy > best["accuracy"] or (
                    val_accuracy == best["accuracy"] and val_loss < best["loss"]
                )
                if better:
                    state = snapshot(model)
                    best = {
                        "accuracy": val_accuracy,
                        "loss": val_loss,
                        "epoch": epoch,
                        "state": state,
                    }
                    _save(
                        {
                            "model": state,
                            "config": dataclasses.asdict(cfg),
                            "classes": classes,
                            "n_channels": data.n_channels,
                            "length": length,
                            "dataset": data.name,
                            "epoch": epoch,
                            "val_accuracy": val_accuracy,
                        },
                        path,
                    )
                elif epoch - best["epoch"] >= cfg.patience:
                    log.info("early stop at epoch %d (best %d)", epoch, best["epoch"])
                    break
        model.load_state_dict(best["state"])
        _, test_accuracy = _evaluate(
            model, x_test.to(device), torch.from_numpy(y_test).to(device), cfg.batch_size * 4
        )
        tracker.metrics({"test_accuracy": test_accuracy, "best_epoch": best["epoch"]})
        tracker.end(path)
    return FinetuneResult(
        test_accuracy, best["accuracy"], best["epoch"], len(history), path, tuple(history)
    )
