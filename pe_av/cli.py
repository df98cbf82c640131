"""The ``pe-av`` command line.

Each subcommand lives in its own module under :mod:`pe_av.commands` (arguments, usage checks, what
it runs); this module builds the parser from :data:`pe_av.commands.COMMANDS` and gives every command
the same error contract:

Errors are one line on stderr, ``pe-av <command>: error: <file or argument>: <message>``, with exit
status 1 (2 for usage errors, from argparse; 130 on Ctrl-C); ``PE_AV_DEBUG=1`` shows the traceback
instead.
"""

from __future__ import annotations

import argparse
import os
import sys

from .commands import COMMANDS
from .embed_parts import CliError
from .embed_run import OUT_FORMATS

__all__ = ["OUT_FORMATS", "main"]


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(prog="pe-av", description="PE-AV encoders: fast, faithful, drop-in.")
    sub = parser.add_subparsers(dest="command", required=True)
    usages = {}
    for command in COMMANDS:
        epilog = getattr(command, "EPILOG", None)
        usage = sub.add_parser(command.NAME, help=command.HELP, description=command.__doc__.splitlines()[0],
                               epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_arguments(usage)
        usages[command.NAME] = usage
    return parser, usages


def _error_line(exc: BaseException) -> str:
    """One line for an exception: ``<file or argument>: <message>``."""
    from .encode import describe_error

    return str(exc) if isinstance(exc, CliError) else describe_error(exc)


def main(argv: list[str] | None = None) -> int:
    """Run ``pe-av`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, usages = _parser()
    args = parser.parse_args(argv)
    command = next(c for c in COMMANDS if c.NAME == args.command)
    command.validate(args, usages[args.command])
    try:
        return command.run(args, argv)
    except KeyboardInterrupt:
        print(f"pe-av {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("PE_AV_DEBUG") == "1":
            raise
        print(f"pe-av {args.command}: error: {_error_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
