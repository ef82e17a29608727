"""The ``gpt2`` backbone: a GPT-2 language model as the sequence core, adapted with LoRA.

SeisMoLLM (Wang et al. 2025, arXiv 2502.19960) and GPT4TS (Zhou et al. 2023)
carry a pretrained language model over to series: a front end turns the
series into "feature tokens" of the model's hidden size (``frontends``), the
first ``llm_layers`` GPT-2 blocks process them, and only small parts train.
Here the base weights stay frozen; LoRA adapters (Hu et al. 2022) on the
``lora_targets`` projections train, optionally with the layer norms
(``train_norms``) and the position embeddings (``train_pos``), together with
the front end, the mask embedding and the map of the window's level and scale.

- Masked modelling: masked tokens are replaced by a learned mask embedding
  (their points never reach the front end, ``frontends.embed_tokens``).
- ``stats`` (the level and scale the normalisation removed) is mapped
  linearly and added to the first token; attention is causal, so every later
  token sees it.
- GPT-2's attention is causal, so there is no [CLS] (``has_cls`` False): the
  instance embedding is the mean of the last layer's tokens (``llm_pool``
  "mean") or the last token ("last"), ``dim`` values.
- Weights come from a local Hugging Face folder (``backbone_weights``; nothing
  is ever downloaded) or, without one, from a random initialisation seeded by
  ``seed`` (then there is no cross-modal transfer). The token embedding
  (unused: the inputs are feature tokens) is dropped.
- The base is identified by ``base``: the SHA-256 of its tensors, where they
  came from, and its shape. It travels in the state dict (``get_extra_state``)
  and a load onto another base is refused with the expected hash.
- ``state_dict()`` leaves the frozen base out (a checkpoint holds the
  adapters, the trained parts and the record); ``load_state_dict`` takes the
  frozen tensors from the rebuilt base.
- ``copy.deepcopy`` shares the frozen base tensors (they never change), so a
  momentum copy (the ``s2`` objective) costs only the trainable part.

``transformers`` and ``peft`` (extra ``llm``) are imported when a backbone is
built, never by importing this module.
"""

import copy
import hashlib
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from s2gen.pretrain.backbones.frontends import build_frontend, embed_tokens
from s2gen.pretrain.config import RANDOM_BASE_NOTE, PretrainConfig

log = logging.getLogger(__name__)

INSTALL_HINT = "the gpt2 backbone needs transformers and peft: pip install 's2gen[llm]'"


