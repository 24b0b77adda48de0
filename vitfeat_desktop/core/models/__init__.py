"""Model folders: the layout, the local cache, the known encoders, downloads from the hub."""
