"""Pretraining data sources (issue 15): S2 stores and real unlabeled series, mixed in one stream.

Real series come from UCR/UEA folders (TRAIN splits only), .ts/.csv/.npy files; they are
windowed like store rows or resized to the window, split by a hash of (file, case), and
chunk-shuffled with the stores' chunks so that ranks stay disjoint and a resume is exact.
"""

import builtins
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from s2gen.evaluate.cli import evaluate, finetune
from s2gen.pretrain import load_encoder, run
from s2gen.pretrain.cli import embed, pretrain
from s2gen.pretrain.data import split_of
from s2gen.pretrain.generated import GeneratorSource, preset_config
from s2gen.pretrain.sources import (
    SeriesSource,
    StoreSource,
    case_splits,
    open_sources,
    series_windows,
)
from s2gen.pretrain.stream import S2WindowStream, held_out_set, make_loader
from s2gen.store import open as open_store
from tests.test_pretrain_run import make_store, tiny_cfg

torch.set_num_threads(1)
DATA = Path(__file__).parent / "data" / "evaluate"


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return make_store(tmp_path_factory)


@pytest.fixture(scope="module")
def series_file(tmp_path_factory):
    """300 random walks of 100 points and 100 of 20 points (shorter than the 64-point window)."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("series") / "walks.npy"
    np.save(path, rng.normal(size=(300, 100)).cumsum(1).astype(np.float32))
    short = tmp_path_factory.getbasetemp() / "series" / "short.npy"
    short.parent.mkdir(exist_ok=True)
    np.save(short, rng.normal(size=(100, 20)).astype(np.float32))
    return str(path), str(short)


def archive(root: Path) -> Path:
    """A UCR-style folder: Ramps/ and Wobble/ with their TRAIN and TEST files."""
    for name in ("Ramps", "Wobble"):
        (root / name).mkdir(parents=True)
        for split in ("TRAIN", "TEST"):
            shutil.copy(DATA / f"{name}_{split}.ts", root / name / f"{name}_{split}.ts")
    return root


def test_a_ucr_folder_gives_its_train_splits_and_never_opens_a_test_file(tmp_path, monkeypatch):
    root = archive(tmp_path / "ucr")
    opened = []
    for module in (io, builtins):
        real = module.open

        def spy(file, *args, _real=real, **kwargs):
            opened.append(str(file))
            return _real(file, *args, **kwargs)

        monkeypatch.setattr(module, "open", spy)
    source = SeriesSource(str(root), tiny_cfg())
    monkeypatch.undo()
    assert any(p.endswith("Ramps_TRAIN.ts") for p in opened)
    assert any(p.endswith("Wobble_TRAIN.ts") for p in opened)
    assert not [p for p in opened if "_TEST" in p]
    assert len(source.series) == 8 * 1 + 6 * 2  # Ramps: 8 cases; Wobble: 6 cases x 2 channels
    assert sorted({len(s) for s in source.series}) == [5, 6, 7, 8, 9, 12]
    assert all(np.isfinite(s).all() for s in source.series)  # Wobble's "?" filled
    assert sorted(set(source.row.tolist())) == list(range(14))  # cases counted over files
    for row in range(8, 14):  # a case's channels share its split
        assert len(set(source.split[source.row == row].tolist())) == 1
    with pytest.raises(ValueError, match="test split, which is never pretrained on"):
        open_sources([str(root / "Ramps" / "Ramps_TEST.ts")], tiny_cfg())


def test_files_of_every_format_and_their_errors(tmp_path):
    cfg = tiny_cfg()
    ts = SeriesSource(str(DATA / "Ramps_TRAIN.ts"), cfg)
    assert len(ts.series) == 8 and all(len(s) == 12 for s in ts.series)
    (tmp_path / "a.csv").write_text("date,a,b\n2000-01,1,10\n2000-02,,11\n2000-03,3,NA\n")
    csv = SeriesSource(str(tmp_path / "a.csv"), cfg)  # the date column is no series
    got = sorted(s.tolist() for s in csv.series)
    assert got == [[1.0, 2.0, 3.0], [10.0, 11.0, 11.0]]  # gaps filled in time
    np.save(tmp_path / "one.npy", np.arange(5.0))
    assert len(SeriesSource(str(tmp_path / "one.npy"), cfg).series) == 1
    np.save(tmp_path / "rows.npy", np.ones((3, 7)))
    assert [len(s) for s in SeriesSource(str(tmp_path / "rows.npy"), cfg).series] == [7, 7, 7]
    np.save(tmp_path / "cube.npy", np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"give \(L,\) or \(n, L\)"):
        SeriesSource(str(tmp_path / "cube.npy"), cfg)
    np.save(tmp_path / "inf.npy", np.array([[1.0, np.inf]]))
    with pytest.raises(ValueError, match="infinite"):
        SeriesSource(str(tmp_path / "inf.npy"), cfg)
    (tmp_path / "x.parquet").write_text("")
    with pytest.raises(ValueError, match="give an s2gen store, a folder of UCR/UEA sets"):
        open_sources(str(tmp_path / "x.parquet"), cfg)
    with pytest.raises(ValueError, match="does not exist"):
        open_sources(str(tmp_path / "nothing.npy"), cfg)
    with pytest.raises(ValueError, match="no --data"):
        open_sources([], cfg)


def test_long_series_give_store_windows_and_short_ones_are_resized():
    cfg = tiny_cfg(crop_prob=0.0)  # window 64, plain windows only
    rng = np.random.default_rng(1)
    long = [rng.normal(size=200) for _ in range(5)]
    short = [rng.normal(size=20), np.array([3.0])]
    windows, offset, span = series_windows(long + short, cfg, np.random.default_rng(2))
    assert windows.shape == (7, 64) and windows.dtype == np.float32
    for series, window, first in zip(long, windows[:5], offset[:5], strict=True):
        np.testing.assert_allclose(series[first : first + 64], window, atol=1e-6)  # a slice
    assert (span[:5] == 64).all() and list(span[5:]) == [20, 1] and (offset[5:] == 0).all()
    grid = np.linspace(0, 19, 64)
    np.testing.assert_allclose(windows[5], np.interp(grid, np.arange(20), short[0]), atol=1e-6)
    np.testing.assert_array_equal(windows[6], np.full(64, 3.0, np.float32))
    centred = series_windows(long, cfg, None)[0]
    np.testing.assert_allclose(centred[0], long[0][68:132], atol=1e-6)


def test_case_splits_are_a_stable_hash_of_file_and_case():
    cfg = tiny_cfg(val_permille=100, reference_permille=50)
    splits = case_splits("A_TRAIN.ts", 20_000, cfg)
    assert np.array_equal(splits, case_splits("A_TRAIN.ts", 20_000, cfg.replace(seed=9)))
    assert abs((splits == 1).mean() - 0.10) < 0.01 and abs((splits == 2).mean() - 0.05) < 0.01
    assert not np.array_equal(splits, case_splits("B_TRAIN.ts", 20_000, cfg))
    assert np.array_equal(splits[:100], case_splits("A_TRAIN.ts", 100, cfg))  # prefix-stable


def assert_resumes_exactly(data, cfg, first: list[dict]) -> None:
    """A loader started at batch 3, 4 or 5 gives ``first``'s batches from there on."""
    for start in (3, 4, 5):
        resumed = iter(make_loader(data, cfg, start_batch=start))
        for expected in first[start:]:
            got = next(resumed)
            for key in ("source", "row", "series", "tokens"):
                assert torch.equal(got[key], expected[key]), (start, key)


