"""The ``secfepas`` console script.

Each subcommand lives in its own module with a ``register(subparsers)``
function. Those modules import only the standard library at top level, so
``secfepas --help`` works with no extras installed; heavy imports happen
inside the command handlers.
"""
