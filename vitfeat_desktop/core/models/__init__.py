"""Models: what a ``model=`` value names, where its files live, and how they get there.

``layout`` (names, rules, ``resolve_spec``) is at the bottom and imports no sibling; ``registry`` (known
encoders), ``lock``, ``encoder`` (the ONNX Runtime check) and ``hf_cache`` build on it; ``http_client`` talks
to the hub, ``download`` fetches into the cache, ``cache`` lists/removes/imports, ``resolve`` ties them together
for ``pipeline()``; ``weights`` verifies a folder's graph against its manifest before it is run.
"""