def test_mixed_sources_stream_is_disjoint_across_ranks_and_resumes_exactly(store_path, series_file):
    walks, short = series_file
    data = [store_path, walks, short]
    cfg = tiny_cfg(batch_size=16)
    sources = open_sources(data, cfg)
    per_rank = []
    for rank in (0, 1):
        stream = iter(S2WindowStream(sources, cfg, rank=rank, world_size=2))
        keys = set()
        for _ in range(40):
            batch = next(stream)
            keys |= set(
                zip(*(batch[k].tolist() for k in ("source", "row", "channel")), strict=True)
            )
        per_rank.append(keys)
    assert per_rank[0] and per_rank[1] and not per_rank[0] & per_rank[1]
    seen = per_rank[0] | per_rank[1]
    assert {k[0] for k in seen} == {0, 1, 2}  # every source is drawn
    seeds = open_store(store_path).read(0, 3072, ["seed"])["seed"]
    for k, source in ((1, sources[1]), (2, sources[2])):
        pairs = zip(source.row.tolist(), source.channel.tolist(), strict=True)
        split = dict(zip(pairs, source.split, strict=True))
        assert all(split[(r, c)] == 0 for s, r, c in seen if s == k)  # train series only
    store_rows = np.array([r for s, r, _ in seen if s == 0])
    assert (split_of(seeds[store_rows], 150, 50) == 0).all()

    cfg = tiny_cfg(batch_size=16, num_workers=2)
    fresh = iter(make_loader(data, cfg))
    first = [next(fresh) for _ in range(8)]
    real = torch.cat([b["source"] for b in first]) > 0
    assert real.any() and (~real).any()
    tokens = torch.cat(
        [torch.nn.functional.pad(b["tokens"], (0, 40 - b["tokens"].shape[1])) for b in first]
    )
    has = torch.cat([b["has_symbol"] for b in first])
    assert not has[real].any() and (tokens[real] == 0).all()  # real series carry no symbol
    assert (torch.cat([b["expr_id"] for b in first])[real] == -1).all()
    assert_resumes_exactly(data, cfg, first)


