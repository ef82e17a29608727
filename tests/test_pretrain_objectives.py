"""The mae, timedrl and ts2vec objectives and the dilated-CNN backbone (issue 15).

Per objective: its loss against a hand-computed value (or a plain-loop twin) on a fixed
2-sample batch, its gradients, a short training that lowers it, and a frozen linear probe on
a separable synthetic task above chance. Plus the registry's backbone/objective checks.
"""

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from s2gen.pretrain.backbones import BACKBONES
from s2gen.pretrain.backbones.dilated_cnn import DilatedCNN
from s2gen.pretrain.config import (
    BACKBONE_NAMES,
    OBJECTIVE_BACKBONES,
    OBJECTIVE_NAMES,
    PretrainConfig,
)
from s2gen.pretrain.encoder import SeriesEncoder, random_encoder
from s2gen.pretrain.model import Pretrainer
from s2gen.pretrain.objectives import OBJECTIVES
from s2gen.pretrain.objectives.mae import corrupt_patches, draw_corruption, mae_error
from s2gen.pretrain.objectives.timedrl import instance_contrast as timedrl_instance
from s2gen.pretrain.objectives.timedrl import patch_reconstruction
from s2gen.pretrain.objectives.ts2vec import (
    draw_crops,
    hierarchical_contrast,
    instance_contrast,
    temporal_contrast,
    two_views,
)

torch.set_num_threads(1)
TINY = dict(
    window=64,
    patch=8,
    d_model=16,
    n_heads=2,
    d_ff=32,
    n_layers=1,
    cnn_hidden=16,
    cnn_depth=3,
    embed_dim=8,
    batch_size=32,
)


def tiny(**overrides) -> PretrainConfig:
    return PretrainConfig.preset("ci", **{**TINY, **overrides})


# ---------------------------------------------------------------- registry and config checks


def test_registries_list_every_backbone_and_objective_and_their_pairs():
    assert tuple(BACKBONES) == BACKBONE_NAMES == ("s2", "dilated-cnn", "gpt2")
    assert tuple(OBJECTIVES) == OBJECTIVE_NAMES == ("s2", "mae", "timedrl", "ts2vec", "crops")
    assert set(OBJECTIVE_BACKBONES) == set(OBJECTIVE_NAMES)
    for name in ("s2+timedrl", "s2+mae", "mae+timedrl", "s2+mae+timedrl"):
        assert PretrainConfig(objective=name).objectives == tuple(name.split("+"))


@pytest.mark.parametrize(
    "settings, match",
    [
        (dict(objective="ts2vec", backbone="s2"), "use --backbone dilated-cnn"),
        (dict(objective="mae", backbone="dilated-cnn"), "use --backbone s2"),
        (dict(objective="timedrl", backbone="dilated-cnn"), "use --backbone s2"),
        (dict(objective="s2+ts2vec"), "train different backbones.*run ts2vec alone"),
        (dict(objective="mae+ts2vec", backbone="dilated-cnn"), "train different backbones"),
        (dict(objective="mae", backbone="gpt2"), "use --backbone s2"),
        (dict(objective="ts2vec", backbone="gpt2"), "use --backbone dilated-cnn"),
        (dict(objective="s2", backbone="dilated-cnn"), "trains the s2 or gpt2 backbone"),
        (dict(objective="s2", backbone="s2", frontend="multiscale", llm_layers=2), "gpt2 only"),
        (dict(objective="ts2vec", backbone="dilated-cnn", frontend="multiscale"), "frontend"),
        (dict(objective="s2+mae", cnn_depth=0), "cnn_depth"),
        (dict(objective="mae", mae_ratio=0.0), "mae_ratio"),
        (dict(objective="ts2vec", backbone="dilated-cnn", ts2vec_alpha=1.5), "ts2vec_alpha"),
    ],
)
def test_bad_objective_and_backbone_pairs_are_refused_naming_the_fix(settings, match):
    with pytest.raises(ValueError, match=match):
        PretrainConfig(**settings)


