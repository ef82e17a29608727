"""Keep each generator worker on one core, and a trainer's torch threads its own.

Worker processes (and Dask tasks) call ``pin_threads`` before they generate:
Numba, BLAS, Blosc and zarr's codec pool then use one thread, so N workers use N
cores and the machine is not oversubscribed (the reference generator's
multithreaded BLAS made it 20x slower on two cores; see
shared/reference/s2generator.md section 6). A process that trains and also
generates (``pretrain --generate`` makes its validation pairs itself) keeps
torch's thread count with ``torch_threads_kept``. This module imports nothing
heavy, so a spawned worker can run it before Numba reads its environment.
"""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_ENV = (
    "NUMBA_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLOSC_NTHREADS",  # c-blosc reads it on every compression call
)


def pin_threads() -> None:
    """One thread for Numba, BLAS, Blosc and zarr in this process."""
    for name in _ENV:
        os.environ[name] = "1"
    if "numba" in sys.modules:  # already imported: mask its thread pool instead
        import numba

        numba.set_num_threads(1)
    if "zarr" in sys.modules:
        import zarr

        zarr.config.set({"threading.max_workers": 1})


@contextmanager
def one_numba_thread(enabled: bool = True) -> Iterator[None]:
    """Run the block with one Numba thread, then restore the caller's count."""
    if not enabled:
        yield
        return
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


@contextmanager
def torch_threads_kept() -> Iterator[None]:
    """Give torch back its CPU thread count after the block, if torch is loaded.

    Numba's OpenMP threading layer runs on the ``libgomp.so.1`` torch loaded,
    and starting its thread pool (a process's first parallel kernel) sets the
    OpenMP thread count to Numba's, which torch then uses (measured: a
    `--threads 1` trainer that generated its validation pairs stepped on 2
    OpenMP threads, one of them spinning, 4x slower beside other work).
    Usable as a decorator.
    """
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else 0
    try:
        yield
    finally:
        if torch is not None and torch.get_num_threads() != before:
            torch.set_num_threads(before)
