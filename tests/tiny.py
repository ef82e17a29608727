"""The smallest encoders the tests pretrain: a few thousand parameters, seconds per run."""

TINY_ENCODERS = dict(
    d_model=16,
    n_heads=2,
    d_ff=32,
    n_layers=1,
    sym_d_model=16,
    sym_heads=2,
    sym_d_ff=32,
    sym_layers=1,
    embed_dim=8,
)


def tiny(**settings) -> dict:
    """``PretrainConfig`` overrides: the tiny encoders with ``settings`` (window, patch, ...)."""
    return {**TINY_ENCODERS, **settings}
