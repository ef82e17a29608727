"""The TSIS score cache and the explore/exploit decision.

One random draw per step decides whether the step explores (re-scores its
whole batch) or exploits (reads cached scores). Exploit steps still score the
samples whose entry is missing or older than ``max_age`` steps: no sample is
ever given a made-up score. Keys are integer window keys (store row, channel,
input or output, window offset: ``s2gen.oats.augment.sample_keys``), so two
windows of one row are two entries. Values are raw gradient alignments: the
learning rate and the SNR gate are applied when a score is used, so a score
cached during warm-up is not read at the warm-up's learning rate later.

Notes
-----
Fixes of the released OATS code (oats.md section 6): one draw drives both
scoring and selection (bug 1), uncached samples are scored instead of reading
0.0 (bug 16), entries expire (bug 13), and the draws come from a seeded
generator (bug 15).
"""

from collections.abc import Callable

import numpy as np


class ScoreCache:
    """Scores (raw alignments) by window key with the step they were computed at.

    Parameters
    ----------
    explore_prob : probability that a step re-scores its whole batch.
    max_age : entries older than this many steps are re-scored.
    seed : seed of the explore/exploit draws.

    Attributes
    ----------
    steps, explore_steps : draws made and how many of them were explore.
    scored : samples scored so far (explore, uncached or stale).
    """

    def __init__(self, explore_prob: float, max_age: int, seed: int) -> None:
        if not 0.0 <= explore_prob <= 1.0:
            raise ValueError(f"explore_prob={explore_prob} is invalid: it must be in [0, 1]")
        if max_age < 1:
            raise ValueError(f"max_age={max_age} is invalid: it must be at least 1")
        self.explore_prob = explore_prob
        self.max_age = max_age
        self._rng = np.random.default_rng(seed)
        self._score: dict[int, float] = {}
        self._step: dict[int, int] = {}
        self.steps = 0
        self.explore_steps = 0
        self.scored = 0

    def __len__(self) -> int:
        return len(self._score)

    def state_dict(self) -> dict:
        """Everything a resumed run needs to continue exactly (plain Python types)."""
        return {
            "rng": self._rng.bit_generator.state,
            "score": dict(self._score),
            "step": dict(self._step),
            "counts": [self.steps, self.explore_steps, self.scored],
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned."""
        self._rng.bit_generator.state = state["rng"]
        self._score = {int(k): float(v) for k, v in state["score"].items()}
        self._step = {int(k): int(v) for k, v in state["step"].items()}
        self.steps, self.explore_steps, self.scored = (int(c) for c in state["counts"])

    def draw(self) -> bool:
        """This step's one explore/exploit draw: True = explore."""
        explore = bool(self._rng.random() < self.explore_prob)
        self.steps += 1
        self.explore_steps += explore
        return explore

    def needs_scoring(self, keys: np.ndarray, step: int, explore: bool) -> np.ndarray:
        """(B,) bool: which samples must be scored at ``step`` (all when exploring)."""
        if explore:
            return np.ones(len(keys), dtype=bool)
        return np.array(
            [k not in self._step or step - self._step[k] > self.max_age for k in keys.tolist()],
            dtype=bool,
        )

    def update(self, keys: np.ndarray, scores: np.ndarray, step: int) -> None:
        """Store ``scores`` (B,) of samples ``keys`` (B,) computed at ``step``."""
        for k, s in zip(keys.tolist(), np.asarray(scores, np.float64).tolist(), strict=True):
            self._score[k] = s
            self._step[k] = step
        self.scored += len(keys)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Cached scores (B,) float64; every key must be present (KeyError names it)."""
        return np.array([self._score[k] for k in keys.tolist()], dtype=np.float64)

    def age(self, keys: np.ndarray, step: int) -> np.ndarray:
        """Steps since each key was scored (B,) int64."""
        return np.array([step - self._step[k] for k in keys.tolist()], dtype=np.int64)

    def scores(
        self,
        keys: np.ndarray,
        step: int,
        explore: bool,
        score_fn: Callable[[np.ndarray], np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores of a batch, computing what is missing, stale or (explore) everything.

        Parameters
        ----------
        keys : (B,) int64 sample keys.
        step : the current training step.
        explore : this step's draw (``draw``).
        score_fn : maps positions (m,) int64 into the batch to their scores (m,).

        Returns
        -------
        scores (B,) float64 and the scored mask (B,) bool.
        """
        keys = np.asarray(keys, dtype=np.int64)
        need = self.needs_scoring(keys, step, explore)
        if need.any():
            where = np.flatnonzero(need)
            self.update(keys[where], score_fn(where), step)
        return self.lookup(keys), need
