"""The ``pe-av`` subcommands, one module each.

Every module here defines ``NAME`` (the subcommand), ``HELP`` (one line for ``pe-av --help``),
``add_arguments(parser)``, ``validate(args, usage)`` (raise nothing; call ``usage.error`` for a usage
error, exit status 2) and ``run(args, argv) -> int`` (the exit status). :mod:`pe_av.cli` builds the
parser from :data:`COMMANDS` and turns exceptions into one-line errors, so a command module only
says what its command does.
"""

from __future__ import annotations

from . import classify, convert, demo, detect, embed, index, search

#: The subcommands in the order ``pe-av --help`` lists them.
COMMANDS = (demo, embed, convert, classify, detect, index, search)

__all__ = ["COMMANDS"]
