"""Pretraining objectives behind one interface (``base.Objective``), registered by name.

``s2``: masked series + masked symbols + series<->symbol contrast (SymTime);
``mae``: RoBERTa-style masked patch modelling (TiMERT);
``timedrl``: instance-level negative cosine on [CLS] between two dropout views
plus patch reconstruction (TimeDRL);
``ts2vec``: hierarchical contrast of two overlapping crops (TS2Vec);
``crops``: NT-Xent between a window and a resampled sub-span of it on [CLS] (SimCLR).
A run combines objectives that train the same backbone with ``+``
(``PretrainConfig.objective``); adding an objective is one module and one row.
"""

from s2gen.pretrain.config import OBJECTIVE_NAMES
from s2gen.pretrain.objectives.base import Objective, Step
from s2gen.pretrain.objectives.crops import CropObjective
from s2gen.pretrain.objectives.mae import MAEObjective
from s2gen.pretrain.objectives.s2 import S2Objective
from s2gen.pretrain.objectives.timedrl import TimeDRLObjective
from s2gen.pretrain.objectives.ts2vec import TS2VecObjective

OBJECTIVES: dict[str, type[Objective]] = {
    "s2": S2Objective,
    "mae": MAEObjective,
    "timedrl": TimeDRLObjective,
    "ts2vec": TS2VecObjective,
    "crops": CropObjective,
}
assert tuple(OBJECTIVES) == OBJECTIVE_NAMES, "config.OBJECTIVE_NAMES must list OBJECTIVES"

__all__ = ["OBJECTIVES", "Objective", "Step"]
