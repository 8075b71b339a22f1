"""Command-line interface. Every module in this package with a ``register(subparsers)`` is a command."""
