"""Looking at a store: summary statistics, one pair, and the invariant checks.

``validate`` checks the invariants of docs/FORMAT.md on sampled rows: finite
values and zero padding, dims in range, y equal to the stored expression
(read by ``s2gen.symbols.grammar``, which runs nothing) lambdified by sympy on
the stored x (rounded to the store dtype), tokens that decode to the same
expression, the row seed, a bit-for-bit regeneration from (config, seed), and
that every shard is complete and intact: each committed shard's objects have
the size and CRC-32C recorded when they were written (format 1, which has no
records: they exist and decode).
"""

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from s2gen import store as s2store
from s2gen.config import AUGMENTATIONS
from s2gen.generators.pairs import generate_pair
from s2gen.kernels.seeds import row_seeds
from s2gen.symbols import vocabulary as vocab
from s2gen.symbols.grammar import ExpressionError, shorten
from s2gen.symbols.operators import OPERATORS
from s2gen.symbols.render import lambdify, parse_infix, to_infix


def sample_rows(n_rows: int, k: int | None, seed: int = 0) -> np.ndarray:
    """Sorted row indices: all rows if k is None or >= n_rows, else k without replacement."""
    if k is None or k >= n_rows:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=k, replace=False))


def _read_rows(view: s2store.S2Store, rows: np.ndarray, fields) -> dict[str, np.ndarray]:
    """The given rows of some arrays, reading each touched chunk once."""
    if rows.size == 0:
        return view.read(0, 0, fields)
    out: dict[str, list] = {name: [] for name in fields}
    chunk = view.chunk_rows
    for c in np.unique(rows // chunk):
        start, stop = c * chunk, min(len(view), (c + 1) * chunk)
        block = view.read(start, stop, fields)
        picked = rows[(rows >= start) & (rows < stop)] - start
        for name in fields:
            out[name].append(block[name][picked])
    return {name: np.concatenate(parts) for name, parts in out.items()}


def summary(view: s2store.S2Store, sample: int | None = 10_000) -> dict:
    """Facts about a store for ``s2gen info`` (operator counts from ``sample`` rows)."""
    damaged = sorted({d.shard for d in s2store.check_shards(view.path)})  # sizes only
    whole = view.read(0, len(view), ("n_in", "n_out", "sampler"))
    n_in, n_out, sampler = whole["n_in"], whole["n_out"], whole["sampler"]
    codes = view.header["sampler_codes"]
    names = {v: k for k, v in codes.items()}
    rows = sample_rows(len(view), sample)
    tokens = _read_rows(view, rows, ["tokens"])["tokens"]
    counts = np.bincount(tokens.ravel(), minlength=len(view.vocabulary))
    acceptance = view.header.get("acceptance", {})
    draws = acceptance.get("excitation_draws", 0)
    return {
        "path": view.path,
        "format_version": view.header["format_version"],
        "package_version": view.header["package_version"],
        "rows": len(view),
        "complete_shards": f"{len(view.complete_shards())} of "
        f"{s2store.shard_count(len(view), view.shard_rows)}",
        "damaged_shards": damaged,
        "checksums": CHECKSUMS if view.has_checksums else _no_checksums(view),
        "length": view.config.length,
        "dtype": view.config.dtype,
        "input_dims": dict(sorted(Counter(n_in.tolist()).items())),
        "output_dims": dict(sorted(Counter(n_out.tolist()).items())),
        "sampler_mix": {
            names[c]: int(v) for c, v in enumerate(np.bincount(sampler.ravel())) if c and v
        },
        "operator_counts": {
            op.name: int(counts[vocab.INDEX[op.name]])
            for op in OPERATORS
            if counts[vocab.INDEX[op.name]]
        },
        "operator_rows_sampled": len(rows),
        "acceptance_rate": acceptance.get("accepted", 0) / draws if draws else None,
        "acceptance": acceptance,
        "bytes_on_disk": s2store.size_on_disk(view.path),
    }


CHECKSUMS = "size and CRC-32C of every shard object (format 2)"


def _no_checksums(view: s2store.S2Store) -> str:
    """Why a format-1 store has no checksums and how to add them."""
    if _series_only(view):
        fix = "sample it again with `s2gen oats sample`, which writes format 2"
    else:
        fix = (
            "re-run the `s2gen generate` command that made it with --verify: it checks every "
            "shard against a regeneration and records them (format 2)"
        )
    return (
        f"none: store format {view.header['format_version']} records no checksums, so a changed "
        f"byte inside a shard can go unnoticed; to add them, {fix}"
    )


@dataclass
class Report:
    """Outcome of ``validate``: failures as (row or None, message), and notes."""

    rows_checked: int = 0
    shards_checked: int = 0
    failures: list[tuple[int | None, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, row: int | None, message: str) -> None:
        self.failures.append((row, message))


def _check_layout(view: s2store.S2Store, report: Report) -> None:
    """Array shapes and dtypes, commits, and every committed shard's objects against
    their records."""
    specs = s2store.array_specs(view.config, len(view))
    for name, (shape, dtype) in specs.items():
        array = view.arrays[name]
        want = np.dtypes.StringDType() if dtype is str else np.dtype(dtype)
        if array.shape != shape:
            report.fail(None, f"array {name} has shape {array.shape}, expected {shape}")
        if dtype is not str and np.dtype(array.dtype) != want:
            report.fail(None, f"array {name} has dtype {array.dtype}, expected {want}")
    records = s2store.shard_records(view.path)
    for k in range(s2store.shard_count(len(view), view.shard_rows)):
        report.shards_checked += 1
        if k not in records:
            report.fail(None, f"shard {k} is not committed (generation incomplete)")
    damages = s2store.check_shards(view.path, hashes=True)
    for damage in damages:
        report.fail(None, str(damage))
    if damages:
        report.notes.append(
            "re-run the `s2gen generate` command that made the store to regenerate the damaged "
            "shards (add --verify when only checksums differ)"
            if not _series_only(view)
            else "this series-only store cannot be regenerated; sample it again"
        )
    if not view.has_checksums:
        report.notes.append(f"checksums: {_no_checksums(view)}")


def _series_only(view: s2store.S2Store) -> bool:
    """A store of generated series without expressions (``s2gen oats sample``)."""
    return "source" in view.header


def _check_series_row(view, i: int, row: dict, report: Report) -> None:
    m = int(row["n_in"])
    if not 1 <= m <= row["x"].shape[0] or int(row["n_out"]) != 0:
        report.fail(i, f"n_in={m}, n_out={int(row['n_out'])}: expected input channels only")
        return
    if not np.isfinite(row["x"]).all():
        report.fail(i, "non-finite value in x")
    if row["x"][m:].any() or row["y"].any() or row["tokens"].any() or row["sampler"][m:].any():
        report.fail(i, "padding channels or expression arrays are not zero")
    if not set(row["sampler"][:m].tolist()) <= set(view.header["sampler_codes"].values()) - {0}:
        report.fail(i, f"unknown sampler codes {row['sampler'][:m].tolist()}")


def _check_row(view, i: int, row: dict, report: Report) -> None:
    if _series_only(view):
        _check_series_row(view, i, row, report)
        return
    config = view.config
    m, n = int(row["n_in"]), int(row["n_out"])
    if not config.min_input_dim <= m <= config.max_input_dim:
        report.fail(i, f"n_in={m} outside [{config.min_input_dim}, {config.max_input_dim}]")
        return
    if not config.min_output_dim <= n <= config.max_output_dim:
        report.fail(i, f"n_out={n} outside [{config.min_output_dim}, {config.max_output_dim}]")
        return
    x, y = row["x"], row["y"]
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        report.fail(i, "non-finite value in x or y")
    if x[m:].any() or y[n:].any() or row["sampler"][m:].any() or row["tokens"][n:].any():
        report.fail(i, "padding channels are not zero")
    elif any(str(e) for e in row["expr"][n:]):
        report.fail(i, "padding channels are not zero (expr)")
    if not set(row["sampler"][:m].tolist()) <= set(view.header["sampler_codes"].values()) - {0}:
        report.fail(i, f"unknown sampler codes {row['sampler'][:m].tolist()}")
    if int(row["seed"]) != int(row_seeds(config.seed, i, i + 1)[0]):
        report.fail(i, "seed is not the row seed of (config.seed, row)")
    x64 = x[:m].astype(np.float64)
    for j in range(n):
        text = str(row["expr"][j])
        try:
            code, arg = vocab.tokens_to_program(row["tokens"][j])
            if to_infix(code, arg) != text:
                report.fail(i, f"output {j}: tokens decode to another expression than expr")
        except ValueError as exc:
            report.fail(i, f"output {j}: tokens do not decode ({exc})")
        stored = y[j]
        with np.errstate(invalid="ignore"):  # inf is reported above
            constant = stored.astype(np.float64).std() == 0
        if constant:
            report.fail(i, f"output {j} is constant")
        try:
            with np.errstate(all="ignore"):
                want = lambdify(text, m)(x64).astype(stored.dtype)
        except Exception as exc:  # stored text that is no function of x_0..x_{m-1}
            why = " ".join(str(exc).split())
            report.fail(i, f"output {j}: cannot evaluate expr {text!r} on {m} inputs ({why})")
            continue
        tolerance = np.spacing(np.abs(stored)).astype(np.float64)
        gap = np.abs(want.astype(np.float64) - stored.astype(np.float64))
        if not (np.isfinite(want).all() and (gap <= tolerance).all()):
            worst = float(np.nanmax(gap)) if np.isfinite(gap).any() else float("nan")
            report.fail(
                i,
                f"output {j}: y differs from sympy's {shorten(text)} on stored x (max {worst:.3g})",
            )
    again = generate_pair(config, int(row["seed"]))
    if not (np.array_equal(again.x[0], x) and np.array_equal(again.y[0], y)):
        report.fail(i, "regenerating the pair from (config, seed) gives other values")
    if "augment" in row:
        _check_augment(i, row["augment"], m, again.augment[0], report)
    if "n_nodes" in row:
        _check_graph(config, i, row, m, n, report)
        _check_graph_regenerates(i, row, again, report)


def _check_augment(i: int, stored: np.ndarray, m: int, again: np.ndarray, report: Report) -> None:
    if stored[m:].any() or stored[:m].max(initial=0) >= 1 << len(AUGMENTATIONS):
        report.fail(i, f"augment masks {stored.tolist()} have padding or unknown bits set")
    elif not np.array_equal(stored, again):
        report.fail(i, "augment masks differ from the regenerated pair's")


def _check_graph(config, i: int, row: dict, m: int, n: int, report: Report) -> None:
    """Graph rows: a DAG in topological order whose nodes, evaluated one by one through their
    parents on the stored x, give the stored y."""
    nodes = int(row["n_nodes"])
    masks = [int(v) for v in row["node_parents"]]
    texts = [str(t) for t in row["node_expr"]]
    outputs = [int(v) for v in row["output_node"]]
    if not (config.min_nodes <= nodes <= config.max_nodes and m < nodes):
        report.fail(i, f"n_nodes={nodes} is outside [{config.min_nodes}, {config.max_nodes}]")
        return
    if any(masks[:m]) or any(masks[nodes:]) or any(texts[:m]) or any(texts[nodes:]):
        report.fail(i, "input or padding nodes have parents or expressions")
        return
    if (
        any(outputs[n:])
        or len(set(outputs[:n])) != n
        or not all(m <= v < nodes for v in outputs[:n])
    ):
        report.fail(i, f"output nodes {outputs[:n]} are not distinct non-input nodes")
        return
    values = list(row["x"][:m].astype(np.float64))
    for v in range(m, nodes):
        parents = s2store.parents_of(masks[v])
        if not parents or parents[-1] >= v:
            report.fail(i, f"node {v} has parents {parents}: the graph is not a DAG in node order")
            return
        used = sorted(str(s) for s in parse_infix(texts[v]).free_symbols)
        if used != sorted(f"x_{k}" for k in range(len(parents))):
            report.fail(i, f"node {v}'s expression uses {used}, not its {len(parents)} parents")
            return
        values.append(lambdify(texts[v], len(parents))(np.stack([values[p] for p in parents])))
    for j, v in enumerate(outputs[:n]):
        stored = row["y"][j]
        with np.errstate(all="ignore"):
            want = values[v].astype(stored.dtype).astype(np.float64)
        gap = np.abs(want - stored.astype(np.float64))
        if not (gap <= np.spacing(np.abs(stored)).astype(np.float64)).all():
            report.fail(i, f"output {j}: node {v} evaluated through its parents differs from y")


def _check_graph_regenerates(i: int, row: dict, again, report: Report) -> None:
    graph = again.graph
    same = (
        int(row["n_nodes"]) == int(graph.n_nodes[0])
        and np.array_equal(row["node_parents"], graph.parent_masks()[0])
        and np.array_equal(row["output_node"], graph.output_node[0])
        and [str(t) for t in row["node_expr"]] == [str(t) for t in graph.expressions()[0]]
    )
    if not same:
        report.fail(i, "the graph differs from the regenerated pair's")


def validate(path: str, sample: int | None = 1000, seed: int = 0) -> Report:
    """Check the store's invariants on ``sample`` random rows (all rows if None)."""
    report = Report()
    view = s2store.open(path, allow_incomplete=True)
    _check_layout(view, report)
    rows = sample_rows(len(view), sample, seed)
    rows = rows[np.isin(rows // view.shard_rows, view.complete_shards())]
    chunk = view.chunk_rows
    for c in np.unique(rows // chunk):
        start, stop = c * chunk, min(len(view), (c + 1) * chunk)
        try:
            block = view.read(start, stop)
        except s2store.StoreError:
            continue  # a shard whose objects are missing or cut short: reported above
        for i in rows[(rows >= start) & (rows < stop)]:
            _check_row(view, int(i), {k: v[i - start] for k, v in block.items()}, report)
            report.rows_checked += 1
    return report


def describe_pair(view: s2store.S2Store, index: int) -> str:
    """Readable text for ``s2gen show``: dims, samplers, expressions, summary stats."""
    import sympy as sp

    pair = view[index]
    names = {v: k for k, v in view.header["sampler_codes"].items()}
    lines = [
        f"pair {pair.index} of {view.path} (seed {pair.seed})",
        f"inputs: {len(pair.x)} x {view.config.length} points, samplers: "
        + ", ".join(f"x_{c}={names[int(s)]}" for c, s in enumerate(pair.sampler)),
    ]
    for c, series in enumerate(pair.x):
        lines.append(f"  x_{c}: {_stats(series)}")
    if pair.augment is not None:
        lines.append(
            "augmented: "
            + ", ".join(f"x_{c}={augmentation_names(int(m))}" for c, m in enumerate(pair.augment))
        )
    if pair.graph is not None:
        lines.extend(describe_graph(pair.graph, len(pair.x)))
    for j, text in enumerate(pair.expr):
        try:
            tree = parse_infix(text)
        except ExpressionError as exc:  # the store was edited or is corrupt: show, never run
            lines.append(f"y_{j} = {shorten(text)}")
            lines.append(f"  not s2gen's expression language: {exc.reason}")
        else:
            lines.append(f"y_{j} = {text}")
            lines.append(sp.pretty(tree, use_unicode=False))
        lines.append(f"  y_{j}: {_stats(pair.y[j])}")
    return "\n".join(lines)


def describe_graph(graph: s2store.Graph, n_in: int) -> list[str]:
    """Lines for ``show``: each node with its parents and its expression over them."""
    outputs = {v: j for j, v in enumerate(graph.output_node)}
    lines = [f"graph: {len(graph.parents)} nodes, inputs are nodes 0..{n_in - 1}"]
    for v, (parents, text) in enumerate(zip(graph.parents, graph.expr, strict=True)):
        tag = f" -> y_{outputs[v]}" if v in outputs else ""
        if v < n_in:
            lines.append(f"  node {v} = x_{v} (input){tag}")
            continue
        names = ", ".join(f"x_{k}=node {p}" for k, p in enumerate(parents))
        lines.append(f"  node {v} <- {parents}{tag}: {text}   [{names}]")
    return lines


def augmentation_names(mask: int) -> str:
    """'time_warp+jitter' for a mask with those bits; 'none' for 0."""
    names = [name for k, name in enumerate(AUGMENTATIONS) if mask & (1 << k)]
    return "+".join(names) or "none"


def _stats(series: np.ndarray) -> str:
    s = series.astype(np.float64)
    return f"mean {s.mean():.4g}, std {s.std():.4g}, min {s.min():.4g}, max {s.max():.4g}"


def plot_pair(view: s2store.S2Store, index: int, out: str) -> None:
    """Draw x and y of one pair into a PNG (needs matplotlib: extra ``plot``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("--plot needs matplotlib: pip install 's2gen[plot]'") from exc
    pair = view[index]
    if pair.graph is None:
        fig, axes = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    else:
        fig = plt.figure(figsize=(9, 8))
        axes = [fig.add_subplot(3, 1, 1)]
        axes.append(fig.add_subplot(3, 1, 2, sharex=axes[0]))
        draw_graph(fig.add_subplot(3, 1, 3), pair.graph, len(pair.x))
    for c, series in enumerate(pair.x):
        axes[0].plot(series, lw=0.8, label=f"x_{c}")
    for j, series in enumerate(pair.y):
        axes[1].plot(series, lw=0.8, label=f"y_{j}")
    axes[0].set_title(f"pair {pair.index}: inputs")
    axes[1].set_title("outputs")
    for ax in axes[:2]:
        ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def graph_layout(parents: list[list[int]]) -> list[tuple[int, int]]:
    """(layer, slot) per node: layer = longest path from an input, slot = order in the layer."""
    layers: list[int] = []
    for ps in parents:
        layers.append(1 + max(layers[p] for p in ps) if ps else 0)
    slots: dict[int, int] = {}
    out = []
    for layer in layers:
        out.append((layer, slots.get(layer, 0)))
        slots[layer] = slots.get(layer, 0) + 1
    return out


def draw_graph(ax, graph: s2store.Graph, n_in: int) -> None:
    """Draw a pair's DAG on a matplotlib axis: inputs left, outputs marked y_j."""
    where = graph_layout(graph.parents)
    outputs = {v: j for j, v in enumerate(graph.output_node)}
    for v, ps in enumerate(graph.parents):
        for p in ps:
            ax.annotate(
                "",
                xy=where[v],
                xytext=where[p],
                arrowprops={"arrowstyle": "->", "color": "0.5", "shrinkA": 9, "shrinkB": 9},
            )
    for v, (layer, slot) in enumerate(where):
        label = f"x_{v}" if v < n_in else f"n{v}"
        if v in outputs:
            label += f"\ny_{outputs[v]}"
        color = "tab:blue" if v < n_in else ("tab:orange" if v in outputs else "0.85")
        ax.text(layer, slot, label, ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round", "fc": color, "ec": "0.3"})  # fmt: skip
    ax.set_xlim(-0.5, max(w[0] for w in where) + 0.5)
    ax.set_ylim(-0.7, max(w[1] for w in where) + 0.7)
    ax.set_title("graph (inputs blue, outputs orange; each node is an expression of its parents)")
    ax.axis("off")
