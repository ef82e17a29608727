"""One checkpoint dict per save: what a resume needs, plus provenance.

Keys: ``model`` (state dict, momentum copies and queues included; for the
``gpt2`` backbone without the frozen GPT-2 base, which is rebuilt, but with
the record of that base under ``series._extra_state``: its SHA-256, source,
seed of a random base, and shape),
``optimizer``, ``config`` (``PretrainConfig.to_dict``), ``vocabulary``,
``step`` (optimizer steps done = batches consumed per rank), ``best_val_loss``,
``rng`` (torch CPU/CUDA states and the mask generator at the save, for the
record), ``package_version``, ``torch_version``; a ``--generate`` run adds
``generate`` (``GeneratorSource.record``) and ``rows`` (per rank, [first, last]
row trained on). The learning rate, alpha, the
masks and dropout seeds are pure functions of ``step`` (``train.step_seed``),
and the data order a pure function of (config, step), so ``step`` restores them.
Plain tensors and Python values only: ``torch.load(weights_only=True)`` reads it.
"""

import os
from pathlib import Path
from typing import Any

import torch

from s2gen import __version__
from s2gen.pretrain.config import PretrainConfig

LAST = "last.pt"
BEST = "best.pt"


def save(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (temporary file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(
        {**state, "package_version": __version__, "torch_version": str(torch.__version__)}, tmp
    )
    os.replace(tmp, path)


def load(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by ``save``; ValueError naming the file if it is not one."""
    path = Path(path)
    if not path.is_file():
        problem = "is a directory" if path.is_dir() else "does not exist"
        raise ValueError(f"checkpoint {path} {problem}; give a .pt written by s2gen pretrain")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises several types for files it did not write
        raise ValueError(
            f"{path} is not an s2gen checkpoint: torch cannot read it ({type(exc).__name__}: "
            f"{exc}); give last.pt or best.pt of an `s2gen pretrain` run"
        ) from exc
    if not isinstance(state, dict) or "config" not in state or "model" not in state:
        raise ValueError(
            f"{path} is not an s2gen checkpoint (no config/model); give last.pt or best.pt of "
            "an `s2gen pretrain` run"
        )
    return state


def config_of(state: dict[str, Any]) -> PretrainConfig:
    """The ``PretrainConfig`` saved in a checkpoint dict."""
    return PretrainConfig.from_dict(state["config"])


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Torch CPU (and CUDA) RNG states and the mask generator's state."""
    state = {"torch": torch.get_rng_state(), "generator": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state