def test_data_shares_set_each_sources_share_of_the_batches_and_resume_exactly(
    store_path, series_file
):
    walks, short = series_file
    data = [store_path, walks, short]
    cfg = tiny_cfg(objective="mae", batch_size=16, data_shares=(1.0, 3.0, 0.0))
    stream = iter(S2WindowStream(data, cfg))
    batches = [next(stream) for _ in range(200)]
    source = torch.cat([b["source"] for b in batches]).numpy()
    assert all(len(b["source"]) == 16 for b in batches)
    # 3,200 samples, binomial share 0.75: standard deviation 0.0077, tolerance 4 of them
    assert abs((source == 1).mean() - 0.75) < 0.031
    assert not (source == 2).any()  # a zero share leaves the source out of training
    counts = [np.bincount(b["source"].numpy(), minlength=3) for b in batches]
    assert len({tuple(c) for c in counts}) > 1  # counts are drawn per batch, not fixed
    # the walks' 5 chunks are their own epochs: each train walk comes round again and again
    train = open_sources(data, cfg)[1]
    n_train = int((train.split == 0).sum())
    rows = torch.cat([b["row"] for b in batches]).numpy()[source == 1]
    seen = np.bincount(rows, minlength=300)
    assert (seen > 0).sum() == n_train and seen.max() - seen[seen > 0].min() <= 1
    plain = iter(S2WindowStream(data, cfg.replace(data_shares=())))
    by_size = torch.cat([next(plain)["source"] for _ in range(20)])
    assert (by_size == 0).float().mean() > 0.9  # without shares the store's size dominates

    workers = cfg.replace(num_workers=2)
    first = [next(it) for it in [iter(make_loader(data, workers))] for _ in range(8)]
    again = iter(make_loader(data, workers))
    assert all(torch.equal(next(again)["series"], b["series"]) for b in first)  # deterministic
    assert_resumes_exactly(data, workers, first)
    store_rows = []
    for rank in (0, 1):
        stream = iter(S2WindowStream(data, cfg, rank=rank, world_size=2))
        picked = [next(stream) for _ in range(30)]
        store_rows.append({int(r) for b in picked for r in b["row"][b["source"] == 0]})
    assert store_rows[0] and store_rows[1] and not store_rows[0] & store_rows[1]  # disjoint


