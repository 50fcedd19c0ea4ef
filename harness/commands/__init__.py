"""One module per ``zoo`` sub-command; each has ``add_parser(subparsers)`` and sets ``run``."""
