"""Pairs: acceptance, y = f(stored x), determinism, and config validation."""

import json
import subprocess
import sys

import numpy as np
import pytest

from s2gen.config import SAMPLER_PRESETS, GenerateConfig
from s2gen.generators.expressions import evaluate_program
from s2gen.generators.pairs import generate_batch, generate_pair, token_length
from s2gen.kernels.excitation import SARIMA
from s2gen.kernels.pairs import STAT_NAMES
from s2gen.kernels.seeds import row_seeds
from s2gen.symbols.operators import TEMPORAL_WEIGHTS
from s2gen.symbols.render import lambdify
from tests.test_expressions import scaled_gap

MULTI = GenerateConfig(
    length=128, min_input_dim=1, max_input_dim=3, min_output_dim=1, max_output_dim=3, seed=3
)


@pytest.fixture(scope="module")
def multi_batch():
    return generate_batch(MULTI, row_seeds(MULTI.seed, 0, 3000))


def test_shapes_dtypes_and_dims(multi_batch):
    b = multi_batch
    assert b.x.shape == (3000, 3, 128) and b.x.dtype == np.float32
    assert b.y.shape == (3000, 3, 128) and b.y.dtype == np.float32
    assert set(np.unique(b.n_in)) == {1, 2, 3} and set(np.unique(b.n_out)) == {1, 2, 3}
    for i in range(len(b)):
        m, n = b.n_in[i], b.n_out[i]
        assert not b.x[i, m:].any() and not b.y[i, n:].any()
        assert not b.sampler[i, m:].any() and set(b.sampler[i, :m]) == {SARIMA}  # the default mix
        assert (b.plen[i, :n] > 0).all() and not b.plen[i, n:].any()


def test_no_accepted_pair_has_a_nonfinite_or_constant_output(multi_batch):
    b = multi_batch
    assert np.isfinite(b.x).all() and np.isfinite(b.y).all()
    for i in range(len(b)):
        y = b.y[i, : b.n_out[i]].astype(np.float64)
        assert (np.abs(y).max(axis=1) <= MULTI.max_abs_output).all()
        std = y.std(axis=1)
        assert (std > 0).all() and (std >= MULTI.min_relative_std * np.abs(y).max(axis=1)).all()


def test_stored_y_is_f_of_stored_x_by_interpreter_and_by_sympy(multi_batch):
    b = multi_batch
    for i in range(0, len(b), 10):
        x = b.x[i, : b.n_in[i]].astype(np.float64)
        for j in range(b.n_out[i]):
            want = evaluate_program(b.code[i, j], b.arg[i, j], x, b.plen[i, j])
            np.testing.assert_array_equal(b.y[i, j], want.astype(np.float32))
            text = b.expression(i, j)
            gap, _ = scaled_gap(lambdify(text, int(b.n_in[i]))(x), want)
            assert gap < 1e-9, text


def test_float16_store_evaluates_f_on_the_half_precision_inputs():
    config = GenerateConfig(dtype="float16", seed=5)
    b = generate_batch(config, row_seeds(5, 0, 500))
    assert b.x.dtype == np.float16 and b.y.dtype == np.float16
    for i in range(len(b)):
        want = evaluate_program(b.code[i, 0], b.arg[i, 0], b.x[i].astype(np.float64), b.plen[i, 0])
        np.testing.assert_array_equal(b.y[i, 0], want.astype(np.float16))
        assert b.y[i, 0].astype(np.float64).std() > 0


def test_acceptance_statistics_add_up(multi_batch):
    totals = multi_batch.stat_totals()
    assert set(totals) == set(STAT_NAMES)
    assert totals["accepted"] == 3000 and totals["failed"] == 0
    rejected = sum(v for k, v in totals.items() if k.startswith("rejected_"))
    # every excitation draw either produced the accepted pair or was rejected
    assert totals["excitation_draws"] == totals["accepted"] + rejected


def test_a_pair_depends_only_on_its_seed():
    config = GenerateConfig(seed=1)
    seeds = row_seeds(1, 0, 200)
    whole = generate_batch(config, seeds)
    part = generate_batch(config, seeds[150:170])
    one = generate_pair(config, int(seeds[160]))
    for name in ("x", "y", "code", "arg", "plen", "sampler", "n_in", "n_out"):
        np.testing.assert_array_equal(getattr(whole, name)[150:170], getattr(part, name))
        np.testing.assert_array_equal(getattr(whole, name)[160], getattr(one, name)[0])


_DIGEST = """
import hashlib, json, sys, numpy as np
from s2gen.config import SAMPLER_PRESETS, GenerateConfig
from s2gen.generators.pairs import generate_batch
from s2gen.kernels.seeds import row_seeds
config = GenerateConfig.from_dict(json.loads(sys.argv[1]))
b = generate_batch(config, row_seeds(0, 0, 2000))
h = hashlib.sha256()
tokens = b.tokens(b.token_counts().max())
for a in (b.x, b.y, b.code, b.arg, b.plen, b.sampler, b.n_in, b.n_out, tokens):
    h.update(np.ascontiguousarray(a).tobytes())
print(h.hexdigest())
"""


