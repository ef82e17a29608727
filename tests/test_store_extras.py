"""Stores with the optional arrays (augmentation masks, graphs): format, identity, resume."""

import numpy as np
import zarr

from s2gen import store as s2store
from s2gen.config import GenerateConfig
from tests.store_edits import record_again
from tests.test_store_cli import MULTI, generate, run

AUGMENT = ["--augment", "jitter=0.5,time_warp=0.3,frequency=0.3,scaling=0.5", "--samplers",
           "sarima=1,arma=1"]  # fmt: skip


def read_every_array(path) -> dict[str, np.ndarray]:
    group = zarr.open_group(str(path), mode="r")
    return {name: group[name][:] for name in group.array_keys()}


def assert_same_arrays(a, b):
    da, db = read_every_array(a), read_every_array(b)
    assert da.keys() == db.keys()
    for name in da:
        np.testing.assert_array_equal(da[name], db[name], err_msg=name)


def test_augmented_store_records_masks_validates_and_is_identical_for_any_worker_count(tmp_path):
    one, two, grown = tmp_path / "one.zarr", tmp_path / "two.zarr", tmp_path / "grown.zarr"
    generate(one, 200, *MULTI, *AUGMENT, workers=1)
    generate(two, 200, *MULTI, *AUGMENT, workers=2)
    generate(grown, 100, *MULTI, *AUGMENT, workers=1)  # then resumed to 200
    generate(grown, 200, *MULTI, *AUGMENT, workers=2)
    assert_same_arrays(one, two)
    assert_same_arrays(one, grown)
    group = zarr.open_group(str(one), mode="r")
    assert set(group.array_keys()) == set(s2store.ARRAY_NAMES) | {"augment"}
    header = group.attrs["s2gen"]
    assert header["augment_bits"]["jitter"] == 32 and header["augment_bits"]["time_warp"] == 1
    assert dict(GenerateConfig.from_dict(header["config"]).augment)["jitter"] == 0.5
    masks, n_in = group["augment"][:], group["n_in"][:]
    assert masks.shape == (200, 2) and masks.dtype == np.uint8
    real = np.arange(2)[None, :] < n_in[:, None]
    assert masks[real].any() and not masks[~real].any()
    assert not (masks & 0b1010).any()  # window_slice and magnitude_warp were not asked for
    assert "OK: 200 rows" in run("validate", one, "--sample", 0).output
    shown = run("show", one, 3).output
    assert "augmented: x_0=" in shown


def test_validate_catches_a_tampered_augmentation_mask(tmp_path):
    path = tmp_path / "s.zarr"
    generate(path, 64, *AUGMENT)
    group = zarr.open_group(str(path), mode="r+")
    masks = group["augment"][:]
    masks[5, 0] ^= 1 << 5
    group["augment"][:] = masks
    record_again(path, ["augment"])  # a consistent edit: the row checks must catch it
    result = run("validate", path, "--sample", 0, expect=1)
    assert "row 5: augment masks differ" in result.output


def test_bad_augment_option_is_named(tmp_path):
    result = run("generate", "--n", 10, "--out", tmp_path / "a", "--augment", "jiter=1", expect=2)
    assert "augment" in result.output and "time_warp" in result.output
    result = run("generate", "--n", 10, "--out", tmp_path / "a", "--augment", "jitter", expect=2)
    assert "NAME=WEIGHT" in result.output


GRAPH = ["--graph", "--min-nodes", "5", "--max-nodes", "9", *MULTI]


def test_graph_store_records_the_graph_validates_and_is_identical_for_any_worker_count(tmp_path):
    one, two, grown = tmp_path / "one.zarr", tmp_path / "two.zarr", tmp_path / "grown.zarr"
    generate(one, 150, *GRAPH, workers=1)
    generate(two, 150, *GRAPH, workers=2)
    generate(grown, 70, *GRAPH, workers=2)  # then resumed to 150
    generate(grown, 150, *GRAPH, workers=1)
    assert_same_arrays(one, two)
    assert_same_arrays(one, grown)
    group = zarr.open_group(str(one), mode="r")
    extra = {"n_nodes", "node_parents", "node_expr", "output_node"}
    assert set(group.array_keys()) == set(s2store.ARRAY_NAMES) | extra
    assert group["node_parents"].dtype == np.uint32 and group["node_parents"].shape == (150, 9)
    assert group["node_expr"].shape == (150, 9) and group["output_node"].shape == (150, 2)
    header = group.attrs["s2gen"]
    assert GenerateConfig.from_dict(header["config"]).graph
    assert header["token_length"] > 300  # sized for composed programs of 128 nodes
    assert "OK: 150 rows" in run("validate", one, "--sample", 0).output
    pair = s2store.open(str(one))[4]
    assert pair.graph is not None and len(pair.graph.parents) >= 5
    assert all(p and max(p) < v for v, p in enumerate(pair.graph.parents) if v >= len(pair.x))
    shown = run("show", one, 4, "--plot", tmp_path / "p.png").output
    assert "graph: " in shown and "node " in shown and "-> y_0" in shown
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_validate_catches_a_cycle_and_a_wrong_node_expression(tmp_path):
    path = tmp_path / "g.zarr"
    generate(path, 64, *GRAPH)
    group = zarr.open_group(str(path), mode="r+")
    masks, n_nodes = group["node_parents"][:], group["n_nodes"][:]
    last = int(n_nodes[3]) - 1
    masks[3, 2] = masks[3, 2] | (1 << last)  # node 2 (or input 2) now depends on the last node
    group["node_parents"][:] = masks
    texts = group["node_expr"][:]
    v = int(n_nodes[9]) - 1
    texts[9, v] = "(" + str(texts[9, v]) + " + 1.0)"
    group["node_expr"][:] = texts
    record_again(path, ["node_parents", "node_expr"])  # a consistent edit, caught by the rows
    result = run("validate", path, "--sample", 0, expect=1)
    assert "row 3: " in result.output and "row 9: " in result.output
    assert "row 5: " not in result.output


def test_graph_needs_room_for_inputs_and_outputs(tmp_path):
    result = run("generate", "--n", 10, "--out", tmp_path / "g", *GRAPH[:1], "--min-nodes", 3,
                 *MULTI, expect=2)  # fmt: skip
    assert "min_nodes" in result.output and ">= 4" in result.output
