"""Keep each generator worker on one core.

Worker processes (and Dask tasks) call ``pin_threads`` before they generate:
Numba, BLAS, Blosc and zarr's codec pool then use one thread, so N workers use N
cores and the machine is not oversubscribed (the reference generator's
multithreaded BLAS made it 20x slower on two cores; see
shared/reference/s2generator.md section 6). This module imports nothing heavy,
so a spawned worker can run it before Numba reads its environment.
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
