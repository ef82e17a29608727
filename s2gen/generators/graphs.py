"""Graph pairs (``--graph``): batches of DAG-structured pairs and their provenance.

``generate_batch`` calls ``generate_graph_batch`` when ``config.graph`` is set;
the kernel is ``s2gen.kernels.graph``. A graph pair is an ordinary pair (x =
the roots, y = some nodes, each y_j stored with its program composed over x)
plus its graph, kept in ``Batch.graph``.
"""

from dataclasses import dataclass

import numpy as np

from s2gen.config import GenerateConfig
from s2gen.generators.pairs import Batch, infix_in_blocks, node_program_length, program_length
from s2gen.kernels.graph import generate_graph_rows
from s2gen.kernels.pairs import STAT_NAMES, KernelParams
from s2gen.symbols.render import to_infix


@dataclass(frozen=True)
class GraphBatch:
    """The DAG of every pair of a batch, row-aligned; N = max_nodes.

    Attributes
    ----------
    n_nodes : uint8[n] nodes of each pair; nodes 0..n_in-1 are the inputs.
    n_parents : uint8[n, N] parents per node (0 for the inputs and padding).
    parents : uint8[n, N, max_parents] parent indices in increasing order;
        variable x_i of a node's program is its i-th parent.
    code, arg : int8 / int32 [n, N, P_node] each node's own program over its
        parents (empty for the inputs).
    plen : int16[n, N] lengths of those programs.
    output_node : uint8[n, C_out] the node of each output (0 for padding).
    """

    n_nodes: np.ndarray
    n_parents: np.ndarray
    parents: np.ndarray
    code: np.ndarray
    arg: np.ndarray
    plen: np.ndarray
    output_node: np.ndarray

    def parent_masks(self) -> np.ndarray:
        """uint32[n, N]: bit j of node v's mask is set iff node j is a parent of v."""
        n, nodes, width = self.parents.shape
        real = np.arange(width)[None, None, :] < self.n_parents[:, :, None]
        bits = np.left_shift(np.uint32(1), self.parents.astype(np.uint32)) * real
        return np.bitwise_or.reduce(bits.astype(np.uint32), axis=2)

    def expressions(self) -> np.ndarray:
        """StringDType[n, N] each node's expression over its parents; "" for inputs, padding."""
        return infix_in_blocks(self.code, self.arg, self.plen, self.n_nodes)

    def expression(self, i: int, v: int) -> str:
        """Node v's expression of row i over its parents x_0.. (in parent order)."""
        return to_infix(self.code[i, v], self.arg[i, v], self.plen[i, v])


def generate_graph_batch(config: GenerateConfig, seeds: np.ndarray, params: KernelParams) -> Batch:
    """One graph pair per seed (float32 values; ``generate_batch`` finishes it)."""
    n = seeds.size
    c_in, c_out, L = config.max_input_dim, config.max_output_dim, config.length
    nodes, cap, node_len = config.max_nodes, program_length(config), node_program_length(config)
    out = (
        np.zeros((n, c_in, L), np.float32),  # x
        np.zeros((n, c_out, L), np.float32),  # y
        np.zeros(n, np.uint8),  # n_in
        np.zeros(n, np.uint8),  # n_out
        np.zeros((n, c_in), np.uint8),  # sampler
        np.zeros((n, c_in), np.uint8),  # augmented
        np.zeros((n, c_out, cap), np.int8),  # composed programs of the outputs
        np.zeros((n, c_out, cap), np.int32),
        np.zeros((n, c_out), np.int16),
        np.zeros(n, np.uint8),  # n_nodes
        np.zeros((n, nodes), np.uint8),  # n_parents
        np.zeros((n, nodes, config.graph_max_parents), np.uint8),  # parents
        np.zeros((n, nodes, node_len), np.int8),  # node programs
        np.zeros((n, nodes, node_len), np.int32),
        np.zeros((n, nodes), np.int16),
        np.zeros((n, c_out), np.uint8),  # output_node
    )
    stats = np.zeros((n, len(STAT_NAMES)), np.int64)
    if n:
        generate_graph_rows(params, seeds, out, stats)
    graph = GraphBatch(*out[9:16])
    augment = out[5] if config.augment else None
    return Batch(seeds, *out[:5], *out[6:9], stats, augment, graph)
