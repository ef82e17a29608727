"""Graph pairs: DAG structure, composition = stepwise evaluation, config checks."""

import numpy as np
import pytest

from s2gen.config import GenerateConfig
from s2gen.generators.expressions import evaluate_program
from s2gen.generators.pairs import generate_batch, token_length
from s2gen.kernels import opcodes as oc
from s2gen.kernels.excitation import ARMA, KERNEL_SYNTH
from s2gen.kernels.graph import FALLBACK_LENGTH
from s2gen.kernels.seeds import row_seeds
from tests import naive

GRAPH = GenerateConfig(
    graph=True, length=64, max_input_dim=3, max_output_dim=2, min_nodes=5, max_nodes=12, seed=7
)


@pytest.fixture(scope="module")
def batch():
    return generate_batch(GRAPH, row_seeds(GRAPH.seed, 0, 600))


def _parents(g, i, v):
    return [int(p) for p in g.parents[i, v, : g.n_parents[i, v]]]


def test_drawn_graphs_are_dags_in_topological_order(batch):
    g = batch.graph
    assert set(np.unique(g.n_nodes)) == set(range(5, 13))
    masks = g.parent_masks()
    for i in range(len(batch)):
        m, nodes = int(batch.n_in[i]), int(g.n_nodes[i])
        assert 1 <= m <= 3 and m < nodes
        assert not g.n_parents[i, :m].any() and not g.n_parents[i, nodes:].any()
        assert not g.plen[i, :m].any() and not masks[i, nodes:].any()
        for v in range(m, nodes):
            parents = _parents(g, i, v)
            assert 1 <= len(parents) <= GRAPH.graph_max_parents
            assert parents == sorted(set(parents)) and parents[-1] < v  # acyclic, in order
            assert int(masks[i, v]) == sum(1 << p for p in parents)
        outputs = g.output_node[i, : batch.n_out[i]]
        assert len(set(outputs)) == len(outputs) and ((outputs >= m) & (outputs < nodes)).all()
        assert not g.output_node[i, batch.n_out[i] :].any()
    assert g.n_parents.max() == GRAPH.graph_max_parents  # several parents do occur


def test_node_programs_use_exactly_their_parents_as_x_0_onwards(batch):
    g = batch.graph
    for i in range(0, len(batch), 5):
        for v in range(batch.n_in[i], g.n_nodes[i]):
            code, arg = g.code[i, v, : g.plen[i, v]], g.arg[i, v, : g.plen[i, v]]
            used = set(arg[code == oc.VAR].tolist())
            assert used == set(range(g.n_parents[i, v])), (i, v, used)
            assert naive.program_is_well_formed(code, arg, len(code), int(g.n_parents[i, v]))


def _splice(g, i, v, n_in):
    """Composed program of node v of row i, by recursion in Python (the twin of the splice)."""
    if v < n_in:
        return [(oc.VAR, v)]
    parents = _parents(g, i, v)
    out = []
    for c, a in zip(g.code[i, v, : g.plen[i, v]], g.arg[i, v, : g.plen[i, v]], strict=True):
        out.extend(_splice(g, i, parents[a], n_in) if c == oc.VAR else [(int(c), int(a))])
    return out


def test_stored_programs_are_the_node_programs_composed_over_the_inputs(batch):
    g = batch.graph
    for i in range(0, len(batch), 3):
        for j in range(batch.n_out[i]):
            composed = _splice(g, i, int(g.output_node[i, j]), int(batch.n_in[i]))
            length = int(batch.plen[i, j])
            assert length == len(composed) <= GRAPH.graph_max_length
            stored = list(zip(batch.code[i, j, :length].tolist(), batch.arg[i, j, :length].tolist(),
                              strict=True))  # fmt: skip
            assert stored == composed


def test_composed_evaluation_equals_stepwise_evaluation_through_parents(batch):
    g = batch.graph
    for i in range(len(batch)):
        m = int(batch.n_in[i])
        x = batch.x[i, :m].astype(np.float64)
        twin, interpreted = list(x), list(x)
        for v in range(m, g.n_nodes[i]):  # one node at a time, from its parents' values
            parents = _parents(g, i, v)
            program = (g.code[i, v], g.arg[i, v], g.plen[i, v])
            with np.errstate(all="ignore"):  # numpy twins of the operators
                twin.append(naive.evaluate_program(*program, np.stack([twin[p] for p in parents])))
            inputs = np.stack([interpreted[p] for p in parents])
            interpreted.append(evaluate_program(program[0], program[1], inputs, program[2]))
        for j in range(batch.n_out[i]):
            v = g.output_node[i, j]
            composed = evaluate_program(batch.code[i, j], batch.arg[i, j], x, batch.plen[i, j])
            np.testing.assert_array_equal(composed, interpreted[v])  # the same float64 operations
            np.testing.assert_allclose(composed, twin[v], rtol=1e-12, atol=0)
            np.testing.assert_array_equal(batch.y[i, j], composed.astype(np.float32))


