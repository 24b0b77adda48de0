"""The ``vitfeat`` command: headless, never imports Qt.

Each group of subcommands lives in its own module under ``vitfeat_desktop.commands`` and registers its
parsers here (the modules import the core only when a command runs, so ``vitfeat --help`` stays instant). A
:class:`VitfeatError` (or an ``OSError``) becomes one clear line on stderr and a non-zero exit code, never a
traceback; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from vitfeat_desktop.commands import dupes, extract, index, model
from vitfeat_desktop.core.errors import Cancelled, VitfeatError, one_line
from vitfeat_desktop.version import __version__

# Modules that define ``register(subparsers)``; each sets ``func`` on its parsers (in the order of --help).
COMMAND_MODULES = (extract, model, index, dupes)

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vitfeat",
        description="Vision Transformer features for your photos: extract, index, find similar and duplicates.",
    )
    parser.add_argument("--version", action="version", version=f"vitfeat {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("vitfeat: interrupted; everything finished so far is kept", file=sys.stderr)
        _end_promptly(EXIT_CANCELLED)
        return EXIT_CANCELLED
    except Cancelled:
        print("vitfeat: cancelled", file=sys.stderr)
        _end_promptly(EXIT_CANCELLED)
        return EXIT_CANCELLED
    except (VitfeatError, OSError, ValueError) as exc:
        if args.debug:
            raise
        print(f"vitfeat: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except MemoryError:
        if args.debug:
            raise
        print("vitfeat: error: not enough memory for this (fewer --threads or smaller inputs may help)",
              file=sys.stderr)
        return EXIT_ERROR


def _end_promptly(code: int, grace: float = 0.5) -> None:
    """After Ctrl-C, end the process within a second even if a worker thread cannot stop (an ONNX Runtime
    batch, a read on a stalled network share): by the time we get here the catalogue is committed and the
    index saved (``finally`` blocks and context managers ran on the way up), and an interpreter exit would wait
    for every non-daemon thread, forever if one is stuck."""
    import threading
    import time

    deadline = time.monotonic() + grace
    for thread in threading.enumerate():
        if thread is threading.current_thread() or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() and not t.daemon and t is not threading.current_thread() for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
