"""The Qt desktop app (PySide6): the window, its panels and the background jobs; the only package that imports Qt.

A regular package rather than a namespace one, so import-linter and grimp see its modules in the import graph
(tests/packaging/test_architecture.py)."""
