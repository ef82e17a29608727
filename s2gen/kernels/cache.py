"""Whether the Numba cache already holds the kernels, so the CLI can warn before a cold compile.

The first ``s2gen generate`` (or ``validate``) in a fresh install compiles the
kernels for about a minute; later runs load them from Numba's on-disk cache
(``__pycache__`` beside the modules, or ``NUMBA_CACHE_DIR``). Numba keeps one
index file per function; an index that is missing or was written for another
version of the source means that function will be compiled.
"""


def entry_kernels() -> tuple:
    """The kernels Python calls during generation (each compiles everything it calls)."""
    from s2gen.kernels.pairs import generate_rows
    from s2gen.kernels.render import render_batch, tokens_batch
    from s2gen.kernels.seeds import _row_seeds

    return generate_rows, render_batch, tokens_batch, _row_seeds


def kernels_cached() -> bool:
    """False when some entry kernel has no usable entry in the Numba cache (a compile is due).

    True when every index is present and current, and also when it cannot
    tell: under ``NUMBA_DISABLE_JIT`` (nothing compiles) or a Numba whose
    cache layout differs.
    """
    for kernel in entry_kernels():
        index = getattr(getattr(kernel, "_cache", None), "_cache_file", None)
        load_index = getattr(index, "_load_index", None)
        if load_index is None:
            continue
        try:
            if not load_index():
                return False
        except Exception:  # an unreadable index: Numba will compile, and rewrite it
            return False
    return True


COMPILE_NOTICE = (
    "compiling the Numba kernels once (about a minute on 2 cores); later runs load them from "
    "the cache"
)
