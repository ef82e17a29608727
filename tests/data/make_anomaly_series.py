"""Write tests/data/evaluate/bumps.csv: a labelled synthetic series for anomaly detection.

A seasonal series (two sines, periods 50 and 13, plus white noise of standard
deviation 0.1) of 1000 steps with injected anomalies, labelled 1 on the points
they change: one spike in the first half (which only sets the threshold, its
label unused) and, in the tested second half, two spikes, two level shifts of 8
points, a burst of noise over 10 points and a flat stretch of 12 points.
Deterministic (seed 7): rerun with ``python tests/data/make_anomaly_series.py``.
"""

from pathlib import Path

import numpy as np

LENGTH = 1000
SEED = 7
OUT = Path(__file__).parent / "evaluate" / "bumps.csv"


def make_series(length: int = LENGTH, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """(values (length,), labels (length,) int) of the series described above."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    values = np.sin(2 * np.pi * t / 50) + 0.3 * np.sin(2 * np.pi * t / 13)
    values += 0.1 * rng.standard_normal(length)
    labels = np.zeros(length, np.int64)

    def mark(start: int, stop: int) -> None:
        labels[start:stop] = 1

    for at, size in ((230, 3.0), (610, 4.0), (845, -4.0)):  # spikes
        values[at] += size
        mark(at, at + 1)
    for start, shift in ((680, 2.0), (905, -2.0)):  # level shifts of 8 points
        values[start : start + 8] += shift
        mark(start, start + 8)
    values[760:770] += 1.0 * rng.standard_normal(10)  # a burst of noise
    mark(760, 770)
    values[950:962] = values[950]  # a flat stretch
    mark(951, 962)
    return values, labels


def main() -> None:
    values, labels = make_series()
    lines = ["step,value,label"]
    lines += [f"{i},{v:.5f},{y}" for i, (v, y) in enumerate(zip(values, labels, strict=True))]
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT} ({len(values)} points, {int(labels.sum())} anomalous)")


if __name__ == "__main__":
    main()
