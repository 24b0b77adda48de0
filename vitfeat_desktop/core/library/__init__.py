"""A folder of photos indexed, by concern (each module imports only those listed before it):

``paths`` (where a library's files live, per-library sidecars), ``catalog`` (SQLite, the source of truth),
``ann`` (the hnswlib index, a rebuildable view), ``model_key`` (which model an index belongs to),
``vector_store`` (the one writer keeping catalogue and index consistent), ``walk`` (listing the folder),
``scanner`` (the incremental scan, writing through the store) and ``facade`` (``Library``, which composes them).
"""
