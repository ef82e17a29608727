"""Click options of the ``gpt2`` backbone and the front end, shared by the commands.

``llm_options`` adds ``--frontend``, ``--llm-layers``, ``--llm-pool``,
``--lora-rank``, ``--lora-alpha``, ``--lora-dropout``, ``--lora-targets``,
``--train-norms``, ``--train-pos`` and ``--backbone-weights`` to a command; the
command takes them as ``**llm`` and passes ``llm_overrides(llm)`` (the ones
given) on to ``PretrainConfig``. Torch-free, like the CLI modules.
"""

import click

from s2gen.pretrain.config import FRONTEND_NAMES, LLM_POOLS, LORA_TARGETS

LLM_OPTIONS = (
    "frontend",
    "llm_layers",
    "llm_pool",
    "lora_rank",
    "lora_alpha",
    "lora_dropout",
    "lora_targets",
    "train_norms",
    "train_pos",
    "backbone_weights",
)


def backbone_weights_option(command):
    """``--backbone-weights DIR``: the local GPT-2 folder of a ``gpt2`` backbone."""
    return click.option(
        "--backbone-weights",
        type=click.Path(exists=True, file_okay=False),
        default=None,
        help="gpt2 backbone: a local Hugging Face GPT-2 folder (config.json + weights), never "
        "downloaded; with a checkpoint, the folder its base is rebuilt from (its hash must "
        "match) [default: random base weights, or the folder recorded in the checkpoint].",
    )(command)


def llm_options(command):
    """Add the front-end and ``gpt2`` backbone options (see the module notes)."""
    options = [
        click.option(
            "--frontend",
            type=click.Choice(FRONTEND_NAMES),
            help="How a series becomes tokens: linear patches, or multi-scale strided "
            "convolutions then latent patching (SeisMoLLM) [preset: patch].",
        ),
        click.option(
            "--llm-layers",
            type=click.IntRange(1, 128),
            help="gpt2: use the first K blocks of the language model [6].",
        ),
        click.option(
            "--llm-pool",
            type=click.Choice(LLM_POOLS),
            help="gpt2: series embedding = mean of the last layer's tokens, or the last "
            "token [mean].",
        ),
        click.option("--lora-rank", type=click.IntRange(min=1), help="gpt2: LoRA rank r [8]."),
        click.option(
            "--lora-alpha",
            type=click.FloatRange(min=0, min_open=True),
            help="gpt2: LoRA alpha (the update is scaled by alpha / r) [16].",
        ),
        click.option(
            "--lora-dropout", type=click.FloatRange(0, 0.9), help="gpt2: LoRA dropout [0.05]."
        ),
        click.option(
            "--lora-targets",
            help=f"gpt2: comma-separated projections to adapt, of {', '.join(LORA_TARGETS)} "
            "[c_attn].",
        ),
        click.option(
            "--train-norms", is_flag=True, default=None, help="gpt2: also train the layer norms."
        ),
        click.option(
            "--train-pos",
            is_flag=True,
            default=None,
            help="gpt2: also train the position embeddings.",
        ),
        backbone_weights_option,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def llm_overrides(values: dict) -> dict:
    """The ``PretrainConfig`` settings of the options that were given (None = not given)."""
    unknown = set(values) - set(LLM_OPTIONS)
    if unknown:
        raise TypeError(f"not llm options: {sorted(unknown)}")
    return {name: value for name, value in values.items() if value is not None}
