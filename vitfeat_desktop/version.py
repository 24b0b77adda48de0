"""The app's version, in a module of its own: any module can name it without importing the package's
``__init__``, which imports the core for :func:`vitfeat_desktop.pipeline` (the core importing the package back
would close an import cycle)."""

__version__ = "0.1.0"
