"""Every bad input gets one line naming the parameter and the fix, the right exit code, and
leaves nothing behind (issue 13, section 3). Each test runs the real command through the
``s2gen`` group, as a user does."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from s2gen import store as s2store
from s2gen.cli import main
from s2gen.cli_errors import ErrorGroup, user_error
from s2gen.config import GenerateConfig
from s2gen.pretrain import PretrainConfig, checkpoint
from s2gen.pretrain.model import Pretrainer
from s2gen.pretrain.symbols import pretraining_vocabulary
from s2gen.symbols.vocabulary import vocabulary
from tests.tiny import tiny

TINY_STORE = ["--length", "32", "--chunk-rows", "32", "--shard-rows", "64", "--quiet"]
TINY_MODEL = tiny(
    window=64,
    patch=16,
    queue_size=64,
    batch_size=16,
    max_tokens=32,
)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, code: int, *needles: str) -> str:
    """Exit ``code``, no traceback, one 'Error:' line holding every needle; returns that line."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("errors") / "s.zarr"
    result = invoke("generate", "--n", 70, "--out", path, *TINY_STORE, "--workers", 1)
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A real (untrained) pretraining checkpoint of a d_model 16 model."""
    cfg = PretrainConfig.preset("ci", **TINY_MODEL)
    torch.manual_seed(0)
    model = Pretrainer(cfg, pretraining_vocabulary(vocabulary()))
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    checkpoint.save(path, {"model": model.state_dict(), "config": cfg.to_dict(), "step": 0})
    return path


# --- generate ------------------------------------------------------------------------------


def test_malformed_yaml_config_names_the_file_and_line(tmp_path):
    conf = tmp_path / "gen.yaml"
    conf.write_text("n: [1, 2\nlength: 3\n")
    out = tmp_path / "s.zarr"
    result = invoke("generate", "--config", conf, "--out", out)
    assert_one_line_error(result, 2, "--config", "gen.yaml", "line 2")
    assert not out.exists()


@pytest.mark.parametrize(
    "text,kind", [("[1, 2]", "list"), ('"n"', "str"), ("3", "int")], ids=["list", "str", "int"]
)
def test_json_config_that_is_not_a_mapping_is_refused(tmp_path, text, kind):
    conf = tmp_path / "gen.json"
    conf.write_text(text)
    out = tmp_path / "s.zarr"
    result = invoke("generate", "--config", conf, "--out", out)
    assert_one_line_error(result, 2, "--config", f"holds a {kind}", "mapping")
    assert not out.exists()


def test_json_and_toml_syntax_errors_are_one_line(tmp_path):
    for name, text in (("gen.json", '{"n": 1,'), ("gen.toml", "n = \n")):
        conf = tmp_path / name
        conf.write_text(text)
        result = invoke("generate", "--config", conf, "--out", tmp_path / "s.zarr")
        assert_one_line_error(result, 2, "--config", f"cannot parse {conf}")
    assert not (tmp_path / "s.zarr").exists()


def test_expression_with_an_attribute_is_refused_naming_expr(tmp_path):
    out = tmp_path / "s.zarr"
    result = invoke("generate", "--n", 10, "--expr", "x_0.real", "--out", out, "--quiet")
    assert_one_line_error(result, 2, "--expr", "x_0.real")
    assert not out.exists()


def test_half_power_is_sqrt_of_abs_and_other_powers_are_refused_naming_expr(tmp_path):
    out = tmp_path / "s.zarr"
    result = invoke("generate", "--n", 10, "--expr", "x_0**0.5", "--out", out, "--quiet")
    assert result.exit_code == 0, result.output  # sqrt(|x_0|), the language's rule for sqrt
    bad = tmp_path / "bad.zarr"
    result = invoke("generate", "--n", 10, "--expr", "x_0**0.7", "--out", bad, "--quiet")
    line = assert_one_line_error(result, 2, "--expr", "0.7")
    assert "-3..3" in line and "+-0.5" in line
    assert not bad.exists()


@pytest.mark.parametrize(
    "expr,why",
    [
        ("exp(exp(exp(exp(x_0))))", "gave inf or nan"),
        ("sin(x_0)**2 + cos(x_0)**2", "were (nearly) constant"),
        ("2*exp(x_0)", "exceeded max_abs_output"),
    ],
    ids=["nonfinite", "constant", "too-large"],
)
def test_expression_the_rules_always_reject_is_refused_before_a_store_exists(tmp_path, expr, why):
    out = tmp_path / "s.zarr"
    extra = ["--input-scale-max", "0", "--max-abs-output", "1"] if "2*exp" in expr else []
    result = invoke("generate", "--n", 100, "--expr", expr, "--out", out, *TINY_STORE, *extra)
    line = assert_one_line_error(result, 2, why, "pairs found no excitation")
    assert "relax" in line
    assert not out.exists()


def test_a_config_whose_sampled_expressions_always_fail_is_refused(tmp_path):
    out = tmp_path / "s.zarr"
    result = invoke("generate", "--n", 100, "--out", out, "--max-abs-output", "1e-6", *TINY_STORE)
    assert_one_line_error(result, 2, "no accepted expression", "exceeded max_abs_output")
    assert not out.exists()


def test_huge_length_is_refused_with_a_layout_that_fits(tmp_path):
    out = tmp_path / "s.zarr"
    result = invoke("generate", "--n", 10, "--length", 1 << 20, "--out", out, "--quiet")
    line = assert_one_line_error(result, 2, "--shard-rows", "--length 1048576", "limit is 1.0 GB")
    assert "use --shard-rows 64 --chunk-rows 64" in line
    assert not out.exists()


def test_config_errors_name_the_option(tmp_path):
    result = invoke("generate", "--n", 10, "--out", tmp_path / "s.zarr", "--length", 1)
    assert_one_line_error(result, 2, "--length", "length=1")
    result = invoke("generate", "--n", 10, "--out", tmp_path / "s.zarr", "--arma-max-p", 0)
    assert_one_line_error(result, 2, "--arma-max-p", "arma_max_p=0")
    assert not (tmp_path / "s.zarr").exists()


# --- pretrain, embed, evaluate, finetune, oats -----------------------------------------------


def test_pretrain_out_that_is_a_file_is_refused(store, tmp_path):
    afile = tmp_path / "run"
    afile.write_text("keep me")
    result = invoke("pretrain", "--data", store, "--out", afile, "--preset", "ci", "--quiet")
    assert_one_line_error(result, 2, "'--out'", "is a file")
    assert afile.read_text() == "keep me"


@pytest.mark.parametrize("command", ["embed", "evaluate", "finetune"])
def test_a_checkpoint_that_is_not_one_is_refused_by_every_command(tmp_path, command):
    fake = tmp_path / "notes.pt"
    fake.write_text("hello")
    series = tmp_path / "x.npy"
    np.save(series, np.zeros((2, 32), np.float32))
    out = tmp_path / "out"
    args = {
        "embed": ["--input", series, "--out", tmp_path / "e.npy"],
        "evaluate": ["--task", "classification", "--dataset", "GunPoint", "--out", out],
        "finetune": ["--dataset", "GunPoint", "--out", out],
    }[command]
    result = invoke(command, "--checkpoint", fake, *args)
    assert_one_line_error(result, 1, "notes.pt is not an s2gen checkpoint", "s2gen pretrain")
    assert not out.exists() and not (tmp_path / "e.npy").exists()


def test_a_generator_that_is_not_one_is_refused(store, tmp_path):
    fake = tmp_path / "gen.pt"
    fake.write_text("hello")
    out = tmp_path / "samples.npy"
    result = invoke("oats", "sample", "--generator", fake, "--guides", store, "--out", out)
    assert_one_line_error(result, 1, "gen.pt is not a readable generator checkpoint", "train-gen")
    run = tmp_path / "run"
    result = invoke("pretrain", "--data", store, "--out", run, "--preset", "ci", "--oats", fake)
    assert_one_line_error(result, 1, "gen.pt is not a readable generator checkpoint")
    assert not out.exists() and not (run / "last.pt").exists()


def _write(path, content) -> None:
    if path.suffix == ".npy":
        np.save(path, content, allow_pickle=True)
    else:
        path.write_text(content)


@pytest.mark.parametrize(
    "name,content,needle",
    [
        ("text.csv", "a,b\n1,2\n", "is not a numeric table"),
        ("ragged.csv", "1,2,3\n4,5\n", "is not a numeric table"),
        ("objects.npy", np.array([np.arange(3), np.arange(2)], dtype=object), "numeric array"),
        ("strings.npy", np.array(["a", "b"]), "holds <U1 values"),
        ("cube.npy", np.zeros((2, 3, 4)), "holds shape (2, 3, 4)"),
        ("empty.csv", "", "holds shape"),
    ],
    ids=lambda v: v if isinstance(v, str) and "." in v else "",
)
def test_embed_input_that_is_not_a_numeric_table_is_refused(ckpt, tmp_path, name, content, needle):
    source = tmp_path / name
    _write(source, content)
    out = tmp_path / "emb.npy"
    result = invoke("embed", "--checkpoint", ckpt, "--input", source, "--out", out)
    assert_one_line_error(result, 2, "--input", name, needle)
    assert not out.exists()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_embed_input_with_nan_or_inf_is_refused_naming_the_rows(ckpt, tmp_path, bad):
    series = np.random.default_rng(0).normal(size=(9, 40))
    series[3, 7] = bad
    series[8, 0] = bad
    source = tmp_path / "x.csv"
    np.savetxt(source, series, delimiter=",")
    out = tmp_path / "emb.npy"
    result = invoke("embed", "--checkpoint", ckpt, "--input", source, "--out", out)
    assert_one_line_error(result, 2, "--input", "NaN or inf in 2 row(s) (0-based: 3, 8)")
    assert not out.exists()
    series[[3, 8]] = 0.0  # the same input without the gaps embeds
    np.savetxt(source, series, delimiter=",")
    result = invoke("embed", "--checkpoint", ckpt, "--input", source, "--out", out)
    assert result.exit_code == 0, result.output
    assert np.isfinite(np.load(out)).all() and np.load(out).shape == (9, 2 * 16)


# --- validate, show ------------------------------------------------------------------------


def test_validate_negative_sample_is_refused(store):
    assert_one_line_error(invoke("validate", store, "--sample", -5), 2, "'--sample'", "-5")
    assert_one_line_error(invoke("info", store, "--sample", -5), 2, "'--sample'", "-5")
    assert invoke("info", store, "--sample", 0).exit_code == 0  # no operator counts, no error


def test_validate_and_info_of_a_store_without_a_committed_shard(tmp_path):
    path = tmp_path / "s.zarr"
    assert invoke("generate", "--n", 100, "--out", path, *TINY_STORE, "--workers", 1).exit_code == 0
    for k in (0, 1):
        s2store.drop_shard(str(path), k)
    result = invoke("validate", path)
    assert result.exit_code == 1 and "Traceback" not in result.output
    for k in (0, 1):
        assert f"shard {k} is not committed" in result.output
    assert "0 rows and 2 shards checked" in result.output
    assert "complete_shards: 0 of 2" in invoke("info", path).output


def test_show_counts_negative_indices_from_the_end(store):
    last = invoke("show", store, -1)
    assert last.exit_code == 0, last.output
    assert last.output.startswith("pair 69 of ")
    assert invoke("show", store, 69).output == last.output
    first = invoke("show", store, -70)
    assert first.exit_code == 0 and first.output.startswith("pair 0 of ")
    line = assert_one_line_error(invoke("show", store, -71), 2, "INDEX", "-71", "0..69")
    assert "-70..-1" in line
    assert_one_line_error(invoke("show", store, 70), 2, "INDEX", "70")


# --- memory --------------------------------------------------------------------------------


def test_pretrain_batch_size_beyond_memory_is_refused_before_anything_is_written(store, tmp_path):
    run = tmp_path / "run"
    args = ["--data", store, "--out", run, "--preset", "small", "--device", "cpu", "--quiet"]
    result = invoke("pretrain", *args, "--batch-size", 1 << 20)
    line = assert_one_line_error(result, 2, "--batch-size 1048576 needs about", "GB available")
    fits = int(line.rsplit("--batch-size <= ", 1)[1])
    assert 2 <= fits < 1 << 20
    assert not run.exists()


@pytest.mark.parametrize("command", ["evaluate", "finetune"])
def test_embedding_and_finetuning_batch_beyond_memory_is_refused(ckpt, tmp_path, command):
    out = tmp_path / "out"
    args = {
        "evaluate": ["--task", "classification", "--dataset", "GunPoint", "--out", out],
        "finetune": ["--dataset", "GunPoint", "--out", out],
    }[command]
    result = invoke(command, "--checkpoint", ckpt, *args, "--batch-size", 10**12)
    assert_one_line_error(result, 2, "--batch-size 1000000000000 needs about", "use --batch-size")
    assert not out.exists()


@pytest.mark.parametrize("command", ["evaluate", "finetune"])
def test_preset_without_random_init_is_refused(ckpt, tmp_path, command):
    out = tmp_path / "out"
    task = ["--task", "classification"] if command == "evaluate" else []
    args = [*task, "--dataset", "GunPoint", "--out", out, "--preset", "base"]
    result = invoke(command, "--checkpoint", ckpt, *args)
    assert_one_line_error(result, 2, "for --preset", "--random-init only", "drop --preset")
    assert not out.exists()


# --- the error layer itself ----------------------------------------------------------------


def _group_raising(exc_factory):
    group = ErrorGroup()

    @group.command()
    def boom():
        exc_factory()

    return group


def test_user_errors_become_one_line_and_bugs_keep_their_traceback(tmp_path):
    runner = CliRunner()
    config_error = runner.invoke(_group_raising(lambda: GenerateConfig(length=1)), ["boom"])
    assert_one_line_error(config_error, 1, "length=1 is invalid")
    missing = tmp_path / "missing.txt"
    no_file = runner.invoke(_group_raising(lambda: open(missing)), ["boom"])
    assert_one_line_error(no_file, 1, str(missing), "check the path")
    bad_json = runner.invoke(_group_raising(lambda: json.loads("{")), ["boom"])
    assert_one_line_error(bad_json, 2, "cannot parse")
    # a ValueError raised by numpy (not by s2gen) is a bug: it propagates with its traceback
    bug = runner.invoke(_group_raising(lambda: np.zeros(2) + np.zeros(3)), ["boom"])
    assert isinstance(bug.exception, ValueError) and "operands could not" in str(bug.exception)
    key_error = runner.invoke(_group_raising(lambda: {}["x"]), ["boom"])
    assert isinstance(key_error.exception, KeyError)


def test_only_errors_s2gen_raises_itself_count_as_user_errors(tmp_path):
    """A ValueError from a ``raise`` in s2gen code is a message; one from numpy called by s2gen
    code (no ``raise`` of ours) is a bug."""
    import importlib.util

    source = tmp_path / "s2gen_fake_module.py"
    source.write_text(
        "import numpy as np\n\n\ndef ours():\n    raise ValueError('n=0 is invalid: use 1')"
        "\n\n\ndef numpys():\n    return np.concatenate([])\n"
    )
    spec = importlib.util.spec_from_file_location("s2gen_fake_module", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for function, is_user_error in ((module.ours, True), (module.numpys, False)):
        with pytest.raises(ValueError) as caught:
            function()
        assert (user_error(caught.value) is not None) == is_user_error
