"""Entry point of the frozen bundle, shared by both executables (``vitfeat-desktop`` and ``vitfeat``).

Why one script: PyInstaller analyses it once and both executables share one folder of libraries. The name
the executable was started as picks the personality, like busybox: ``vitfeat`` is the headless CLI,
``vitfeat-desktop`` the app (which also takes CLI subcommands, see ``vitfeat_desktop.__main__``).

``--self-test`` is handled here for either name, so the installed bundle can always be checked, and from the
console executable on Windows, where the windowed one has no stdout.
"""

from __future__ import annotations

import multiprocessing
import os
import sys


def _invoked_as() -> str:
    """``vitfeat`` or ``vitfeat-desktop``: argv[0] first, so a symlink named ``vitfeat`` works too."""
    for candidate in (sys.argv[0] if sys.argv else "", sys.executable):
        name = os.path.splitext(os.path.basename(candidate))[0].lower()
        if name in ("vitfeat", "vitfeat-desktop"):
            return name
    return "vitfeat-desktop"


def _main() -> int:
    args = sys.argv[1:]
    if "--self-test" in args:
        from vitfeat_desktop.selftest import main as selftest_main

        return selftest_main([a for a in args if a != "--self-test"])
    if _invoked_as() == "vitfeat":
        from vitfeat_desktop.cli import main as cli_main

        return cli_main(args)
    from vitfeat_desktop.__main__ import main as app_main

    return app_main(_open_with_args(args))


def _open_with_args(args: list[str]) -> list[str]:
    """"Open with" on a photo passes the photo; the app opens folders, so open the photo's folder.

    The .desktop entry, the Windows registry and the macOS document types offer the app for image files as
    well as folders. Until the app itself takes a file (and selects it), its folder is the useful answer; any
    other argument is passed through unchanged.
    """
    if len(args) == 1 and not args[0].startswith("-") and os.path.isfile(args[0]):
        from vitfeat_desktop.core.images import is_image_path

        if is_image_path(args[0]):
            return [os.path.dirname(os.path.abspath(args[0]))]
    return args


if __name__ == "__main__":
    multiprocessing.freeze_support()  # a worker process of a frozen app must not start the app again
    sys.exit(_main())
