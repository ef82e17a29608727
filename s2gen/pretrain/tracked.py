"""A pretraining run in MLflow: which files of the run directory become artifacts.

``pretraining_tracker`` opens a ``s2gen.tracking.Tracker`` for the run directory
(the loop then logs the effective config as parameters and every metrics line
through it); ``log_outputs`` copies the run's files at the end:

- the run's root: ``config.json``, ``run.json``, ``metrics.jsonl``, ``last.pt``
  (the resumable state);
- ``model/``: ``best.pt`` (or ``last.pt`` when the run has no validation), the one
  checkpoint a registered version holds (``--register``), read back by
  ``--checkpoint models:/NAME/VERSION``.
"""

from pathlib import Path

from s2gen.tracking import MODEL_DIR, STATE_FILE, Tracker

ROOT_FILES = ("config.json", "run.json", "metrics.jsonl", "last.pt")


def pretraining_tracker(uri: str, out_dir: str | Path) -> Tracker:
    """A tracker whose run id is kept in ``out_dir/mlflow.json`` (``--resume`` continues it)."""
    out = Path(out_dir)
    return Tracker(uri, run_name=f"pretrain {out.resolve().name}", state_file=out / STATE_FILE)


def log_outputs(tracker: Tracker, out_dir: str | Path, register: str | None = None) -> str | None:
    """Log the run directory's files; with ``register``, the new model version (else None)."""
    out = Path(out_dir)
    for name in ROOT_FILES:
        if (out / name).is_file():
            tracker.log_artifact(out / name)
    model = out / "best.pt" if (out / "best.pt").is_file() else out / "last.pt"
    tracker.log_artifact(model, MODEL_DIR)
    tracker.log_artifact(out / "config.json", MODEL_DIR)
    return tracker.register(register) if register else None
