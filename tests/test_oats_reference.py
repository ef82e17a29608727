"""``--oats-ref``: dataset names and real series files give TRAIN series resized to the window."""

import builtins
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from s2gen.evaluate.datasets import classification_file
from s2gen.evaluate.ts_format import read_cases
from s2gen.oats.reference import real_series_files, reference_series, resize_rows
from s2gen.pretrain.scaling import resize_linear

DATA = Path(__file__).parent / "data" / "evaluate"


def opened_files(monkeypatch, call):
    """The paths ``call()`` opens (builtins.open and io.open), and its result."""
    opened = []
    for module in (io, builtins):
        real = module.open

        def spy(file, *args, _real=real, **kwargs):
            opened.append(str(file))
            return _real(file, *args, **kwargs)

        monkeypatch.setattr(module, "open", spy)
    try:
        result = call()
    finally:
        monkeypatch.undo()
    return opened, result


def test_a_dataset_name_reads_its_train_split_only_resized_to_the_window(monkeypatch):
    opened, windows = opened_files(monkeypatch, lambda: reference_series(["GunPoint"], 128, 10**6))
    assert any(p.endswith("GunPoint_TRAIN.ts") for p in opened)
    assert not [p for p in opened if "TEST" in p.upper()]
    train = read_cases(classification_file("GunPoint", "TRAIN"))
    assert windows.shape == (len(train.series), 128) and windows.dtype == np.float32
    first = np.stack([case[0] for case in train.series])  # (50, 150): longer than the window
    np.testing.assert_allclose(windows[:, 0], first[:, 0], rtol=1e-6)  # first and last points
    np.testing.assert_allclose(windows[:, -1], first[:, -1], rtol=1e-6)
    torch_resized = resize_linear(torch.as_tensor(first), 128).numpy()
    np.testing.assert_allclose(windows, torch_resized, rtol=1e-5, atol=1e-5)


def test_test_files_are_refused_and_folders_give_their_train_files(tmp_path):
    for name in ("Ramps", "Wobble"):
        (tmp_path / name).mkdir()
        for split in ("TRAIN", "TEST"):
            shutil.copy(DATA / f"{name}_{split}.ts", tmp_path / name / f"{name}_{split}.ts")
    with pytest.raises(ValueError, match="test split"):
        reference_series([str(tmp_path / "Ramps" / "Ramps_TEST.ts")], 64, 100)
    files = real_series_files(str(tmp_path))
    assert sorted(f.name for f in files) == ["Ramps_TRAIN.ts", "Wobble_TRAIN.ts"]
    with pytest.raises(ValueError, match="neither an existing path nor a shipped"):
        reference_series(["NoSuchSet"], 64, 100)


def test_short_series_are_stretched_and_sources_take_turns(tmp_path):
    rng = np.random.default_rng(0)
    short = rng.normal(size=(5, 20)).cumsum(1)
    np.save(tmp_path / "short.npy", short)
    np.savetxt(tmp_path / "long.csv", rng.normal(size=(3, 300)), delimiter=",")
    windows = reference_series([str(tmp_path / "short.npy"), str(tmp_path / "long.csv")], 64, 6)
    assert windows.shape == (6, 64)
    expected = resize_linear(torch.as_tensor(short), 64).numpy()  # sources take turns: a, b, a
    np.testing.assert_allclose(windows[[0, 2, 4]], expected[:3], rtol=1e-5, atol=1e-6)
    long = np.loadtxt(tmp_path / "long.csv", delimiter=",")
    np.testing.assert_allclose(windows[[1, 3, 5]], resize_rows(list(long), 64), atol=1e-6)
    np.testing.assert_allclose(resize_rows([np.array([2.5])], 8)[0], 2.5)  # one point: constant
