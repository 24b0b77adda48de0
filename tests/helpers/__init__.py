"""Helpers shared by the tests in every folder (``tests/`` is on pytest's ``pythonpath``): where the repository
and the shared photos, scenes and model are (:mod:`helpers.photos`), and the Qt helpers that drive a window as a
person would (:mod:`helpers.qt`). Fixtures stay in the ``conftest.py`` files; these are plain functions."""
