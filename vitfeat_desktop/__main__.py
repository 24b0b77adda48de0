"""``python -m vitfeat_desktop``: the desktop app, or the CLI when a subcommand is given.

``vitfeat-desktop [FOLDER] [--model ID|PATH] [--fp32]`` opens the window; ``vitfeat-desktop --self-test`` checks
the installation; ``python -m vitfeat_desktop index ...`` (any ``vitfeat`` subcommand) runs the headless CLI.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--self-test" in args:  # before any Qt import: the self-test times and checks the imports itself
        from vitfeat_desktop.selftest import main as selftest_main

        return int(selftest_main(args) or 0)
    if args and (args[0] in _cli_commands() or args[0] in ("--version", "-h", "--help")):
        from vitfeat_desktop.cli import main as cli_main

        return cli_main(args)
    try:
        from vitfeat_desktop.gui.app import run_app
    except ImportError as exc:
        print(f"vitfeat-desktop: the desktop app is not available: {exc}", file=sys.stderr)
        return 1
    return run_app(args)


def _cli_commands() -> set[str]:
    import argparse

    from vitfeat_desktop.cli import build_parser

    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


if __name__ == "__main__":
    sys.exit(main())