PAPER = {"max_input_dim": 2, "max_output_dim": 2, "sampler_weights": {}}
EVERY_FAMILY = {
    "max_input_dim": 2,
    "max_output_dim": 2,
    "sampler_weights": dict(SAMPLER_PRESETS["all"]),
    "operator_weights": TEMPORAL_WEIGHTS,
}
GIVEN = {"expressions": ["sin(x_0) + 0.5*x_1", "tlag(x_1, 4)*x_0"], "max_input_dim": 2,
         "min_input_dim": 2, "min_output_dim": 2, "max_output_dim": 2,
         "sampler_weights": dict(SAMPLER_PRESETS["reference"])}  # fmt: skip


GRAPH_AUGMENTED = {"graph": True, "min_nodes": 4, "max_nodes": 7, "max_input_dim": 2,
                   "max_output_dim": 2, "augment": {"jitter": 0.5, "time_warp": 0.5,
                   "frequency": 0.5}, "sampler_weights": dict(SAMPLER_PRESETS["all"])}  # fmt: skip


@pytest.mark.parametrize(
    "settings",
    [{"max_input_dim": 2, "max_output_dim": 2}, PAPER, EVERY_FAMILY, GIVEN, GRAPH_AUGMENTED],
    ids=["default", "paper", "every-family-temporal", "given-expressions", "graph-augmented"],
)
def test_same_bytes_with_one_and_two_numba_threads(settings):
    digests = set()
    for threads in ("1", "2"):
        env = {"NUMBA_NUM_THREADS": threads, "PATH": "/usr/bin:/bin"}
        out = subprocess.run(
            [sys.executable, "-c", _DIGEST, json.dumps(settings)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_expression_strings_and_tokens_of_a_batch(multi_batch):
    b = multi_batch
    texts = b.expressions()
    tokens = b.tokens(token_length(MULTI))
    with pytest.raises(ValueError, match="too short"):
        b.tokens(10)
    assert texts.shape == (3000, 3)
    for i in range(0, 3000, 97):
        for j in range(3):
            if j < b.n_out[i]:
                assert texts[i, j] == b.expression(i, j) and tokens[i, j, 0] != 0
            else:
                assert texts[i, j] == "" and not tokens[i, j].any()


@pytest.mark.parametrize(
    "changes,name",
    [
        (dict(length=1), "length"),
        (dict(min_input_dim=3, max_input_dim=2), "min_input_dim"),
        (dict(max_output_dim=0), "max_output_dim"),
        (dict(mixture_prob=1.5), "mixture_prob"),
        (dict(mixture_mode="blocks"), "mixture_mode"),
        (dict(dtype="float64"), "dtype"),
        (dict(operator_weights=(("add", 1.0), ("foo", 1.0))), "operator_weights"),
        (dict(input_scale_max=-1.0), "input_scale_max"),
        (dict(seed=-1), "seed"),
    ],
)
def test_bad_config_names_the_field(changes, name):
    with pytest.raises(ValueError, match=name):
        GenerateConfig(**changes)


def test_config_round_trips_through_a_dict_and_accepts_partial_weights():
    config = GenerateConfig(max_input_dim=4, operator_weights=GenerateConfig().operator_weights)
    assert GenerateConfig.from_dict(config.to_dict()) == config
    partial = GenerateConfig.from_dict({"operator_weights": {"div": 0.5}})
    assert partial.weights["div"] == 0.5 and partial.weights["sqrt"] == 5.0
    with pytest.raises(ValueError, match="unknown generation setting"):
        GenerateConfig.from_dict({"lenght": 3})


def test_the_default_mix_is_sarima_and_the_paper_mix_is_the_empty_one():
    assert GenerateConfig().sampler_weights == SAMPLER_PRESETS["sarima"]
    graph = GenerateConfig(graph=True)  # graph pairs keep their KernelSynth roots
    assert graph.sampler_weights == () and graph.family_weights() == {"kernel_synth": 1.0}
    with pytest.raises(ValueError, match=r"mixture_prob=0.5 is invalid.*--sampler-preset paper"):
        GenerateConfig(mixture_prob=0.5)  # it would have no effect on SARIMA pairs
    paper = GenerateConfig(mixture_prob=0.5, sampler_weights=SAMPLER_PRESETS["paper"])
    assert paper.family_weights() == {"mixture": 0.5, "arma": 0.5}
    assert GenerateConfig.from_dict(json.loads(json.dumps(paper.to_dict()))) == paper
    assert GenerateConfig.from_dict({"sampler_weights": None}) == GenerateConfig()
    # a header written before sampler_weights existed: its store drew the paper's mix
    older = {k: v for k, v in GenerateConfig().to_dict().items() if k != "sampler_weights"}
    assert GenerateConfig.from_stored(older) == GenerateConfig(sampler_weights=())
    assert GenerateConfig.from_dict(older) == GenerateConfig()  # a user's file: today's default


def test_impossible_acceptance_raises_with_the_fix():
    config = GenerateConfig(max_abs_output=1e-6, max_expression_draws=20)
    with pytest.raises(RuntimeError, match="max_abs_output"):
        generate_batch(config, row_seeds(0, 0, 4))
