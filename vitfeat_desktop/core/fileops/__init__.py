"""File operations on the user's photos: trash, quarantine, move, copy, with a journal and undo.

``operations`` is the entry point (:func:`~vitfeat_desktop.core.fileops.operations.apply_actions`, ``undo``,
``recover``); it writes every step to a ``journal`` (signed, fsync'd) under ``locks``, sends files to the
``trash``, never touches ``references`` folders and shares the ``disk`` helpers (durable renames, path
checks); ``errors`` holds what the user is told when something is refused.
"""
