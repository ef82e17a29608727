"""Channel counts of pairs from their seeds alone, without generating them."""

from numba import njit

from s2gen.kernels.rng import new_state, randint


@njit(cache=True)
def channel_counts_rows(
    seeds, min_in, max_in, min_out, max_out, n_given, graph, min_nodes, max_nodes, n_in, n_out
):
    """n_in and n_out of the pairs of ``seeds``, as ``pairs.generate_row`` draws them.

    A pair's first draws from its RNG are n_in ~ U{min_in..max_in} and then,
    unless ``n_given`` > 0 expressions are given, n_out ~ U{min_out..max_out};
    a graph pair (``graph.generate_graph_row``) draws its node count
    U{min_nodes..max_nodes} between the two. This repeats just those.
    Shapes: seeds uint64[n]; n_in, n_out uint8[n].
    """
    for i in range(seeds.size):
        state = new_state(seeds[i])
        n_in[i] = randint(state, min_in, max_in)
        if graph:
            randint(state, min_nodes, max_nodes)
        n_out[i] = n_given if n_given > 0 else randint(state, min_out, max_out)
