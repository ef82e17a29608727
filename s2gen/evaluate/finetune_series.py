"""Fine-tuning an encoder with a forecasting or a reconstruction (anomaly) head.

The counterpart of ``finetune.py`` (classification) for tasks on one long
series, with the heads of ``heads.py``; the encoder and its head train together
(for a ``gpt2`` backbone only its trainable parts) with MSE and AdamW. Time
order is kept: the validation windows are the last ``val_fraction`` of the
train windows, the test part (the tail) is looked at once, at the end, with
the weights of the epoch of lowest validation loss. Training stops after
``patience`` epochs without a lower validation loss.

- Forecasting: the windows of the forecasting probe (``protocols.make_windows``:
  the series z-normalised by its train part, contexts of ``context`` steps,
  the next ``horizon`` values); MSE and MAE over the test windows, on the
  z-normalised series, so they compare with ``s2gen evaluate``'s numbers.
- Anomaly: windows of the encoder's length with a stride of half a window
  from the train part (its labels are never read); the test tail is scored
  point by point (``heads.reconstruction_scores``) and compared with its labels
  by ROC AUC and average precision (area under the precision-recall curve).

Settings are a ``FinetuneConfig`` (``head_lr`` for the head, ``lr`` for the
encoder); randomness follows its seed and the caller's RNG is restored.
"""

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from s2gen.evaluate.finetune import FinetuneConfig, _MlflowLog, _save, snapshot
from s2gen.evaluate.heads import EncoderForecaster, EncoderReconstructor, reconstruction_scores
from s2gen.evaluate.protocols import ForecastConfig, forecast_errors, make_windows

CHECKPOINT_NAME = "finetuned.pt"


@dataclass(frozen=True)
class SeriesFinetuneResult:
    """What one forecasting or anomaly fine-tuning run achieved.

    Attributes
    ----------
    metrics : test metrics ({"mse", "mae"} or {"auc_roc", "auc_pr"}).
    val_loss : the best validation MSE.
    best_epoch : 1-based epoch of the best validation loss.
    epochs_run : epochs trained before stopping.
    checkpoint : the saved checkpoint file.
    history : per epoch {"epoch", "train_loss", "val_loss"}.
    """

    metrics: dict
    val_loss: float
    best_epoch: int
    epochs_run: int
    checkpoint: Path
    history: tuple[dict, ...]


def _split_last(n: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation) of n time-ordered windows: validation is the last part."""
    n_val = min(max(int(round(n * fraction)), 1), n - 1)
    if n_val < 1:
        raise ValueError(f"{n} windows cannot give both a train and a validation part")
    return np.arange(n - n_val), np.arange(n - n_val, n)


@torch.no_grad()
def _mean_loss(model, loss_fn, tensors, batch_size: int) -> float:
    model.eval()
    n = tensors[0].shape[0]
    total = sum(
        loss_fn(model, *(t[i : i + batch_size] for t in tensors)).item() * min(batch_size, n - i)
        for i in range(0, n, batch_size)
    )
    return total / n


def _fit(model, loss_fn, train, val, cfg: FinetuneConfig, path: Path, meta: dict, tracker):
    """Train with early stopping on the validation loss; the best weights are saved and kept.

    ``loss_fn(model, *batch)`` is a batch's mean loss; ``train`` and ``val`` are
    tuples of tensors split along their first axis.
    """
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in model.encoder.parameters() if p.requires_grad], "lr": cfg.lr},
            {"params": list(model.head.parameters()), "lr": cfg.head_lr},
        ],
        weight_decay=cfg.weight_decay,
    )
    history, best = [], {"loss": math.inf, "epoch": 0, "state": None}
    n = train[0].shape[0]
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for start in range(0, n, cfg.batch_size):
            batch = order[start : start + cfg.batch_size]
            loss = loss_fn(model, *(t[batch] for t in train))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * batch.numel()
        val_loss = _mean_loss(model, loss_fn, val, cfg.batch_size * 4)
        row = {"epoch": epoch, "train_loss": total / n, "val_loss": val_loss}
        history.append(row)
        tracker.metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
        if val_loss < best["loss"]:
            state = snapshot(model)
            best = {"loss": val_loss, "epoch": epoch, "state": state}
            checkpoint = {"model": state, "config": dataclasses.asdict(cfg), "epoch": epoch}
            _save({**checkpoint, **meta, "val_loss": val_loss}, path)
        elif epoch - best["epoch"] >= cfg.patience:
            break
    if best["state"] is None:
        raise ValueError(
            f"the validation loss was never finite in {len(history)} epochs (last: "
            f"{history[-1]['val_loss']}); lower --lr or --head-lr"
        )
    model.load_state_dict(best["state"])
    model.eval()
    return best, tuple(history)


def _run(make_model, loss_fn, train, val, test_fn, cfg, out_dir, meta, mlflow_uri, device):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / CHECKPOINT_NAME
    run_name = f"finetune-{meta['task']} {meta['dataset']} seed{cfg.seed}"
    tracker = _MlflowLog(mlflow_uri, run_name=run_name)
    params = {**dataclasses.asdict(cfg), **{k: str(v) for k, v in meta.items()}}
    target = torch.device(device)
    with tracker.running(params):  # a failure closes the MLflow run as FAILED
        with torch.random.fork_rng(devices=[target.index or 0] if target.type == "cuda" else []):
            torch.manual_seed(cfg.seed)  # dropout; restored on exit
            model = make_model(torch.Generator().manual_seed(cfg.seed)).to(device)
            train = tuple(t.to(device) for t in train)
            val = tuple(t.to(device) for t in val)
            best, history = _fit(model, loss_fn, train, val, cfg, path, meta, tracker)
            metrics = test_fn(model)
        tracker.metrics({**metrics, "best_epoch": best["epoch"]})
        tracker.end(path)
    return SeriesFinetuneResult(metrics, best["loss"], best["epoch"], len(history), path, history)


def _forecast_loss(model, x, y):
    return nn.functional.mse_loss(model(x), y)


def finetune_forecasting(
    encoder: nn.Module,
    values: np.ndarray,
    forecast: ForecastConfig,
    cfg: FinetuneConfig,
    out_dir: str | Path,
    name: str = "series",
    mlflow_uri: str | None = None,
    device: str = "cpu",
) -> SeriesFinetuneResult:
    """Fine-tune ``encoder`` with a flatten-linear forecasting head; test once on the tail.

    Parameters
    ----------
    encoder : a ``SeriesEncoder``; trained in place.
    values : (T,) series without gaps.
    forecast : context, horizon and test share (``protocols.ForecastConfig``).
    cfg : fine-tuning settings (``val_fraction``: last share of the train windows).
    out_dir : receives ``finetuned.pt``.
    name : the series' name (saved in the checkpoint).
    mlflow_uri, device : as ``finetune.finetune``.

    Returns
    -------
    SeriesFinetuneResult with {"mse", "mae"} on the z-normalised test tail.
    """
    windows = make_windows(values, forecast)
    x = torch.from_numpy(windows.train_context).float()  # (n, context)
    y = torch.from_numpy(windows.train_target).float()  # (n, H)
    train_index, val_index = _split_last(x.shape[0], cfg.val_fraction)
    meta = {
        "task": "forecasting",
        "dataset": name,
        "context": forecast.context,
        "horizon": forecast.horizon,
    }

    def make(generator):
        return EncoderForecaster(encoder, forecast.context, forecast.horizon, generator, cfg.resize)

    @torch.no_grad()
    def test(model):
        device_of = next(model.parameters()).device
        x_test = torch.from_numpy(windows.test_context).float()
        parts = [
            model(x_test[i : i + 256].to(device_of)).cpu().numpy()
            for i in range(0, len(x_test), 256)
        ]
        return forecast_errors(np.concatenate(parts).astype(np.float64), windows.test_target)

    return _run(
        make,
        _forecast_loss,
        (x[train_index], y[train_index]),
        (x[val_index], y[val_index]),
        test,
        cfg,
        out_dir,
        meta,
        mlflow_uri,
        device,
    )


def _reconstruction_loss(model, x):
    recon, target = model(x)
    return nn.functional.mse_loss(recon.float(), target)


def anomaly_metrics(scores: np.ndarray, labels: np.ndarray) -> dict:
    """ROC AUC and average precision of per-point ``scores`` against 0/1 ``labels``, both (T,)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        raise ValueError(
            "the test part holds only one class of labels: the anomaly metrics need normal and "
            "anomalous points; change --test-fraction"
        )
    return {
        "auc_roc": float(roc_auc_score(labels, scores)),
        "auc_pr": float(average_precision_score(labels, scores)),
    }


