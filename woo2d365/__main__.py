"""``python -m woo2d365`` runs the command line."""

from woo2d365.cli import main

main()
