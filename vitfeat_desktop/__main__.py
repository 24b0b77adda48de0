"""``python -m vitfeat_desktop``: the desktop app, or the CLI when a subcommand is given.

``vitfeat-desktop [FOLDER|IMAGE] [--model ID|PATH] [--fp32]`` opens the window; ``vitfeat-desktop --self-test``
checks the installation; ``python -m vitfeat_desktop index ...`` (any ``vitfeat`` subcommand) runs the headless CLI.

The app's argument parser lives here, not in ``gui.app``, so ``--help`` and ``--version`` answer without importing
Qt or ONNX Runtime (fast, and they work even where the Qt libraries cannot load). This module is the top of the
start-up chain: it runs the self-test or the CLI itself and hands ``gui.app.run_app`` parsed options; nothing
imports it back.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

#: Wall-clock time when this module was imported: the start-up timer's fallback for "process start" where the
#: OS cannot tell (passed to ``gui.app.run_app``).
IMPORTED_AT = time.time()

HELP_EPILOG = ("Opening an image file opens its folder as a library and finds photos similar to it. "
               "The headless command-line tool is `vitfeat` (indexing, search, duplicates, models; "
               "`vitfeat --help`); its subcommands also work here, e.g. `vitfeat-desktop index FOLDER`.")


def build_parser() -> argparse.ArgumentParser:
    """The desktop app's own options (the CLI's are in ``vitfeat_desktop.cli``)."""
    from vitfeat_desktop.version import __version__

    parser = argparse.ArgumentParser(
        prog="vitfeat-desktop",
        description="Browse photos by visual similarity and find duplicates with Vision Transformer features.",
        epilog=HELP_EPILOG)
    parser.add_argument("folder", nargs="?", metavar="FOLDER|IMAGE",
                        help="a photo folder to open (indexed in the background), or an image file: its folder "
                             "opens and the photos most similar to it are shown")
    parser.add_argument("--model", metavar="ID|PATH", default=None, help="hub id or model folder to use")
    parser.add_argument("--fp32", action="store_true", help="run the full-precision model instead of int8")
    parser.add_argument("--self-test", action="store_true", help="check the installation and exit")
    parser.add_argument("--version", action="version", version=f"vitfeat-desktop {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--self-test" in args:  # before any Qt import: the self-test times and checks the imports itself
        from vitfeat_desktop.selftest import main as selftest_main

        return int(selftest_main(args) or 0)
    if args and args[0] in _cli_commands():
        from vitfeat_desktop.cli import main as cli_main

        return cli_main(args)
    if any(a in ("--version", "-h", "--help") for a in args):
        try:
            build_parser().parse_args(args)  # prints and exits
        except SystemExit as exc:
            return int(exc.code or 0) if isinstance(exc.code, int) else 2
        return 0
    try:
        from vitfeat_desktop.gui.app import run_app
    except ImportError as exc:
        print(f"vitfeat-desktop: the desktop app is not available: {exc}", file=sys.stderr)
        return 1
    options = build_parser().parse_args(args)
    path = Path(options.folder).expanduser() if options.folder else None
    if path is not None and not path.is_dir():
        from vitfeat_desktop.core.images import is_image_path

        if not path.exists():
            print(f"vitfeat-desktop: {options.folder} does not exist", file=sys.stderr)
            return 2
        if not (path.is_file() and is_image_path(path)):
            print(f"vitfeat-desktop: {options.folder} is not a folder or a supported image file", file=sys.stderr)
            return 2
    return run_app(path, options.model, quantized=not options.fp32, started_at=IMPORTED_AT)


def _cli_commands() -> set[str]:
    from vitfeat_desktop.cli import build_parser as cli_parser

    parser = cli_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


if __name__ == "__main__":
    sys.exit(main())
