"""The headless core: never imports Qt, usable from the CLI and from Python."""