def test_preset_pairs_a_lone_backbone_or_objective_with_its_partner():
    assert PretrainConfig.preset("ci", backbone="dilated-cnn").objective == "ts2vec"
    assert PretrainConfig.preset("ci", objective="ts2vec").backbone == "dilated-cnn"
    assert PretrainConfig.preset("ci", objective="mae").backbone == "s2"
    assert PretrainConfig.preset("ci", backbone="s2").objective == "s2+timedrl"
    with pytest.raises(ValueError, match="use --backbone dilated-cnn"):  # both given: no guess
        PretrainConfig.preset("ci", objective="ts2vec", backbone="s2")


# ---------------------------------------------------------------- shared helpers


def separable_series(n: int, length: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two classes: noisy sines of 2 or 6 cycles per window, random phase and scale."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    t = np.linspace(0, 1, length)
    cycles = np.where(labels == 1, 6.0, 2.0)[:, None]
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    scale = rng.uniform(0.5, 3.0, (n, 1))
    x = scale * np.sin(2 * np.pi * cycles * t + phase) + 0.3 * rng.normal(size=(n, length))
    return (x + rng.normal(0, 2, (n, 1))).astype(np.float32), labels


def train_briefly(cfg: PretrainConfig, steps: int, seed: int = 0) -> tuple[Pretrainer, list]:
    """``steps`` AdamW steps on fresh separable batches; the model and its loss per step."""
    torch.manual_seed(seed)
    model = Pretrainer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for step in range(steps):
        series, _ = separable_series(cfg.batch_size, cfg.window, 1000 + step)
        torch.manual_seed(step)
        out = model.losses({"series": torch.from_numpy(series)}, 0.0, generator)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    return model, losses


def probe_accuracy(backbone: nn.Module, cfg: PretrainConfig) -> float:
    """Frozen embeddings -> logistic regression: test accuracy on the separable task."""
    encoder = SeriesEncoder(cfg)
    encoder.backbone.load_state_dict(backbone.state_dict())
    x_train, y_train = separable_series(200, cfg.window, 1)
    x_test, y_test = separable_series(200, cfg.window, 2)
    clf = LogisticRegression(max_iter=2000).fit(encoder.embed(x_train), y_train)
    return float(clf.score(encoder.embed(x_test), y_test))


def assert_learns(cfg: PretrainConfig, steps: int, drop: float) -> None:
    model, losses = train_briefly(cfg, steps)
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert last < first - drop, (first, last)
    assert probe_accuracy(model.series, cfg) > 0.75  # chance is 0.5


# ---------------------------------------------------------------- mae


class EchoBackbone(nn.Module):
    """Stub backbone: a patch's state is its own input values, 0 for the mask token."""

    has_cls, token_points, dim = True, 2, 2

    def forward(self, x, mask=None, stats=None):
        self.stats = stats
        patches = x.unflatten(-1, (-1, 2))  # (B, P, 2)
        patches = patches.masked_fill(mask.unsqueeze(-1), 0.0)
        return torch.cat([torch.zeros_like(patches[:, :1]), patches], dim=1)

    def token_states(self, hidden):
        return hidden[:, 1:]


def test_mae_loss_on_a_hand_computed_two_sample_batch():
    series = torch.tensor(
        [
            [3.0, 5.0, 10.0, 12.0, 5.0, 3.0, 0.0, 0.0],  # unchosen points 3 5 5 3: mean 4, var 1
            [0.0, 2.0, 0.0, 2.0, 9.0, 9.0, 0.0, 2.0],  # unchosen points 0 2 0 2 0 2: mean 1, var 1
        ]
    )
    chosen = torch.tensor([[False, True, False, True], [False, False, True, False]])
    action = torch.tensor([[0.0, 0.5, 0.0, 0.95], [0.0, 0.0, 0.85, 0.0]])  # mask, keep; swap
    source = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 7]])  # row 1 patch 2 <- row 0 patch 0
    stub = EchoBackbone()
    err = mae_error(stub, nn.Identity(), series, chosen, action, source)
    s2 = 1 / (1 + 1e-5)  # the squared normalisation factor 1 / (var + eps)
    # row 0: patch 1 (target 6, 8) is the mask token -> 0: (36 + 64) / 2; patch 3 is kept: 0
    # row 1: patch 2 (target 8, 8) shows row 0's patch 0 (-1, 1): (81 + 49) / 2
    expected = torch.tensor([(50.0 + 0.0) / 2, 65.0]) * s2
    torch.testing.assert_close(err, expected)
    torch.testing.assert_close(stub.stats[:, 0], torch.asinh(torch.tensor([4.0, 1.0])))
    torch.testing.assert_close(stub.stats[:, 1], torch.full((2,), 0.5 * math.log(1 + 1e-5)))


