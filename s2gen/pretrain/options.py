"""Click options of the series encoder's architecture: pretrain, finetune, evaluate and embed.

``@architecture_options`` adds every option of ``OPTIONS`` to a command and
hands the command one ``architecture`` argument: the ``PretrainConfig``
fields the user set (unset flags left out). ``pretrain`` puts them into its
config; ``finetune`` and ``evaluate`` build their ``--random-init`` encoder
with them; a checkpoint carries its own architecture, and
``check_architecture`` refuses a flag that contradicts it. ``--backbone-weights``
is the exception: with a checkpoint it names the local folder a ``gpt2`` base is
rebuilt from (``backbone_weights``). A backbone that needs flags of its own adds
them to ``OPTIONS`` here, once. Torch-free.
"""

import functools

import click

from s2gen.pretrain.config import (
    BACKBONE_NAMES,
    FRONTEND_NAMES,
    LLM_FIELDS,
    LLM_POOLS,
    LORA_TARGETS,
    RANDOM_BASE_NOTE,
    PretrainConfig,
)

OPTIONS = (
    click.option(
        "--backbone",
        type=click.Choice(BACKBONE_NAMES),
        default=None,
        help="Series encoder: s2 (patch transformer with [CLS]), dilated-cnn (TS2Vec's "
        "encoder) or gpt2 (a frozen GPT-2 with LoRA adapters) [pretrain: the objective's; "
        "else a checkpoint's, or s2].",
    ),
    click.option(
        "--frontend",
        type=click.Choice(FRONTEND_NAMES),
        default=None,
        help="How a series becomes tokens (s2, gpt2): linear patches, or multi-scale strided "
        "convolutions then latent patching (SeisMoLLM) [patch].",
    ),
    click.option(
        "--llm-layers",
        type=click.IntRange(1, 128),
        default=None,
        help="gpt2: use the first K blocks of the language model [6].",
    ),
    click.option(
        "--llm-pool",
        type=click.Choice(LLM_POOLS),
        default=None,
        help="gpt2: series embedding = mean of the last layer's tokens, or the last token [mean].",
    ),
    click.option(
        "--lora-rank", type=click.IntRange(min=1), default=None, help="gpt2: LoRA rank r [8]."
    ),
    click.option(
        "--lora-alpha",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="gpt2: LoRA alpha (the update is scaled by alpha / r) [16].",
    ),
    click.option(
        "--lora-dropout",
        type=click.FloatRange(0, 0.9),
        default=None,
        help="gpt2: LoRA dropout [0.05].",
    ),
    click.option(
        "--lora-targets",
        default=None,
        help=f"gpt2: comma-separated projections to adapt, of {', '.join(LORA_TARGETS)} [c_attn].",
    ),
    click.option(
        "--train-norms", is_flag=True, default=None, help="gpt2: also train the layer norms."
    ),
    click.option(
        "--train-pos", is_flag=True, default=None, help="gpt2: also train the position embeddings."
    ),
    click.option(
        "--backbone-weights",
        type=click.Path(exists=True, file_okay=False),
        default=None,
        help="gpt2: a local Hugging Face GPT-2 folder (config.json + weights), never "
        "downloaded; with a checkpoint, the folder its base is rebuilt from (its hash must "
        "match) [default: random base weights, or the folder recorded in the checkpoint].",
    ),
)
# the PretrainConfig field of each option, in OPTIONS order
NAMES = ("backbone", "frontend", *LLM_FIELDS)
NOT_SHAPE = ("backbone_weights",)  # where a checkpoint's base comes from, not its shape


def architecture_options(command):
    """Add ``OPTIONS`` to a click command; it receives their values as ``architecture``."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        values = {name: kwargs.pop(name) for name in NAMES}
        architecture = {name: value for name, value in values.items() if value is not None}
        return command(*args, architecture=architecture, **kwargs)

    for option in reversed(OPTIONS):
        wrapper = option(wrapper)
    return wrapper


def check_architecture(cfg: PretrainConfig, architecture: dict, checkpoint: str) -> None:
    """Refuse flags that contradict the architecture saved in ``checkpoint`` (``cfg``)."""
    wrong = [
        f"--{name.replace('_', '-')} {value} (it has {getattr(cfg, name)})"
        for name, value in architecture.items()
        if name not in NOT_SHAPE and _canonical(name, getattr(cfg, name)) != _canonical(name, value)
    ]
    if wrong:
        raise click.BadParameter(
            f"{checkpoint} was pretrained with another architecture: {'; '.join(wrong)}; "
            "drop the flag (a checkpoint carries its own architecture)"
        )


def _canonical(name: str, value):
    """A setting as the encoder reads it: ``lora_targets`` as its names ("c_attn, c_proj")."""
    if name == "lora_targets":
        return tuple(t.strip() for t in str(value).split(",") if t.strip())
    return value


def note_random_base(architecture: dict) -> None:
    """Say once (stderr) that a gpt2 encoder without --backbone-weights has a random base."""
    if architecture.get("backbone") == "gpt2" and not architecture.get("backbone_weights"):
        click.echo(RANDOM_BASE_NOTE, err=True)