def test_a_weighted_source_whose_stream_gets_an_empty_epoch_carries_on(store_path, tmp_path):
    """65 series: chunks of 64 and 1; the stream that draws the held-out 65th gets nothing."""
    cfg = tiny_cfg(objective="mae", batch_size=16, val_permille=500, num_workers=1)
    last = np.random.default_rng([cfg.seed, 65]).permutation(65)[64]  # SeriesSource's shuffle
    name = next(n for n in map("w{}.npy".format, range(100)) if case_splits(n, 65, cfg)[last])
    path = tmp_path / name
    np.save(path, np.random.default_rng(0).normal(size=(65, 100)).cumsum(1).astype(np.float32))
    weighted = cfg.replace(data_shares=(1.0, 1.0))
    for role in (0, 1):
        stream = iter(S2WindowStream([store_path, str(path)], weighted, world_size=2, rank=role))
        batches = [next(stream) for _ in range(60)]  # about 15 epochs of the 65 series
        assert sum(int((b["source"] == 1).sum()) for b in batches) > 300


def test_bad_data_shares_name_the_setting_and_the_fix(store_path, series_file, tmp_path):
    walks, _ = series_file
    with pytest.raises(ValueError, match=r"data_shares has 1 value\(s\) for 2 --data"):
        S2WindowStream([store_path, walks], tiny_cfg(data_shares=(1.0,)))
    with pytest.raises(ValueError, match="data_shares=-1.0 is invalid"):
        tiny_cfg(data_shares=(1.0, -1.0))
    with pytest.raises(ValueError, match="at least one share must be positive"):
        tiny_cfg(data_shares=[0.0, 0.0])
    assert tiny_cfg(data_shares=[1, 2]).to_dict()["data_shares"] == [1, 2]  # lists from files
    with pytest.raises(ValueError, match="fewer than the 8 streams"):
        S2WindowStream([store_path, walks], tiny_cfg(data_shares=(1.0, 1.0), num_workers=8))
    one = tiny_cfg(data_shares=(1.0,))
    with pytest.raises(ValueError, match="data_shares weigh --data sources; --generate streams"):
        S2WindowStream([GeneratorSource(preset_config("paper"), one, "paper")], one)
    base = ["--data", store_path, "--data", walks, "--preset", "ci", "--objective", "mae"]
    base += ["--steps", "2", "--batch-size", "16", "--window", "64", "--device", "cpu"]
    bad = CliRunner().invoke(
        pretrain, [*base, "--out", str(tmp_path / "a"), "--data-shares", "a,b"]
    )
    assert bad.exit_code == 2 and "--data-shares" in bad.output and "e.g. 0.9,0.1" in bad.output
    out = tmp_path / "run"
    good = CliRunner().invoke(pretrain, [*base, "--out", str(out), "--data-shares", "0.5,0.5"])
    assert good.exit_code == 0, good.output
    assert json.loads((out / "config.json").read_text())["data_shares"] == [0.5, 0.5]
    more = ["--out", str(out), "--data-shares", "0.9,0.1", "--steps", "3", "--resume"]
    changed = CliRunner().invoke(pretrain, [*base, *more])
    assert changed.exit_code != 0 and "data_shares: [0.5, 0.5] -> [0.9, 0.1]" in changed.output


def test_store_gives_x_and_y_as_series_to_objectives_without_symbols(store_path):
    assert not StoreSource(store_path, tiny_cfg()).inputs  # s2 reads symbols: y only
    source = StoreSource(store_path, tiny_cfg(objective="mae"))
    assert source.inputs
    batch = next(iter(S2WindowStream([source], tiny_cfg(objective="mae", batch_size=256))))
    assert batch["has_symbol"].any() and not batch["has_symbol"].all()  # y and x channels


