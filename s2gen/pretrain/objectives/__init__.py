"""Pretraining objectives behind one interface (``base.Objective``), registered by name.

``s2``: masked series + masked symbols + series<->symbol contrast (SymTime);
``timedrl``: instance-level negative cosine on [CLS] between two dropout views
plus patch reconstruction (TimeDRL). A run combines them with ``+``
(``PretrainConfig.objective``); adding an objective is one module and one row.
"""

from s2gen.pretrain.config import OBJECTIVE_NAMES
from s2gen.pretrain.objectives.base import Objective, Step
from s2gen.pretrain.objectives.s2 import S2Objective
from s2gen.pretrain.objectives.timedrl import TimeDRLObjective

OBJECTIVES: dict[str, type[Objective]] = {
    "s2": S2Objective,
    "timedrl": TimeDRLObjective,
}
assert tuple(OBJECTIVES) == OBJECTIVE_NAMES, "config.OBJECTIVE_NAMES must list OBJECTIVES"

__all__ = ["OBJECTIVES", "Objective", "Step"]
