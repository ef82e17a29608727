"""Click options of the series encoder's architecture: pretrain, finetune, evaluate and embed.

``@architecture_options`` adds every option of ``OPTIONS`` to a command and
hands the command one ``architecture`` argument: the ``PretrainConfig``
fields the user set (unset flags left out). ``pretrain`` puts them into its
config; ``finetune`` and ``evaluate`` build their ``--random-init`` encoder
with them; a checkpoint carries its own architecture, and
``check_architecture`` refuses a flag that contradicts it. A backbone that
needs flags of its own adds them to ``OPTIONS`` here, once. Torch-free.
"""

import functools

import click

from s2gen.pretrain.config import BACKBONE_NAMES, PretrainConfig

OPTIONS = (
    click.option(
        "--backbone",
        type=click.Choice(BACKBONE_NAMES),
        default=None,
        help="Series encoder: s2 (patch transformer with [CLS]) or dilated-cnn (TS2Vec's "
        "encoder) [pretrain: the objective's; else a checkpoint's, or s2].",
    ),
)
NAMES = ("backbone",)  # the PretrainConfig field of each option, in OPTIONS order


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
        if getattr(cfg, name) != value
    ]
    if wrong:
        raise click.BadParameter(
            f"{checkpoint} was pretrained with another architecture: {'; '.join(wrong)}; "
            "drop the flag (a checkpoint carries its own architecture)"
        )
