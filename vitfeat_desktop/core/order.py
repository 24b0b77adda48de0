"""Orders of a library's photos that are not a plain sort key: "visual similarity" puts look-alikes together.

Lives in the core (not the grid) because it is a computation on the library's vectors that any front end can
show: the GUI's "Sort: visual similarity", a script walking a folder in that order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vitfeat_desktop.core.errors import Cancelled
from vitfeat_desktop.core.progress import CancelFn

if TYPE_CHECKING:  # only the type: ordering vectors needs none of the library's machinery
    from vitfeat_desktop.core.library.facade import Library


def visual_order(file_ids: np.ndarray, vectors: np.ndarray, *, cancel: CancelFn | None = None) -> list[int]:
    """An order of ``file_ids`` in which look-alikes sit next to each other.

    A greedy nearest-neighbour chain over cosine similarity, started from the photo least like the others: each
    step appends the most similar photo not yet placed. Quadratic, one matrix-vector product per step, so
    20,000 photos take a few seconds on a worker and little memory. ``cancel`` is asked every 256 steps.
    """
    n = len(file_ids)
    if n == 0:
        return []
    v = vectors.astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True) + 1e-12
    placed = np.zeros(n, dtype=bool)
    mean = v.mean(axis=0)
    current = int(np.argmin(v @ mean))
    order = [current]
    placed[current] = True
    for step in range(n - 1):
        if cancel is not None and step % 256 == 255 and cancel():
            raise Cancelled()
        sims = v @ v[current]
        sims[placed] = -np.inf
        current = int(np.argmax(sims))
        placed[current] = True
        order.append(current)
    return [int(file_ids[i]) for i in order]


def library_visual_order(lib: Library, *, cancel: CancelFn | None = None) -> list[int]:
    """The file ids of ``lib``'s embedded photos (this model's vectors) in :func:`visual_order`."""
    ids, vectors = lib.vectors()
    return visual_order(np.asarray(ids), np.asarray(vectors), cancel=cancel)
