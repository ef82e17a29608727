"""A local UCR/UEA archive (--ucr-root, --dataset all), the UCR .tsv reader, ranks and W/T/L."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from s2gen.evaluate import archive, datasets
from s2gen.evaluate.cli import evaluate
from s2gen.evaluate.ranking import rank_scores, rank_summary
from s2gen.evaluate.report import markdown_table, rank_summaries, write_results
from s2gen.evaluate.ts_format import read_cases, read_ucr_tsv


def _cases(n, seed, length, channels=1, ragged=False):
    """n cases, classes "1"/"2": a sine or a ramp, each with noise; lengths vary if ragged."""
    rng = np.random.default_rng(seed)
    labels = ["1", "2"] * (n // 2)
    cases = []
    for k, label in enumerate(labels):
        size = length - (k % 3) if ragged else length
        t = np.linspace(0, 1, size)
        base = np.sin(6 * t + rng.uniform(0, 1)) if label == "1" else 2 * t - 1
        cases.append(np.stack([base + 0.1 * rng.standard_normal(size)] * channels))
    return cases, labels


def write_tsv(folder, name, split, cases, labels, width):
    """UCR 2018 layout: label first, tab separated, NaN padding to ``width``."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for case, label in zip(cases, labels, strict=True):
        values = list(case[0]) + [np.nan] * (width - case.shape[1])
        rows.append("\t".join([label] + ["NaN" if np.isnan(v) else f"{v:.6f}" for v in values]))
    (folder / f"{name}_{split}.tsv").write_text("\n".join(rows) + "\n")


def write_ts(folder, name, split, cases, labels):
    """UEA/sktime .ts layout."""
    folder.mkdir(parents=True, exist_ok=True)
    head = [
        f"@problemName {name}",
        "@timeStamps false",
        "@missing false",
        f"@univariate {'true' if cases[0].shape[0] == 1 else 'false'}",
        f"@dimensions {cases[0].shape[0]}",
        "@equalLength false",
        "@classLabel true 1 2",
        "@data",
    ]
    body = [
        ":".join(",".join(f"{v:.6f}" for v in channel) for channel in case) + f":{label}"
        for case, label in zip(cases, labels, strict=True)
    ]
    (folder / f"{name}_{split}.ts").write_text("\n".join(head + body) + "\n")


def write_set(folder, name, layout, seed, length=24, channels=1, ragged=False):
    for split, n in (("TRAIN", 8), ("TEST", 6)):
        cases, labels = _cases(n, seed + (split == "TEST"), length, channels, ragged)
        if layout == "tsv":
            write_tsv(folder / name, name, split, cases, labels, length)
        else:
            write_ts(folder / name, name, split, cases, labels)


@pytest.fixture
def fake_archive(tmp_path):
    """root/UCRArchive_2018/{Beta, alpha (ragged)}, root/Multivariate_ts/{Gamma, Beta},
    root/UCRArchive_2018/Broken (no TEST file), root/Multivariate_ts/Bad (a bad line)."""
    ucr, uea = tmp_path / "UCRArchive_2018", tmp_path / "Multivariate_ts"
    write_set(ucr, "Beta", "tsv", seed=0)
    write_set(ucr, "alpha", "tsv", seed=2, length=20, ragged=True)
    write_set(uea, "Gamma", "ts", seed=4, channels=2)
    write_set(uea, "Beta", "ts", seed=6)  # also in the UCR copy: not used
    write_set(ucr, "Broken", "tsv", seed=8)
    (ucr / "Broken" / "Broken_TEST.tsv").unlink()
    write_set(uea, "Bad", "ts", seed=10)
    bad = uea / "Bad" / "Bad_TEST.ts"
    bad.write_text(bad.read_text().replace("@data\n", "@data\n1,oops:1\n"))
    (tmp_path / "README.md").write_text("not a set")
    return tmp_path


def test_ucr_tsv_reader_drops_padding_keeps_gaps_and_normalises_labels(tmp_path):
    path = tmp_path / "X_TRAIN.tsv"
    path.write_text("1\t0.5\tNaN\t0.25\tNaN\tNaN\n-1.0\t1\t2\t3\t4\t5\n")
    data = read_ucr_tsv(path)
    assert data.labels.tolist() == ["1", "-1"] and data.lengths.tolist() == [3, 5]
    assert np.isnan(data.series[0][0, 1]) and data.series[0][0, 2] == 0.25  # a gap, kept
    assert read_cases(path).metadata["format"] == "ucr-tsv"
    path.write_text("1\tNaN\tNaN\n")
    with pytest.raises(ValueError, match="X_TRAIN.tsv line 1: a label and at least one value"):
        read_ucr_tsv(path)
    path.write_text("1\t0.5\n2\tabc\n")
    with pytest.raises(ValueError, match="X_TRAIN.tsv line 2"):
        read_ucr_tsv(path)


