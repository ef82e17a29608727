"""Pairs of given expressions (``--expr``), sampler-family options, and the sympy parser."""

import re

import numpy as np
import pytest
from click.testing import CliRunner

from s2gen import store as s2store
from s2gen.cli import main
from s2gen.config import GenerateConfig
from s2gen.generators.pairs import generate_batch
from s2gen.kernels.seeds import row_seeds
from s2gen.symbols.parse import ExpressionError, program_of
from s2gen.symbols.render import lambdify, to_infix

EXACT = [  # the stored rendering is the same function on every input
    "sin(x_0) + 0.5*x_1",
    "x_0 - x_1 - 2*x_2",
    "x_0/x_1 + x_2**-2",
    "-x_0 + x_1**3",
    "exp(-x_0**2/2)*cos(3*x_1)",
    "atan(x_0)*Abs(x_1) + tan(0.1*x_2)",
    "tlag(x_0, 4) + tdiff(tmavg(x_1, 16)) - tcumsum(x_2)*1e-3",
    "sqrt(Abs(x_0)) + log(Abs(x_1)) + 1/3",
]
DOMAIN = ["sqrt(x_0) + log(x_1)", "1/sqrt(x_2)"]  # equal where the text is real (x > 0)


@pytest.mark.parametrize("text", EXACT + DOMAIN)
def test_rendered_program_is_the_users_function(text):
    x = np.random.default_rng(0).uniform(0.5, 2.0, (3, 64))
    if text in EXACT:
        x[:, ::2] *= -1  # negative inputs too
    want = lambdify(text, 3)(x)
    got = lambdify(to_infix(*program_of(text)), 3)(x)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("x_0 + 0.1234", "three significant digits"),
        ("x_0 + 1e-12", "three significant digits"),
        ("x_0**5", "power 5"),
        ("gamma(x_0)", "not in s2gen's language"),
        ("x_16 + 1", "x_0 .. x_15"),
        ("2 + 3", "no input variable"),
        ("x_0 + 0", "zero constant"),
        ("tlag(x_0, 3)", "k in [1, 4, 16]"),
        ("x_0 +", "cannot parse"),
    ],
)
def test_unrepresentable_expression_is_refused_with_the_reason(text, reason):
    with pytest.raises(ExpressionError, match=re.escape(reason)):
        program_of(text)


def test_library_pairs_of_given_expressions_evaluate_exactly():
    config = GenerateConfig.for_expressions(
        ["sin(x_0) + 0.5*x_1", "tdiff(x_1)*x_0"], length=64, sampler_weights=(("imf", 1.0),)
    )
    assert (config.min_input_dim, config.max_input_dim, config.max_output_dim) == (2, 2, 2)
    batch = generate_batch(config, row_seeds(0, 0, 50))
    assert batch.stat_totals()["failed"] == 0 and np.all(batch.n_out == 2)
    for i in range(0, 50, 7):
        for j in range(2):
            assert batch.expression(i, j) == to_infix(*program_of(config.expressions[j]))
            want = lambdify(batch.expression(i, j), 2)(batch.x[i].astype(np.float64))
            np.testing.assert_allclose(batch.y[i, j], want.astype(np.float32), rtol=2e-7)


def test_given_expression_that_never_passes_fails_with_the_fix():
    config = GenerateConfig.for_expressions(["exp(exp(exp(x_0)))"], input_scale_max=16.0)
    config = config.replace(excitation_retries=2, max_expression_draws=3)
    with pytest.raises(RuntimeError, match="relax"):
        generate_batch(config, row_seeds(0, 0, 4))


def test_cli_expr_store_validates_and_records_the_expressions(tmp_path):
    path = tmp_path / "given.zarr"
    args = ["generate", "--n", "96", "--out", str(path), "--length", "32", "--quiet",
            "--chunk-rows", "32", "--shard-rows", "64", "--sampler-preset", "all",
            "--expr", "sin(x_0) + 0.5*x_1", "--expr", "tlag(x_1, 4)*x_0"]  # fmt: skip
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    view = s2store.open(str(path))
    assert view.config.expressions == ("sin(x_0) + 0.5*x_1", "tlag(x_1, 4)*x_0")
    pair = view[5]
    assert pair.expr == ["(sin(x_0) + (0.5*x_1))", "(tlag(x_1, 4)*x_0)"]
    assert len(pair.x) == 2
    result = CliRunner().invoke(main, ["validate", str(path), "--sample", "0"])
    assert result.exit_code == 0 and "OK: 96 rows" in result.output, result.output


def test_cli_sampler_and_temporal_options_reach_the_store(tmp_path):
    path = tmp_path / "mix.zarr"
    mix = [
        "--samplers",
        "kernel_synth=1,trend_season=1",
        "--temporal-ops",
        "--operators",
        "lag16=0",
    ]
    args = ["generate", "--n", "64", "--out", str(path), "--length", "64", "--quiet",
            "--chunk-rows", "32", "--shard-rows", "64", *mix]  # fmt: skip
    assert CliRunner().invoke(main, args).exit_code == 0
    view = s2store.open(str(path))
    weights = dict(view.config.sampler_weights)
    assert weights == {"kernel_synth": 1.0, "trend_season": 1.0}
    assert view.config.weights["diff"] == 1.0
    assert view.config.weights["lag16"] == 0.0  # --operators overrides --temporal-ops
    codes = set(np.unique(view.read(0, 64, ["sampler"])["sampler"]))
    assert codes == {3, 4}
