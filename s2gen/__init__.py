"""s2gen: series-symbol (S2) data for time-series foundation models.

``import s2gen`` stays light: no torch, no zarr, no sympy. Generation lives in
``s2gen.generators``, the store in ``s2gen.store``, training stages in
``s2gen.pretrain``, ``s2gen.oats`` and ``s2gen.evaluate`` (extra ``train``).
"""

__version__ = "0.2.0"