def test_mae_corruption_follows_roberta_and_never_swaps_a_patch_with_itself():
    g = torch.Generator().manual_seed(0)
    chosen, action, source = draw_corruption(4000, 16, 0.15, g)
    assert (chosen.sum(1) == 2).all()  # round(0.15 * 16) per window
    own = torch.arange(4000 * 16).view(4000, 16)
    assert (source != own).all() and source.min() >= 0 and source.max() < 4000 * 16
    a = action[chosen]
    assert abs((a < 0.8).float().mean() - 0.8) < 0.02
    assert abs(((a >= 0.8) & (a < 0.9)).float().mean() - 0.1) < 0.015
    patches = torch.randn(4000, 16, 3, generator=g)
    inputs, hidden = corrupt_patches(patches, chosen, action, source)
    swapped = chosen & (action >= 0.8) & (action < 0.9)
    torch.testing.assert_close(hidden, chosen & (action < 0.8))
    torch.testing.assert_close(inputs[swapped], patches.flatten(0, 1)[source[swapped]])
    torch.testing.assert_close(inputs[~swapped], patches[~swapped])


def test_mae_hides_chosen_points_from_the_statistics_and_learns():
    cfg = tiny(objective="mae")
    model = Pretrainer(cfg).eval()
    g = torch.Generator().manual_seed(3)
    series = torch.randn(4, 64, generator=g).cumsum(1)
    chosen, action, source = draw_corruption(4, 8, 0.15, g)
    action = torch.zeros_like(action)  # every chosen patch is the mask token
    head = model.objectives["mae"].head
    base = mae_error(model.series, head, series, chosen, action, source)
    moved = series + 50.0 * chosen.repeat_interleave(8, dim=1)  # chosen points moved far away
    states = {}
    model.series.register_forward_hook(lambda m, args, out: states.setdefault(len(states), out))
    mae_error(model.series, head, moved, chosen, action, source)
    mae_error(model.series, head, series, chosen, action, source)
    torch.testing.assert_close(states[0], states[1])  # the encoder saw nothing of the move
    assert (mae_error(model.series, head, moved, chosen, action, source) > base).all()
    assert_learns(tiny(objective="mae"), steps=80, drop=0.05)


# ---------------------------------------------------------------- timedrl


def test_timedrl_terms_on_a_hand_computed_two_sample_batch():
    p1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[1.0, 1.0], [0.0, 2.0]])  # cos(p1, z2) = 1/sqrt(2), 1
    p2 = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    z1 = torch.tensor([[1.0, 0.0], [1.0, -1.0]])  # cos(p2, z1) = 1, 0
    inst = timedrl_instance(p1, p2, z1, z2)
    assert inst.item() == pytest.approx(-0.5 * ((1 / math.sqrt(2) + 1) / 2 + 0.5), rel=1e-6)
    target = torch.tensor([[[1.0, 2.0]], [[0.0, -1.0]]])  # (B=2, P=1, patch=2)
    r1 = torch.tensor([[[1.0, 0.0]], [[0.0, 0.0]]])  # squared errors 0 4 0 1: mean 5/4
    r2 = torch.tensor([[[2.0, 2.0]], [[3.0, -1.0]]])  # squared errors 1 0 9 0: mean 10/4
    assert patch_reconstruction(r1, r2, target).item() == pytest.approx(0.5 * (5 / 4 + 10 / 4))


