"""``python -m s2gen`` runs the command line."""

from s2gen.cli import main

main()