def test_accepted_graph_outputs_pass_the_pair_checks_and_fit_the_tokens(batch):
    assert batch.stat_totals()["failed"] == 0 and np.isfinite(batch.y).all()
    for i in range(len(batch)):
        y = batch.y[i, : batch.n_out[i]].astype(np.float64)
        assert (np.abs(y).max(axis=1) <= GRAPH.max_abs_output).all() and (y.std(axis=1) > 0).all()
    tokens = batch.tokens(token_length(GRAPH))
    assert tokens.shape == (600, 2, token_length(GRAPH))
    assert batch.token_counts().max() <= token_length(GRAPH)
    texts = batch.graph.expressions()
    assert texts.shape == (600, 12) and texts[0, batch.n_in[0]] != "" and texts[0, 0] == ""


def test_inputs_are_kernel_synth_draws_unless_samplers_are_given(batch):
    real = np.arange(3)[None, :] < batch.n_in[:, None]
    assert (batch.sampler[real] == KERNEL_SYNTH).all()
    arma = GRAPH.replace(sampler_weights=(("arma", 1.0),))
    assert (generate_batch(arma, row_seeds(1, 0, 20)).sampler[:, 0] == ARMA).all()


def test_a_graph_pair_depends_only_on_its_seed(batch):
    part = generate_batch(GRAPH, row_seeds(GRAPH.seed, 0, 600)[100:110])
    for name in ("x", "y", "code", "arg", "plen"):
        np.testing.assert_array_equal(getattr(batch, name)[100:110], getattr(part, name))
    for name in ("n_nodes", "parents", "code", "arg", "output_node"):
        np.testing.assert_array_equal(
            getattr(batch.graph, name)[100:110], getattr(part.graph, name)
        )


def test_a_tight_length_cap_still_gives_fitting_programs():
    config = GRAPH.replace(graph_max_length=16, min_nodes=10, max_nodes=10)
    b = generate_batch(config, row_seeds(3, 0, 200))
    assert b.plen.max() <= 16 and b.stat_totals()["failed"] == 0
    g = b.graph
    lengths = [len(_splice(g, i, v, int(b.n_in[i]))) for i in range(200) for v in range(10)]
    assert max(lengths) <= 16  # every node fits, outputs or not, after any redraw
    assert min(g.plen[g.plen > 0]) >= FALLBACK_LENGTH


@pytest.mark.parametrize(
    "changes, name",
    [
        (dict(min_nodes=4), "min_nodes"),  # 3 inputs + 2 outputs need 5 nodes
        (dict(max_nodes=33), "max_nodes"),
        (dict(min_nodes=9, max_nodes=8), "min_nodes"),
        (dict(graph_max_length=8), "graph_max_length"),
        (dict(graph_max_parents=0), "graph_max_parents"),
    ],
)
def test_bad_graph_config_names_the_field(changes, name):
    with pytest.raises(ValueError, match=name):
        GRAPH.replace(**changes)


def test_graph_with_given_expressions_is_refused():
    with pytest.raises(ValueError, match="graph"):
        GenerateConfig.for_expressions(["x_0 + x_1"], graph=True, min_nodes=4)


def test_strings_rendered_in_blocks_equal_one_rendering(batch, monkeypatch):
    from s2gen.generators import pairs
    from s2gen.symbols.render import infix_batch

    whole = infix_batch(batch.code, batch.arg, batch.plen, batch.n_out)
    monkeypatch.setattr(pairs, "RENDER_BYTES", 50_000)  # blocks of a few rows
    np.testing.assert_array_equal(batch.expressions(), whole)
    nodes = batch.graph.expressions()
    assert nodes.shape == (600, 12)
    assert nodes[3, batch.n_in[3]] == batch.graph.expression(3, int(batch.n_in[3]))