def test_timedrl_stops_the_gradient_at_the_other_view_in_both_directions():
    torch.manual_seed(0)
    predictor = nn.Linear(3, 3)
    z1 = torch.randn(2, 3, requires_grad=True)
    z2 = torch.randn(2, 3, requires_grad=True)
    loss = timedrl_instance(predictor(z1), predictor(z2), z1, z2)
    g1, g2 = torch.autograd.grad(loss, (z1, z2))
    cos = nn.functional.cosine_similarity
    # a view receives gradient only through its own prediction, never as the other's target
    (want1,) = torch.autograd.grad(-0.5 * cos(predictor(z1), z2.detach()).mean(), z1)
    (want2,) = torch.autograd.grad(-0.5 * cos(predictor(z2), z1.detach()).mean(), z2)
    torch.testing.assert_close(g1, want1)
    torch.testing.assert_close(g2, want2)
    (without,) = torch.autograd.grad(
        -0.5 * (cos(predictor(z1), z2).mean() + cos(predictor(z2), z1).mean()), z1
    )
    assert not torch.allclose(g1, without)  # the stop-gradient changes what z1 receives


def test_timedrl_uses_two_dropout_passes_and_learns():
    cfg = tiny(objective="timedrl", dropout=0.2, w_rec=1.0)
    model = Pretrainer(cfg)
    g = torch.Generator().manual_seed(0)
    batch = {"series": torch.randn(8, 64, generator=g).cumsum(1)}
    views = []
    model.series.register_forward_hook(lambda m, args, out: views.append(out))
    out = model.losses(batch, 0.0, g)
    assert set(out) == {"inst", "rec", "loss"} and len(views) == 2
    assert not torch.allclose(views[0], views[1])  # the passes differ by dropout only
    assert out["loss"].item() == pytest.approx(out["rec"].item() + out["inst"].item(), rel=1e-6)
    assert_learns(tiny(objective="timedrl", dropout=0.1, w_rec=1.0), steps=80, drop=0.05)


# ---------------------------------------------------------------- ts2vec


def _loop_terms(z1: np.ndarray, z2: np.ndarray) -> tuple[float, float]:
    """TS2Vec's instance-wise and temporal terms by plain loops over the paper's formulas."""
    B, T, _ = z1.shape

    def term(anchor, positive, candidates):  # -log softmax of the positive among candidates
        logits = [float(anchor @ c) for c in candidates]
        return -(float(anchor @ positive) - math.log(sum(math.exp(v) for v in logits)))

    inst, temp = [], []
    for a, b in ((z1, z2), (z2, z1)):  # each view as the anchor
        for i in range(B):
            for t in range(T):
                others = [b[j, t] for j in range(B)] + [a[j, t] for j in range(B) if j != i]
                inst.append(term(a[i, t], b[i, t], others))
                others = [b[i, s] for s in range(T)] + [a[i, s] for s in range(T) if s != t]
                temp.append(term(a[i, t], b[i, t], others))
    return float(np.mean(inst)), float(np.mean(temp))


def test_ts2vec_hierarchical_loss_matches_a_plain_loop_twin_at_every_scale():
    rng = np.random.default_rng(0)
    z1 = rng.normal(size=(2, 5, 3))  # lengths 5 -> 2 -> 1: three scales
    z2 = z1 + 0.5 * rng.normal(size=(2, 5, 3))
    loss, scales = hierarchical_contrast(torch.from_numpy(z1), torch.from_numpy(z2), 0.5)
    assert len(scales) == 3
    a, b = z1, z2
    want = []
    for scale, (inst, temp) in enumerate(scales):
        w_inst, w_temp = _loop_terms(a, b)
        assert inst.item() == pytest.approx(w_inst, rel=1e-10), scale
        if a.shape[1] > 1:
            assert temp.item() == pytest.approx(w_temp, rel=1e-10), scale
        else:
            assert temp.item() == 0.0  # one timestamp: no temporal negatives
            w_temp = 0.0
        want.append(0.5 * w_inst + 0.5 * w_temp)
        t = a.shape[1] // 2  # max-pool by 2, dropping an odd last step
        a = a[:, : 2 * t].reshape(2, t, 2, 3).max(axis=2)
        b = b[:, : 2 * t].reshape(2, t, 2, 3).max(axis=2)
    assert loss.item() == pytest.approx(np.mean(want), rel=1e-10)
    other, _ = hierarchical_contrast(torch.from_numpy(z1), torch.from_numpy(z2), 0.2)
    assert other.item() == pytest.approx(
        np.mean([0.2 * i.item() + 0.8 * t.item() for i, t in scales]), rel=1e-10
    )