def finetune_anomaly(
    encoder: nn.Module,
    values: np.ndarray,
    labels: np.ndarray,
    test_fraction: float,
    cfg: FinetuneConfig,
    out_dir: str | Path,
    name: str = "series",
    mlflow_uri: str | None = None,
    device: str = "cpu",
) -> SeriesFinetuneResult:
    """Fine-tune ``encoder`` to reconstruct windows of the train part; score the test tail.

    Parameters
    ----------
    encoder : a ``SeriesEncoder``; windows have its ``window`` points.
    values : (T,) series without gaps.
    labels : (T,) 0/1 anomaly labels; only the test tail's are read.
    test_fraction : share of the series (its tail) that is scored.
    cfg : fine-tuning settings (``val_fraction``: last share of the train windows).
    out_dir, name, mlflow_uri, device : as ``finetune_forecasting``.

    Returns
    -------
    SeriesFinetuneResult with {"auc_roc", "auc_pr"} on the test tail.
    """
    values = np.asarray(values, dtype=np.float32)
    labels = np.asarray(labels)
    if values.ndim != 1 or labels.shape != values.shape:
        raise ValueError(
            f"values {values.shape} and labels {labels.shape} must be equal 1-D shapes"
        )
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction={test_fraction} must be in (0, 1)")
    window = encoder.window
    split = int(round(values.size * (1.0 - test_fraction)))
    starts = np.arange(0, split - window + 1, max(window // 2, 1))
    if starts.size < 2 or values.size - split < window:
        raise ValueError(
            f"a series of {values.size} points gives {starts.size} train windows and a test "
            f"part of {values.size - split} points with window={window} and test_fraction="
            f"{test_fraction}; need 2 windows and a test part of at least one window"
        )
    x = torch.from_numpy(np.stack([values[s : s + window] for s in starts]))  # (n, window)
    train_index, val_index = _split_last(x.shape[0], cfg.val_fraction)
    meta = {"task": "anomaly", "dataset": name, "window": window, "test_fraction": test_fraction}

    def test(model):
        scores = reconstruction_scores(model, values[split:])
        return anomaly_metrics(scores, labels[split:])

    return _run(
        lambda generator: EncoderReconstructor(encoder, generator),
        _reconstruction_loss,
        (x[train_index],),
        (x[val_index],),
        test,
        cfg,
        out_dir,
        meta,
        mlflow_uri,
        device,
    )
