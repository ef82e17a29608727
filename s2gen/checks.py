"""Field checks shared by the frozen config dataclasses: errors name the field and the fix."""

import dataclasses
from typing import Any


def fail(name: str, value: Any, fix: str) -> None:
    """Raise ValueError naming the field ``name``, its value and the fix."""
    raise ValueError(f"{name}={value!r} is invalid: {fix}")


def check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    """``value`` must be an int (not a bool) in [low, high] (no upper bound if None)."""
    if isinstance(value, bool) or not isinstance(value, int):
        fail(name, value, "it must be an integer")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        fail(name, value, f"it must be {bound}")


def check_float(
    name: str, value: Any, low: float, high: float | None = None, open_low: bool = False
) -> None:
    """``value`` must be a real number in [low, high] ((low, high] with ``open_low``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(name, value, "it must be a number")
    above = value > low if open_low else value >= low
    if not (above and (high is None or value <= high)):
        upper = f"{high}]" if high is not None else "inf)"
        fail(name, value, f"it must be in {'(' if open_low else '['}{low}, {upper}")


def check_known(cls: type, data: Any, what: str = "") -> None:
    """Every key of ``data`` must be a field of the dataclass ``cls``; the error lists them."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        kind = f"{what} " if what else ""
        raise ValueError(
            f"unknown {kind}setting(s) {unknown}; known are {', '.join(sorted(known))}"
        )
