"""The installed bundle's self-test (``vitfeat-desktop --self-test``) and the fixtures it shares with the tests.

``runner`` runs the checks and is the command-line entry; ``checks`` (native parts, model, library) and
``window`` (the main window, ``--startup``) are the checks; ``context`` is what they share; ``fixtures`` makes the
pictures (``synthetic_photo``, ``write_linear_dng``) and ``tinyvit`` the tiny ONNX ViT that stand in for a user's
photos and model. ``selftest.heic`` is the one picture that cannot be generated (the bundle's libheif decodes
only).

``main`` is importable from the package itself because three entry points start the self-test by that name
(``vitfeat_desktop.__main__``, ``gui/app.py``, ``packaging/vitfeat_entry.py``); nothing in the package imports
the package back, so this one import closes no cycle.
"""

from vitfeat_desktop.selftest.runner import main

__all__ = ["main"]
