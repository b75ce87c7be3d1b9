"""`python -m eventstitch` is the `eventstitch` command."""

from eventstitch.cli.main import main

main()
