"""The ``crops`` objective: resampled sub-span views and SimCLR's NT-Xent between them."""

import math

import numpy as np
import pytest
import torch

from s2gen.pretrain.config import PretrainConfig
from s2gen.pretrain.model import Pretrainer
from s2gen.pretrain.objectives.crops import crop_views, nt_xent

torch.set_num_threads(1)
TINY = dict(window=64, patch=8, d_model=16, n_heads=2, d_ff=32, n_layers=1, embed_dim=8)


def test_crop_views_are_resampled_sub_spans_matching_numpy_interp():
    g = torch.Generator().manual_seed(0)
    series = torch.randn(5, 64, generator=g).cumsum(1)
    views = crop_views(series, 0.5, torch.Generator().manual_seed(1))
    # the same draws, by hand
    h = torch.Generator().manual_seed(1)
    share = 0.5 + 0.5 * torch.rand(5, generator=h)
    span = share * 63
    start = torch.rand(5, generator=h) * (63 - span)
    for r in range(5):
        grid = float(start[r]) + np.linspace(0, 1, 64) * float(span[r])
        want = np.interp(grid, np.arange(64), series[r].numpy())
        np.testing.assert_allclose(views[r].numpy(), want, rtol=1e-5, atol=1e-4)
        assert float(span[r]) >= 0.5 * 63 - 1e-4  # at least half of the window
    assert views.shape == series.shape and views.dtype == torch.float32


def test_nt_xent_on_a_hand_computed_case():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # same directions: cosines 1 with the partner
    # each view: partner cosine 1, the two others 0 -> -log(e / (e + 2)) at tau = 1
    assert nt_xent(a, b, 1.0).item() == pytest.approx(-math.log(math.e / (math.e + 2)), rel=1e-6)
    # at tau = 0.5 the partner logit doubles
    want = -math.log(math.exp(2) / (math.exp(2) + 2))
    assert nt_xent(a, b, 0.5).item() == pytest.approx(want, rel=1e-6)
    swapped = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # partners orthogonal, the other aligned
    assert nt_xent(a, swapped, 1.0).item() > nt_xent(a, b, 1.0).item()


def test_crop_term_trains_the_encoder_and_falls():
    cfg = PretrainConfig.preset("ci", **TINY, objective="crops", lr=3e-3, dropout=0.0)
    torch.manual_seed(0)
    model = Pretrainer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    t = torch.linspace(0, 1, 64)
    periods = torch.tensor([2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 55.0] * 4)
    series = torch.sin(2 * math.pi * periods[:, None] * t[None, :])  # (32, 64)
    losses = []
    for _ in range(60):
        out = model.losses({"series": series + 0.05 * torch.randn(32, 64, generator=g)}, 0.0, g)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["crop"].item())
    assert set(out) == {"crop", "loss"}
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.3, (losses[:3], losses[-3:])
    unused = {"series.mask_token"}  # no masked modelling in this objective
    grads = [p.grad for n, p in model.named_parameters() if n.startswith("series.")]
    named = [n for n, _ in model.named_parameters() if n.startswith("series.")]
    assert all(g is not None for n, g in zip(named, grads, strict=True) if n not in unused)