def test_tsv_pair_loads_by_path(fake_archive):
    data = datasets.load_classification(fake_archive / "UCRArchive_2018" / "alpha")
    assert data.name == "alpha" and data.train.lengths.tolist() == [20, 19, 18, 20, 19, 18, 20, 19]
    assert data.train.labels.tolist() == ["1", "2"] * 4


def test_find_sets_searches_two_levels_and_prefers_shallow_tsv(fake_archive):
    found = archive.find_sets(fake_archive)
    assert list(found.sets) == ["alpha", "Bad", "Beta", "Broken", "Gamma"]
    assert found.sets["Beta"].suffix == ".tsv"
    assert found.not_used == {"Beta": [fake_archive / "Multivariate_ts" / "Beta" / "Beta_TRAIN.ts"]}
    inner = archive.find_sets(fake_archive / "Multivariate_ts")  # the archive folder itself
    assert list(inner.sets) == ["Bad", "Beta", "Gamma"] and inner.sets["Beta"].suffix == ".ts"
    flat = fake_archive / "UCRArchive_2018" / "Beta"  # a set's own folder
    assert list(archive.find_sets(flat).sets) == ["Beta"]
    deeper = fake_archive / "UCRArchive_2018" / "adjusted"  # depth 2 below UCRArchive_2018
    write_set(deeper, "Beta", "tsv", seed=12)
    assert archive.find_sets(fake_archive / "UCRArchive_2018").sets["Beta"].parent == flat
    with pytest.raises(ValueError, match="README.md' is not a folder"):
        archive.find_sets(fake_archive / "README.md")
    empty = fake_archive / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no NAME_TRAIN.tsv, .ts or .txt file"):
        archive.find_sets(empty)


def test_resolve_names_case_insensitively_and_all(fake_archive):
    found = archive.find_sets(fake_archive)
    assert archive.resolve(found, ("ALL",)) == [str(p) for p in found.sets.values()]
    assert archive.resolve(found, ("gamma", "Beta")) == [
        str(found.sets["Gamma"]),
        str(found.sets["Beta"]),
    ]
    with pytest.raises(
        ValueError, match=r"'Delta' is not under --ucr-root .*\(5 sets found: alpha, Bad"
    ):
        archive.resolve(found, ("Delta",))


@pytest.mark.slow
def test_evaluate_dataset_all_runs_every_set_and_reports_failures(fake_archive, tmp_path):
    out = tmp_path / "out"
    args = ["--random-init", "--preset", "ci", "--task", "classification", "--seeds", "1"]
    args += ["--classifier", "rf"]  # no C search: seconds, not a minute
    args += ["--ucr-root", str(fake_archive), "--dataset", "all", "--out", str(out)]
    result = CliRunner().invoke(evaluate, args)
    assert result.exit_code == 0, result.output
    document = json.loads((out / "results.json").read_text())
    evaluated = sorted({r["dataset"] for r in document["records"]})
    assert evaluated == ["Beta", "Gamma", "alpha"]
    skipped = {entry["dataset"].split("/")[-1]: entry["error"] for entry in document["skipped"]}
    assert set(skipped) == {"Bad_TRAIN.ts", "Broken_TRAIN.tsv"}
    assert "Broken_TEST.tsv is missing" in skipped["Broken_TRAIN.tsv"]
    assert "'oops' is not a number" in skipped["Bad_TRAIN.ts"]
    summary = document["summary"]["classification"]
    assert summary["datasets"] == ["alpha", "Beta", "Gamma"]  # the archive's order
    assert set(summary["models"]) == {
        "1nn-euclidean",
        "logreg-raw",
        "catch22-rf",
        "minirocket",
        "random-init",
    }
    for model, against in summary["wins_ties_losses"].items():
        assert all(sum(wtl) == 3 for wtl in against.values()), model
    ranks = [entry["mean_rank"] for entry in summary["models"].values()]
    assert sum(ranks) == pytest.approx(1 + 2 + 3 + 4 + 5)  # ranks on each dataset sum to 15
    probe = [r for r in document["records"] if r["model"] == "random-init"]
    assert all(r["info"]["n_estimators"] == 200 and r["info"]["seconds"] > 0 for r in probe)
    assert document["config"]["ucr_root"] == str(fake_archive)
    assert document["config"]["datasets"] == ["all"]
    assert "Beta" in document["config"]["ucr_not_used"]
    table = (out / "results.md").read_text()
    assert "**classification: summary over 3 datasets**" in table
    assert "**Not evaluated (2)**" in table and table in result.output
    assert "5 sets under" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "all"], "--dataset all needs --ucr-root"),
        (["--dataset", "all", "--dataset", "Beta", "--ucr-root", "."], "give it alone"),
        (["--dataset", "Nope", "--ucr-root", "."], "'Nope' is not under --ucr-root"),
    ],
)
def test_dataset_all_and_ucr_root_misuse_is_explained(fake_archive, tmp_path, args, message):
    args = [a if a != "." else str(fake_archive) for a in args]
    base = ["--random-init", "--preset", "ci", "--task", "classification"]
    result = CliRunner().invoke(evaluate, [*base, *args, "--out", str(tmp_path / "o")])
    assert result.exit_code != 0 and message in result.output


