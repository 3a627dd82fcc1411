"""``python -m cairn`` runs the ``cairn`` command."""

from cairn.cli.main import main

main()