def tensors_sha256(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """SHA-256 over (name, dtype, shape, bytes) of tensors, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(named, key=lambda item: item[0]):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy())
    return digest.hexdigest()


def _transformers():
    try:
        import peft  # noqa: F401  (checked here so the error names both packages)
        import transformers
    except ImportError as exc:
        raise ImportError(f"{INSTALL_HINT} ({exc})") from exc
    return transformers


def _dropouts(p: float) -> dict[str, float]:
    return {"resid_pdrop": p, "embd_pdrop": p, "attn_pdrop": p}


def load_base(cfg: PretrainConfig) -> tuple[nn.Module, dict]:
    """The first ``llm_layers`` blocks of GPT-2, float32, and the base record.

    From ``cfg.backbone_weights`` (a local Hugging Face GPT-2 folder, read with
    ``local_files_only``) or, when it is "", at random from ``cfg.seed`` with
    ``d_model``, ``n_heads``, ``d_ff`` and positions for ``cfg.n_patches``
    tokens (the caller's torch RNG is left as it was).

    Returns
    -------
    (model, record): a ``transformers.GPT2Model`` and {"source": "weights" or
    "random", "sha256", "seed" (random bases), "layers", "hidden", "heads", "positions"}.
    """
    transformers = _transformers()
    if cfg.backbone_weights:
        folder = Path(cfg.backbone_weights)
        if not (folder / "config.json").is_file():
            raise ValueError(
                f"backbone_weights={cfg.backbone_weights!r} is not a Hugging Face model folder "
                "(no config.json); give a local GPT-2 folder (config.json and model.safetensors)"
            )
        config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
        if config.model_type != "gpt2":
            raise ValueError(
                f"backbone_weights={cfg.backbone_weights!r} holds a {config.model_type!r} model; "
                "the gpt2 backbone needs a GPT-2 folder"
            )
        if cfg.llm_layers > config.n_layer:
            raise ValueError(
                f"llm_layers={cfg.llm_layers} exceeds the {config.n_layer} blocks of "
                f"{cfg.backbone_weights}; use at most {config.n_layer}"
            )
        config.update({"n_layer": cfg.llm_layers, **_dropouts(cfg.dropout)})
        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()  # the blocks past llm_layers are not loaded
        try:
            model = transformers.GPT2Model.from_pretrained(
                folder, config=config, local_files_only=True
            ).float()
        finally:
            transformers.logging.set_verbosity(verbosity)
        source = {"source": "weights"}
    else:
        config = transformers.GPT2Config(
            vocab_size=1,
            bos_token_id=0,
            eos_token_id=0,
            n_positions=cfg.n_patches,
            n_embd=cfg.d_model,
            n_head=cfg.n_heads,
            n_inner=cfg.d_ff,
            n_layer=cfg.llm_layers,
            **_dropouts(cfg.dropout),
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            model = transformers.GPT2Model(config)
        source = {"source": "random", "seed": cfg.seed}
    # the token embedding is unused (the inputs are feature tokens): dropped
    model.wte = nn.Embedding(1, config.n_embd, _weight=torch.zeros(1, config.n_embd))
    record = {
        **source,
        "sha256": tensors_sha256(
            (n, p) for n, p in model.named_parameters() if not n.startswith("wte.")
        ),
        "layers": config.n_layer,
        "hidden": config.n_embd,
        "heads": config.n_head,
        "positions": config.n_positions,
    }
    return model, record


def add_lora(model: nn.Module, cfg: PretrainConfig) -> nn.Module:
    """Inject LoRA adapters into ``model`` (in place) and set what trains.

    Everything is frozen but the adapters (``lora_`` parameters), and the layer
    norms with ``train_norms``, the position embeddings with ``train_pos``.
    """
    from peft import LoraConfig, inject_adapter_in_model

    lora = LoraConfig(
        r=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.lora_target_names),
        fan_in_fan_out=True,  # GPT-2's projections are Conv1D (weight stored as in x out)
        bias="none",
    )
    model = inject_adapter_in_model(lora, model)
    for name, p in model.named_parameters():
        norm = name.startswith("ln_f.") or ".ln_" in name
        p.requires_grad_(
            "lora_" in name
            or (cfg.train_norms and norm)
            or (cfg.train_pos and name.startswith("wpe."))
        )
    return model


def _drop_frozen(module, state_dict, prefix, local_metadata) -> None:
    """state_dict post-hook: the frozen base is rebuilt, never saved."""
    for name in module.frozen:
        state_dict.pop(prefix + name, None)


def _take_frozen(module, state_dict, prefix, *args) -> None:
    """load_state_dict pre-hook: the frozen base comes from the rebuilt model."""
    for name in module.frozen:
        state_dict.setdefault(prefix + name, module.get_parameter(name))


class GPT2Backbone(nn.Module):
    """Series (B, L) -> token states (B, L / token_points, dim) of a LoRA-adapted GPT-2.

    Parameters
    ----------
    frontend : series (B, L) -> tokens (B, N, dim).
    llm : a ``transformers.GPT2Model`` with LoRA injected (``add_lora``).
    base : its record (``load_base``).
    pool : "mean" or "last" (``PretrainConfig.llm_pool``).
    scale_token : add a linear map of ``stats`` to the first token.

    Attributes
    ----------
    frozen : names (relative to this module) of the frozen base parameters.
    """

    has_cls = False

    def __init__(
        self, frontend: nn.Module, llm: nn.Module, base: dict, pool: str, scale_token: bool
    ) -> None:
        super().__init__()
        self.dim = self.embed_dim = base["hidden"]
        self.token_points, self.max_tokens = frontend.token_points, base["positions"]
        self.base, self.pool_mode = dict(base), pool
        self.frontend = frontend
        self.mask_token = nn.Parameter(torch.randn(1, 1, self.dim) * 0.02)
        self.stats_proj = nn.Linear(2, self.dim) if scale_token else None
        self.llm = llm
        self.frozen = tuple(n for n, p in self.named_parameters() if not p.requires_grad)
        self.register_state_dict_post_hook(_drop_frozen)
        self.register_load_state_dict_pre_hook(_take_frozen)

    def n_tokens(self, length: int) -> int:
        """Tokens of a series of ``length`` points (a multiple of ``token_points``)."""
        return length // self.token_points

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, stats: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, L) float, mask (B, N) bool (True = masked), stats (B, 2) -> (B, N, dim)."""
        h = embed_tokens(self.frontend, x, mask, self.mask_token)  # (B, N, dim)
        if h.shape[1] > self.max_tokens:
            raise ValueError(
                f"{h.shape[1]} tokens exceed the {self.max_tokens} positions of the language "
                "model; resize the series to the window"
            )
        if self.stats_proj is not None and stats is not None:
            first = h[:, :1] + self.stats_proj(stats).unsqueeze(1).to(h.dtype)  # (B, 1, dim)
            h = torch.cat([first, h[:, 1:]], dim=1)
        return self.llm(inputs_embeds=h).last_hidden_state  # (B, N, dim)

    def token_states(self, hidden: torch.Tensor) -> torch.Tensor:
        """Token states (B, N, dim): all of ``forward``'s output (there is no [CLS])."""
        return hidden

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """Instance embedding (B, dim): mean of the tokens, or the last token."""
        return hidden[:, -1] if self.pool_mode == "last" else hidden.mean(dim=1)

    def get_extra_state(self) -> dict:
        return {"base": dict(self.base)}

    def set_extra_state(self, state: dict) -> None:
        """Refuse weights trained on another base (they would be silently wrong)."""
        saved = state["base"]
        if saved["sha256"] != self.base["sha256"]:
            raise ValueError(base_mismatch(saved, self.base))

    def __deepcopy__(self, memo: dict) -> "GPT2Backbone":
        """A copy that shares the frozen base tensors and copies everything else."""
        for name in self.frozen:
            p = self.get_parameter(name)
            memo[id(p)] = p
        clone = self.__class__.__new__(self.__class__)
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            clone.__dict__[key] = copy.deepcopy(value, memo)
        return clone

    def _lora_layers(self) -> Iterator[nn.Module]:
        from peft.tuners.lora import LoraLayer

        return (m for m in self.llm.modules() if isinstance(m, LoraLayer))

    @contextmanager
    def merged(self):
        """Inference with each adapter folded into its base weight, W + (alpha / r) B A.

        The base weights are restored bit for bit on exit. A momentum copy
        shares them: do not run one inside the block.
        """
        layers = list(self._lora_layers())
        saved = [layer.get_base_layer().weight.detach().clone() for layer in layers]
        for layer in layers:
            layer.merge()
        try:
            yield self
        finally:
            with torch.no_grad():
                for layer, weight in zip(layers, saved, strict=True):
                    layer.unmerge()
                    layer.get_base_layer().weight.copy_(weight)


def base_mismatch(saved: dict, rebuilt: dict) -> str:
    """The message for weights trained on base ``saved`` loaded onto base ``rebuilt``."""
    if saved.get("source") == "random":
        fix = (
            f"it was a random base from seed {saved.get('seed')}: rebuild it without "
            "--backbone-weights, with the same seed and sizes"
        )
    else:
        fix = "pass --backbone-weights with the GPT-2 folder it was trained on"
    return (
        f"the checkpoint's gpt2 base has sha256 {saved['sha256']} ({saved.get('source')}, "
        f"{saved.get('layers')} blocks of width {saved.get('hidden')}), the rebuilt one "
        f"{rebuilt['sha256']} ({rebuilt.get('source')}): {fix}"
    )


def build_gpt2(cfg: PretrainConfig) -> GPT2Backbone:
    """The ``gpt2`` backbone of a config (base from ``backbone_weights`` or ``seed``)."""
    llm, base = load_base(cfg)
    if base["source"] == "random":
        log.info(RANDOM_BASE_NOTE)
    if cfg.n_patches > base["positions"]:
        raise ValueError(
            f"window={cfg.window} gives {cfg.n_patches} tokens but the language model has "
            f"{base['positions']} positions; use a shorter window or a larger patch"
        )
    frontend = build_frontend(cfg, base["hidden"])
    return GPT2Backbone(frontend, add_lora(llm, cfg), base, cfg.llm_pool, cfg.scale_token)