def test_ucr_root_and_dtw_are_for_classification(fake_archive, tmp_path):
    base = ["--random-init", "--task", "forecasting", "--horizon", "2", "--dataset", "airline"]
    for extra, name in (([f"--ucr-root={fake_archive}"], "--ucr-root"), (["--dtw"], "--dtw")):
        result = CliRunner().invoke(evaluate, [*base, *extra, "--out", str(tmp_path)])
        assert result.exit_code == 2
        assert f"{name} applies to --task classification only" in result.output


def _record(dataset, model, seed, accuracy):
    return dict(
        task="classification",
        dataset=dataset,
        model=model,
        seed=seed,
        metrics={"accuracy": accuracy},
        info={},
    )


def hand_records():
    """Scores (mean over seeds for B): D1 A .9 B .9 E .7; D2 A .5 B .6 E .8; D3 B missing;
    D4 A 1 B .9 E .95."""
    return [
        _record("D1", "A", None, 0.9),
        _record("D1", "B", 0, 0.8),
        _record("D1", "B", 1, 1.0),
        _record("D1", "E", None, 0.7),
        _record("D2", "A", None, 0.5),
        _record("D2", "B", 0, 0.6),
        _record("D2", "B", 1, 0.6),
        _record("D2", "E", None, 0.8),
        _record("D3", "A", None, 0.7),
        _record("D3", "E", None, 0.7),
        _record("D4", "A", None, 1.0),
        _record("D4", "B", 0, 0.9),
        _record("D4", "B", 1, 0.9),
        _record("D4", "E", None, 0.95),
    ]


def test_ranks_share_ties_and_follow_the_direction():
    assert rank_scores({"a": 1.0, "b": 1.0, "c": 0.5, "d": 1.0 + 1e-12}, True) == {
        "a": 2.0,
        "b": 2.0,
        "c": 4.0,
        "d": 2.0,
    }
    assert rank_scores({"x": 0.2, "y": 0.1, "z": 0.3}, False) == {"x": 2.0, "y": 1.0, "z": 3.0}
    assert rank_scores({"x": 0.2, "y": 0.2 + 2e-9}, True) == {"x": 2.0, "y": 1.0}


def test_rank_summary_of_hand_made_records():
    summary = rank_summaries(hand_records())["classification"]
    assert summary["metric"] == "accuracy"
    assert summary["datasets"] == ["D1", "D2", "D4"] and summary["not_ranked"] == ["D3"]
    ranks = {m: entry["mean_rank"] for m, entry in summary["models"].items()}
    # D1: A, B tie (1.5 each), E 3; D2: E 1, B 2, A 3; D4: A 1, E 2, B 3
    assert ranks == pytest.approx({"A": 5.5 / 3, "B": 6.5 / 3, "E": 2.0})
    assert summary["models"]["A"]["mean"] == pytest.approx((0.9 + 0.5 + 1.0) / 3)
    wtl = summary["wins_ties_losses"]
    assert wtl["A"] == {"B": [1, 1, 1], "E": [2, 0, 1]}
    assert wtl["B"] == {"A": [1, 1, 1], "E": [1, 0, 2]}
    assert wtl["E"]["B"] == [2, 0, 1]
    forecast = rank_summary({"S": {"naive": 0.7, "ckpt": 0.5}}, higher_is_better=False)
    assert forecast["models"]["ckpt"]["mean_rank"] == 1.0
    assert forecast["wins_ties_losses"]["ckpt"]["naive"] == [1, 0, 0]


def test_results_md_and_json_carry_the_summary(tmp_path):
    skipped = [{"dataset": "D9", "error": "ValueError: broken"}]
    table = write_results(hand_records(), tmp_path, {"task": "classification"}, skipped)
    assert table.startswith(markdown_table(hand_records()))
    assert "| A | 0.8000 | 1.83 | — | 1/1/1 | 2/0/1 |" in table
    assert "| E | 0.8167 | 2.00 | 1/0/2 | 2/0/1 | — |" in table
    assert "Not ranked (a model has no result): D3" in table
    assert "- D9: ValueError: broken" in table
    document = json.loads((tmp_path / "results.json").read_text())
    assert list(document) == ["s2gen_version", "config", "records", "summary", "skipped"]
    assert document["summary"]["classification"]["wins_ties_losses"]["A"]["E"] == [2, 0, 1]
    assert document["skipped"] == skipped
