"""MLflow tracking and model registry (extra ``track``): the one module that imports mlflow.

- ``Tracker``: one MLflow run; parameters, metrics by step (it is a metrics sink of
  the pretraining loop, ``write(step, values)``), artifacts, and ``register(name)``,
  which makes the run's ``model/`` folder (one checkpoint) a new version of a
  registered model;
- ``resolve_checkpoint``: a ``--checkpoint`` value, a local file or a registry URI
  ``models:/NAME/VERSION`` (or ``models:/NAME/latest``), as a local file; a registry
  checkpoint is downloaded once into a cache folder the caller names.

Every call names its tracking URI (``--mlflow``, else ``MLFLOW_TRACKING_URI``):
MLflow's own default (a ``mlflow.db`` in the working directory) is never used, so
nothing is written outside the folders a user gave. A new experiment on a sqlite
store keeps its artifacts beside the database file (``mlartifacts/``); other
stores keep their own default. Recent MLflow refuses plain file stores by default:
``sqlite:///mlflow.db`` is the local choice.
"""

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

INSTALL = "pip install 's2gen[track]'"
LOCAL_URI = "sqlite:///mlflow.db"
ENV_URI = "MLFLOW_TRACKING_URI"
ENV_EXPERIMENT = "MLFLOW_EXPERIMENT_NAME"
EXPERIMENT = "s2gen"
MODEL_DIR = "model"  # artifact folder of a registered checkpoint: exactly one .pt file
REGISTRY_PREFIX = "models:/"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
MODEL_URI = re.compile(r"^models:/(?P<name>[^/]+)/(?P<version>[0-9]+|latest)$")
STATE_FILE = "mlflow.json"  # in a run directory: the MLflow run a --resume continues


def enable_hint(command: str) -> str:
    """The one line a run without ``--mlflow`` prints: how to turn tracking on."""
    line = f"tracking is off: add --mlflow {LOCAL_URI} to log this {command} run to MLflow"
    if importlib.util.find_spec("mlflow") is None:
        line += f" (install it with {INSTALL})"
    return line


class TrackingError(ValueError):
    """An MLflow call failed (unreachable server, refused store, ...); the message says which."""


def _mlflow():
    try:
        import mlflow
        from mlflow.exceptions import MlflowException
    except ImportError as error:
        raise ImportError(f"--mlflow needs MLflow: {INSTALL} ({error})") from None
    return mlflow, MlflowException


@contextlib.contextmanager
def _translated(uri: str):
    """MLflow's exceptions as ``TrackingError`` naming the store (and the local choice)."""
    _, MlflowException = _mlflow()
    try:
        yield
    except MlflowException as error:
        message = str(error.message).splitlines()[0][:300]
        raise TrackingError(
            f"MLflow at {uri}: {message} (a local store: --mlflow {LOCAL_URI})"
        ) from None


def _client(uri: str):
    mlflow, _ = _mlflow()
    with _translated(uri):  # a store may refuse at once (a file store in recent MLflow)
        return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def check_name(name: str) -> str:
    """A registered model name: letters, digits, ``_``, ``.``, ``-`` (it names cache folders)."""
    if not NAME_PATTERN.match(str(name)):
        raise ValueError(
            f"model name {name!r} is invalid: use letters, digits, '_', '.' and '-', starting "
            "with a letter or digit (at most 128 characters)"
        )
    return str(name)


def artifact_location(uri: str) -> str | None:
    """Artifact root of a new experiment: ``mlartifacts/`` beside a sqlite database, else None.

    None leaves the choice to the store (a tracking server's artifact root, a file
    store's own folder).
    """
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri[len("sqlite:///") :].split("?", 1)[0])
    return (database.resolve().parent / "mlartifacts").as_uri()


def _experiment_id(client, uri: str) -> str:
    name = os.environ.get(ENV_EXPERIMENT) or EXPERIMENT
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location(uri))