def test_held_out_sets_take_turns_and_symbol_objectives_use_stores_only(store_path, series_file):
    walks, _ = series_file
    cfg = tiny_cfg(objective="mae", val_permille=150)
    both = held_out_set([store_path, walks], cfg, limit=40)
    assert both["source"][:6].tolist() == [0, 1, 0, 1, 0, 1]  # round robin
    assert len(both["series"]) == 40
    again = held_out_set([store_path, walks], cfg.replace(seed=5), limit=40)
    assert torch.equal(both["series"], again["series"])  # the same set for every run
    symbols = held_out_set([store_path, walks], tiny_cfg(), limit=40)
    assert (symbols["source"] == 0).all() and symbols["has_symbol"].all()


def test_s2_objective_needs_a_store_and_real_series_train_ts2vec(series_file, tmp_path):
    walks, short = series_file
    with pytest.raises(ValueError, match="no --data source is an s2gen store"):
        run(tiny_cfg(steps=1), [walks], str(tmp_path / "a"), device="cpu", progress=False)
    cfg = tiny_cfg(
        backbone="dilated-cnn", cnn_hidden=8, cnn_depth=2, steps=4, val_every=2, ckpt_every=2
    )
    final = run(cfg, [walks, short], str(tmp_path / "b"), device="cpu", progress=False)
    assert np.isfinite(final["val_ts2vec"]) and final["val_gallery"] > 0
    context = json.loads((tmp_path / "b" / "run.json").read_text())
    assert context["data"] == [walks, short] and context["symbols_truncated"] == 0.0
    encoder = load_encoder(tmp_path / "b" / "last.pt")
    assert encoder.config.backbone == "dilated-cnn" and encoder.dim == 32


def test_cli_takes_repeated_data_and_checks_the_backbone(store_path, series_file, tmp_path):
    walks, _ = series_file
    out = tmp_path / "run"
    args = ["--data", store_path, "--data", walks, "--out", str(out), "--preset", "ci"]
    args += ["--objective", "mae", "--steps", "2", "--batch-size", "16", "--window", "64"]
    result = CliRunner().invoke(pretrain, [*args, "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "val_mae" in result.output
    assert json.loads((out / "run.json").read_text())["data"] == [store_path, walks]
    np.save(tmp_path / "in.npy", np.zeros((2, 30)))
    bad = CliRunner().invoke(
        embed,
        ["--checkpoint", str(out / "last.pt"), "--input", str(tmp_path / "in.npy")]
        + ["--out", str(tmp_path / "e.npy"), "--backbone", "dilated-cnn"],
    )
    assert bad.exit_code == 2 and "pretrained with another architecture" in bad.output
    assert "--backbone dilated-cnn (it has s2)" in bad.output
    oats = CliRunner().invoke(pretrain, [*args, "--oats", str(tmp_path / "g.pt")])
    assert oats.exit_code == 2 and "one --data" in oats.output

    ramps = str(DATA / "Ramps_TRAIN.ts")
    common = ["--task", "classification", "--dataset", ramps, "--no-baselines", "--seeds", "1"]
    cnn = ["--random-init", "--preset", "ci", "--backbone", "dilated-cnn"]
    result = CliRunner().invoke(evaluate, [*common, *cnn, "--out", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert document["records"][0]["info"]["dim"] == 64  # max-pooled d_model of the ci preset
    assert document["config"]["architecture"] == {"backbone": "dilated-cnn"}
    mismatch = ["--checkpoint", str(out / "last.pt"), "--backbone", "dilated-cnn"]
    for command, extra in ((evaluate, common), (finetune, ["--dataset", ramps])):
        bad = CliRunner().invoke(command, [*extra, *mismatch, "--out", str(tmp_path / "x")])
        assert bad.exit_code == 2 and "pretrained with another architecture" in bad.output
    tuned = CliRunner().invoke(
        finetune, ["--dataset", ramps, *cnn, "--epochs", "1", "--out", str(tmp_path / "ft")]
    )
    assert tuned.exit_code == 0, tuned.output
    assert "Ramps seed 0: test accuracy" in tuned.output
    saved = torch.load(tmp_path / "ft" / "Ramps" / "seed0" / "finetuned.pt", weights_only=True)
    assert any("input_proj" in name for name in saved["model"])  # the dilated CNN was tuned
