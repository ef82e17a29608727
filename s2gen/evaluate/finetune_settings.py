"""``s2gen finetune --config FILE``: the fine-tuning settings of a file and the flags.

The rules of ``s2gen pretrain --config``: a TOML, YAML or JSON table
(``s2gen.pretrain.config.read_settings``, no parser that runs code), unknown keys
are an error naming them, and flags given on the command line override the file.
The keys are the fields of ``FinetuneConfig`` but ``seed``, and ``seeds`` (runs
with seeds 0..seeds-1). The effective settings are written beside the results as
``config.json``, itself a valid ``--config`` file.
"""

import dataclasses
import json
from pathlib import Path
from typing import Any

from s2gen.checks import check_int
from s2gen.evaluate.finetune import FinetuneConfig
from s2gen.pretrain.config import read_settings

CONFIG = "config.json"
DEFAULTS: dict[str, Any] = {
    **{f.name: f.default for f in dataclasses.fields(FinetuneConfig) if f.name != "seed"},
    "seeds": 1,
}


def finetune_settings(config_file: str | Path | None, given: dict[str, Any]) -> dict[str, Any]:
    """The defaults, then ``config_file``'s settings, then ``given`` (the flags set).

    Raises ValueError naming the file and the unknown keys, or the bad setting.
    """
    settings = dict(DEFAULTS)
    if config_file is not None:
        found = read_settings(config_file)
        unknown = sorted(set(found) - set(DEFAULTS))
        if unknown:
            raise ValueError(
                f"{config_file}: unknown fine-tuning setting(s) {unknown}; known are "
                f"{', '.join(DEFAULTS)}"
            )
        settings.update(found)
    settings.update(given)
    check_int("seeds", settings["seeds"], 1)
    config_for(settings, seed=0)  # checks every other field
    return settings


def config_for(settings: dict[str, Any], seed: int) -> FinetuneConfig:
    """The ``FinetuneConfig`` of one seed."""
    return FinetuneConfig(**{k: v for k, v in settings.items() if k != "seeds"}, seed=seed)


def save_settings(settings: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``out_dir/config.json`` (a valid ``--config`` file); its path."""
    path = Path(out_dir) / CONFIG
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n")
    return path