class Tracker:
    """One MLflow run on the tracking URI ``uri``; created by ``start``.

    Parameters
    ----------
    uri : tracking URI, e.g. ``sqlite:///mlflow.db`` or ``http://host:5000``.
    run_name : the run's display name.
    state_file : where ``start`` records the run id (a run directory's ``mlflow.json``),
        so that ``start(..., resume=True)`` continues the same MLflow run.

    MLflow is imported and the store reached here, before any work: ImportError with
    the install line without MLflow, ``TrackingError`` when the store refuses (every
    method raises ``TrackingError`` for MLflow's errors).
    """

    def __init__(self, uri: str, run_name: str | None = None, state_file: Path | None = None):
        self.uri = uri
        self.client = _client(uri)
        self.run_name = run_name
        self.state_file = Path(state_file) if state_file is not None else None
        self.run_id: str | None = None
        with _translated(uri):
            self.experiment_id = _experiment_id(self.client, uri)

    def start(self, params: dict[str, Any], resume: bool = False) -> None:
        """Open the run and log ``params`` (values as text); ``resume`` continues a recorded run.

        A continued run keeps the parameters it has; only new keys are added (MLflow
        parameters cannot change, and a resume may raise ``steps``). A recorded run
        that no longer exists is replaced by a new one.
        """
        with _translated(self.uri):
            recorded = self._recorded() if resume else None
            if recorded is not None:
                self.run_id = recorded.info.run_id
                self.client.update_run(self.run_id, status="RUNNING")
                params = {k: v for k, v in params.items() if k not in recorded.data.params}
            else:
                run = self.client.create_run(self.experiment_id, run_name=self.run_name)
                self.run_id = run.info.run_id
        if self.state_file is not None:
            record = {"tracking_uri": self.uri, "run_id": self.run_id}
            self.state_file.write_text(json.dumps(record, indent=2) + "\n")
        self.log_params(params)

    def _recorded(self):
        """The MLflow run recorded in ``state_file`` for this URI, or None."""
        if self.state_file is None or not self.state_file.is_file():
            return None
        record = json.loads(self.state_file.read_text())
        if record.get("tracking_uri") != self.uri:
            return None
        _, MlflowException = _mlflow()
        try:
            return self.client.get_run(record["run_id"])
        except MlflowException:
            return None

    def log_params(self, params: dict[str, Any]) -> None:
        """Parameters of the run, values as text."""
        from mlflow.entities import Param

        items = [Param(str(k), str(v)) for k, v in params.items()]
        with _translated(self.uri):
            for start in range(0, len(items), 100):  # MLflow takes at most 100 per batch
                self.client.log_batch(self.run_id, params=items[start : start + 100])

    def write(self, step: int, values: dict[str, float]) -> None:
        """Metrics of one step (the pretraining loop's sink interface)."""
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(str(k), float(v), stamp, int(step)) for k, v in values.items()]
        with _translated(self.uri):
            self.client.log_batch(self.run_id, metrics=metrics)

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        """Copy a local file into the run's artifacts (under ``folder``)."""
        with _translated(self.uri):
            self.client.log_artifact(self.run_id, str(path), folder)

    def register(self, name: str, folder: str = MODEL_DIR) -> str:
        """Make the run's artifact ``folder`` a new version of model ``name``; the version.

        The registered model is created on first use.
        """
        _, MlflowException = _mlflow()
        check_name(name)
        with _translated(self.uri):
            try:
                self.client.create_registered_model(name)
            except MlflowException as error:
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            source = f"{self.client.get_run(self.run_id).info.artifact_uri}/{folder}"
            version = self.client.create_model_version(name, source=source, run_id=self.run_id)
        return str(version.version)

    def end(self, status: str = "FINISHED") -> None:
        """Close the run (FINISHED, FAILED or KILLED); a run never started is left alone."""
        if self.run_id is not None:
            with _translated(self.uri):
                self.client.set_terminated(self.run_id, status=status)

    def abort(self, status: str = "FAILED") -> None:
        """``end`` when something else already failed: an MLflow error here is dropped."""
        try:
            self.end(status)
        except TrackingError:
            pass


def is_registry_uri(value: str) -> bool:
    """Whether a ``--checkpoint`` value names a registered model version."""
    return str(value).startswith(REGISTRY_PREFIX)


def checkpoint_label(value: str) -> str:
    """A short name of a checkpoint: ``NAME/VERSION`` of a registry URI, else the path's stem."""
    found = MODEL_URI.match(str(value))
    return f"{found['name']}/{found['version']}" if found else Path(value).stem


def resolve_checkpoint(value: str, tracking_uri: str | None, cache_dir: str | Path) -> Path:
    """A local checkpoint file for a ``--checkpoint`` value.

    Parameters
    ----------
    value : a path to a ``.pt`` file, or ``models:/NAME/VERSION`` / ``models:/NAME/latest``.
    tracking_uri : the store a registry URI is read from; None falls back to
        ``MLFLOW_TRACKING_URI``.
    cache_dir : a registry checkpoint is downloaded to
        ``cache_dir/<hash of the URI>/NAME/VERSION/`` once and reused (versions are immutable).

    Returns
    -------
    The file. Raises ValueError naming the problem (missing file, malformed URI,
    no tracking URI, unknown model or version), ImportError without MLflow.
    """
    if not is_registry_uri(value):
        path = Path(value)
        if not path.is_file():
            raise ValueError(
                f"checkpoint {value} does not exist; give a .pt file of s2gen pretrain or a "
                "registered model as models:/NAME/VERSION"
            )
        return path
    found = MODEL_URI.match(value)
    if found is None:
        raise ValueError(
            f"checkpoint {value!r} is not a registry URI s2gen reads; give models:/NAME/VERSION "
            "(a version number or 'latest')"
        )
    name = check_name(found["name"])
    uri = tracking_uri or os.environ.get(ENV_URI)
    if not uri:
        raise ValueError(
            f"checkpoint {value} is in a model registry: give its store with --mlflow URI "
            f"(e.g. {LOCAL_URI}) or set {ENV_URI}"
        )
    _, MlflowException = _mlflow()
    client = _client(uri)
    try:
        if found["version"] == "latest":
            versions = client.search_model_versions(f"name='{name}'")
            if not versions:
                raise ValueError(f"model {name!r} has no version in {uri}")
            version = str(max(int(v.version) for v in versions))
        else:
            version = str(client.get_model_version(name, found["version"]).version)
    except MlflowException as error:
        message = str(error.message).splitlines()[0][:300]
        raise ValueError(f"{value} is not in the registry of {uri}: {message}") from None
    key = hashlib.sha256(uri.encode()).hexdigest()[:12]
    folder = Path(cache_dir) / key / name / version
    if not folder.is_dir():
        with _translated(uri):
            _download(client, uri, name, version, folder)
    files = sorted(folder.rglob("*.pt"))
    if len(files) != 1:
        raise ValueError(
            f"{value} holds {len(files)} .pt files ({[f.name for f in files]}); a registered "
            "s2gen model holds exactly one checkpoint (s2gen pretrain --register)"
        )
    return files[0]


def _download(client, uri: str, name: str, version: str, folder: Path) -> None:
    """Download a version's files into ``folder`` (via a temporary sibling, then a rename)."""
    import mlflow.artifacts

    source = client.get_model_version_download_uri(name, version)
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=folder.parent))
    try:
        mlflow.artifacts.download_artifacts(
            artifact_uri=source, dst_path=str(partial), tracking_uri=uri
        )
        os.replace(partial, folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
