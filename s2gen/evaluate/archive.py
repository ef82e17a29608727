"""A local copy of the UCR/UEA classification archives (``--ucr-root DIR``).

A set is a ``NAME_TRAIN`` file with the suffix ``.tsv`` (the UCR 2018
archive, ``UCRArchive_2018/NAME/NAME_TRAIN.tsv``), ``.ts`` (the UEA/sktime
format, ``Multivariate_ts/NAME/NAME_TRAIN.ts``) or ``.txt`` (the older UCR
text files), next to its ``NAME_TEST`` file. Sets are searched in ``DIR``
itself, in its sub-folders and in theirs (two levels down), so ``DIR`` may
be the folder of one archive or a folder holding ``UCRArchive_2018/`` and
``Multivariate_ts/`` (or any other names). Nothing is downloaded.

A name found more than once is taken from the shallowest folder, then by
suffix (``.tsv``, ``.ts``, ``.txt``), then by path; the others are returned
as not used. With ``DIR = UCRArchive_2018`` this picks the original sets over
the copies in its ``Missing_value_and_variable_length_datasets_adjusted/``.
"""

from dataclasses import dataclass
from pathlib import Path

from s2gen.evaluate.datasets import CLASSIFICATION_SUFFIXES

ALL = "all"
DEPTH = 2  # folders below DIR searched for sets
TRAIN_SUFFIX = "_TRAIN"


@dataclass(frozen=True)
class Archive:
    """The sets under one root.

    Attributes
    ----------
    root : the folder searched.
    sets : name -> its NAME_TRAIN file, sorted by name (case-insensitive).
    not_used : name -> the other NAME_TRAIN files of a name found more than once.
    """

    root: Path
    sets: dict[str, Path]
    not_used: dict[str, list[Path]]


def _folders(root: Path) -> list[tuple[int, Path]]:
    """(depth, folder) for root and the folders up to DEPTH levels below it."""
    found, level = [(0, root)], [root]
    for depth in range(1, DEPTH + 1):
        level = sorted(child for folder in level for child in folder.iterdir() if child.is_dir())
        found.extend((depth, folder) for folder in level)
    return found


def find_sets(root: str | Path) -> Archive:
    """Every classification set under ``root`` (see the module docstring).

    Raises
    ------
    ValueError
        ``root`` is not a folder, or holds no set.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"ucr_root={str(root)!r} is not a folder")
    candidates: dict[str, list[tuple[int, int, str, Path]]] = {}
    for depth, folder in _folders(root):
        for file in folder.iterdir():
            suffix = file.suffix.lower()
            if suffix in CLASSIFICATION_SUFFIXES and file.stem.endswith(TRAIN_SUFFIX):
                name = file.stem[: -len(TRAIN_SUFFIX)]
                rank = CLASSIFICATION_SUFFIXES.index(suffix)
                candidates.setdefault(name, []).append((depth, rank, str(file), file))
    if not candidates:
        raise ValueError(
            f"no NAME_TRAIN.tsv, .ts or .txt file in {root} or the two folder levels below it; "
            "give the folder that holds UCRArchive_2018/ or Multivariate_ts/"
        )
    sets, not_used = {}, {}
    for name in sorted(candidates, key=lambda n: (n.lower(), n)):
        ordered = [entry[-1] for entry in sorted(candidates[name])]
        sets[name] = ordered[0]
        if len(ordered) > 1:
            not_used[name] = ordered[1:]
    return Archive(root, sets, not_used)


def resolve(archive: Archive, names: tuple[str, ...]) -> list[str]:
    """Paths of the NAME_TRAIN files for ``names`` (``("all",)``: every set).

    A name that is an existing path is kept as given; other names match the
    archive's set names, exactly or else ignoring case.

    Raises
    ------
    ValueError
        A name is not in the archive.
    """
    if tuple(name.lower() for name in names) == (ALL,):
        return [str(path) for path in archive.sets.values()]
    by_lower = {name.lower(): name for name in archive.sets}
    paths = []
    for name in names:
        if Path(name).exists():
            paths.append(name)
            continue
        key = name if name in archive.sets else by_lower.get(name.lower())
        if key is None:
            shown = ", ".join(list(archive.sets)[:8]) + (", ..." if len(archive.sets) > 8 else "")
            raise ValueError(
                f"dataset {name!r} is not under --ucr-root {archive.root} "
                f"({len(archive.sets)} sets found: {shown})"
            )
        paths.append(str(archive.sets[key]))
    return paths
