"""Pretraining of series encoders: S2 (SymTime, its released code's bugs fixed) and more.

Public entry points (torch is imported on first use, so importing this
package, or ``s2gen.pretrain.cli``, stays light):

- ``PretrainConfig.preset(name, **overrides)``: the ``ci``, ``small`` and ``base`` tiers;
- ``run(cfg, data, out_dir, resume=False, ...)``: the training loop (``data``: stores and
  real series, ``s2gen.pretrain.sources``);
- ``load_encoder(checkpoint_path, device="cpu")`` and
  ``random_encoder(preset="small", seed=0, **overrides)``: a ``SeriesEncoder``
  with ``dim``, ``forward_features(x, resize)``, ``forward_tokens(x, resize)``
  and ``embed(series, resize=..., level="instance"|"patch")``;
- ``Pretrainer``: a backbone (``s2gen.pretrain.backbones``) and its objectives
  (``s2gen.pretrain.objectives``).
"""

from s2gen.pretrain.config import PretrainConfig

_LAZY = {
    "run": "s2gen.pretrain.train",
    "load_encoder": "s2gen.pretrain.encoder",
    "random_encoder": "s2gen.pretrain.encoder",
    "SeriesEncoder": "s2gen.pretrain.encoder",
    "Pretrainer": "s2gen.pretrain.model",
    "draw_patch_mask": "s2gen.pretrain.losses",
}

__all__ = ["PretrainConfig", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 's2gen.pretrain' has no attribute {name!r}")
    import importlib

    try:
        module = importlib.import_module(_LAZY[name])
    except ImportError as exc:
        if exc.name == "torch":
            raise ImportError("s2gen.pretrain needs torch: pip install 's2gen[train]'") from exc
        raise
    return getattr(module, name)