def test_ts2vec_loss_gradients_at_every_scale():
    g = torch.Generator().manual_seed(1)
    z1 = torch.randn(2, 6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(2, 6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    for fn in (instance_contrast, temporal_contrast):
        assert torch.autograd.gradcheck(fn, (z1, z2))
    assert torch.autograd.gradcheck(lambda a, b: hierarchical_contrast(a, b, 0.5)[0], (z1, z2))
    # max pooling routes the length-1 scale's gradient to one step per series and channel:
    # the largest of steps 0..3 (6 -> 3 -> 1 drops steps 4 and 5)
    coarse = hierarchical_contrast(z1, z2, 0.5)[1][2][0]
    (grad,) = torch.autograd.grad(coarse, z1)
    reached = grad != 0
    want = torch.zeros_like(reached)
    want.scatter_(1, z1.detach()[:, :4].argmax(dim=1, keepdim=True), True)
    assert torch.equal(reached, want)


def test_ts2vec_crops_follow_the_papers_rule_and_views_align():
    g = torch.Generator().manual_seed(0)
    overlaps, seen_equal_start = [], False
    for _ in range(2000):
        a1, b1, a2, b2, offset = draw_crops(32, 4, g)
        assert 0 <= a1 <= a2 < b1 <= b2 <= 32 and b1 - a2 >= 2
        assert (offset + a1 >= 0).all() and (offset + b2 <= 32).all()
        overlaps.append(b1 - a2)
        seen_equal_start |= a1 == a2
    assert min(overlaps) == 2 and max(overlaps) == 32 and seen_equal_start
    assert abs(np.mean(overlaps) - 17) < 1.0  # uniform on [2, 32]
    z = torch.arange(6 * 32, dtype=torch.float32).view(6, 32)
    views, masks, (s1, s2, n) = two_views(z, g, 0.5)
    torch.testing.assert_close(views[0][:, s1 : s1 + n], views[1][:, s2 : s2 + n])
    assert all(
        m.shape == v.shape and m.dtype == torch.bool for m, v in zip(masks, views, strict=True)
    )
    diffs = torch.diff(views[0], dim=1)
    assert (diffs == 1).all()  # contiguous crops of each row
    masks = [two_views(z, g, 0.5)[1][0] for _ in range(200)]
    share = torch.cat([m.flatten() for m in masks]).float().mean()
    assert abs(share - 0.5) < 0.03


def test_dilated_cnn_is_ts2vecs_encoder_block_by_block():
    torch.manual_seed(0)
    net = DilatedCNN(hidden=8, depth=2, out=5, dropout=0.0).eval()
    assert len(net.blocks) == 3  # depth blocks at the hidden width, one to the output
    assert [b.conv1.dilation[0] for b in net.blocks] == [1, 2, 4]
    assert all(b.conv1.kernel_size[0] == 3 for b in net.blocks)
    x = torch.randn(2, 60)
    h = net(x)
    assert h.shape == (2, 60, 5) and net.n_tokens(60) == 60
    torch.testing.assert_close(net.pool(h), h.max(dim=1).values)
    # receptive field: two kernel-3 convolutions per block reach 2 * (1 + 2 + 4) = 14 steps
    y = x.clone()
    y[:, 30] += 1.0
    changed = (net(y) - h).abs().amax(dim=(0, 2)) > 0
    assert torch.equal(torch.nonzero(changed).flatten(), torch.arange(16, 45))
    # timestamp masking zeroes the latent vector: the value at a masked step is never seen
    mask = torch.zeros(2, 60, dtype=torch.bool)
    mask[:, 30] = True
    torch.testing.assert_close(net(x, mask), net(y, mask))
    assert not torch.allclose(net(x, mask), h)


def test_ts2vec_objective_learns_on_the_dilated_cnn():
    cfg = tiny(backbone="dilated-cnn", batch_size=16)
    assert cfg.objective == "ts2vec"
    assert_learns(cfg, steps=60, drop=0.2)
    encoder = random_encoder("ci", seed=0, **{**TINY, "backbone": "dilated-cnn"})
    assert isinstance(encoder.backbone, DilatedCNN) and encoder.dim == 16
    out = encoder.embed([np.arange(n, dtype=np.float32) for n in (1, 7, 64, 300)])
    assert out.shape == (4, 16) and np.isfinite(out).all()
