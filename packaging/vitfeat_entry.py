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

    return app_main(args)  # a folder or an image file ("Open with" on a photo): the app takes either


if __name__ == "__main__":
    multiprocessing.freeze_support()  # a worker process of a frozen app must not start the app again
    sys.exit(_main())
