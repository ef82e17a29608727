"""Kernel bodies run as plain Python (NUMBA_DISABLE_JIT=1) give the compiled kernels' bytes.

This keeps every kernel debuggable with a Python debugger: the test computes a
digest of small generated batches in this process and in a subprocess with the
opposite JIT setting, and requires equality. The plain batch's rows were chosen so that
between them they use every operator and every sampler family (a test asserts it); a
graph batch with every augmentation covers those kernels. CI runs this file once more
with NUMBA_DISABLE_JIT=1.
"""

import hashlib
import os
import subprocess
import sys

import numpy as np

from s2gen.config import AUGMENTATIONS, SAMPLER_PRESETS, GenerateConfig
from s2gen.generators.pairs import generate_batch, token_length
from s2gen.kernels.excitation import SAMPLER_CODES
from s2gen.kernels.seeds import row_seeds
from s2gen.symbols.operators import BY_CODE, OPERATORS

SMALL = GenerateConfig(
    length=24,
    max_input_dim=2,
    max_output_dim=2,
    arma_burn_in=16,
    operator_weights=tuple((op.name, 1.0) for op in OPERATORS),
    sampler_weights=SAMPLER_PRESETS["all"],
)


# rows of row_seeds(1, ...) that together use all 24 operators and all 6 sampler families
# (a greedy set cover over the first 3000 rows)
ROWS = [33, 283, 461, 1362, 2630]
GRAPH = SMALL.replace(
    graph=True,
    min_nodes=5,
    max_nodes=6,
    augment=tuple((name, 0.5) for name in AUGMENTATIONS),
)


def twin_batch():
    return generate_batch(SMALL, row_seeds(1, 0, max(ROWS) + 1)[ROWS])


def digest() -> str:
    h = hashlib.sha256()
    graph_batch = generate_batch(GRAPH, row_seeds(1, 0, 6))
    for config, batch in ((SMALL, twin_batch()), (GRAPH, graph_batch)):
        for array in (
            batch.x,
            batch.y,
            batch.code,
            batch.arg,
            batch.sampler,
            batch.stats,
            batch.tokens(token_length(config)),
        ):
            h.update(np.ascontiguousarray(array).tobytes())
        h.update("|".join(map(str, batch.expressions().ravel())).encode())
    h.update(np.ascontiguousarray(graph_batch.augment).tobytes())
    h.update(np.ascontiguousarray(graph_batch.graph.parent_masks()).tobytes())
    return h.hexdigest()


def test_python_and_compiled_kernels_give_the_same_bytes():
    jit_disabled = os.environ.get("NUMBA_DISABLE_JIT", "0") == "1"
    env = {**os.environ, "NUMBA_DISABLE_JIT": "0" if jit_disabled else "1"}
    code = "from tests.test_nojit import digest; print(digest())"
    other = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    assert other.stdout.strip() == digest()


def test_the_twin_batch_uses_every_operator_and_every_sampler_family():
    batch = twin_batch()
    operators, samplers = set(), set()
    for i in range(len(batch)):
        samplers.update(batch.sampler[i, : batch.n_in[i]].tolist())
        for j in range(batch.n_out[i]):
            program = batch.code[i, j, : batch.plen[i, j]].tolist()
            operators.update(BY_CODE[c].name for c in program if c in BY_CODE)
    assert operators == {op.name for op in OPERATORS}
    assert samplers == set(SAMPLER_CODES.values())
