"""File operations on the user's photos: trash, quarantine, move, copy, with a journal and undo."""
