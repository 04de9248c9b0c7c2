"""The axis-aligned partition of an image that Partition SHAP recurses over.

shap's ``maskers.Image`` splits an image's pixels and channels into a binary
tree, halving the widest axis (rows before columns on a tie, channels only
once a region is one pixel) and numbering nodes in order of decreasing size;
``PartitionExplainer`` runs the Owen recursion over it. shap builds the tree
and its leaf sets with numba, whose first call in a process compiles for
seconds (about 4.5 s for a 64 × 64 × 3 image on the development machine).
This module builds the same tree, node for node, with `heapq` and numpy in a
few tens of milliseconds, so the first Partition SHAP of a session starts at
once. The tests compare it with shap's.
"""

from __future__ import annotations

import functools
import heapq

import numpy as np

__all__ = ["image_tree"]


@functools.lru_cache(maxsize=4)
def image_tree(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """shap's partition of an image of `shape` `(H, W, C)`.

    Returns
    -------
    tuple[np.ndarray, np.ndarray, np.ndarray]
        The clustering `(L − 1, 4)` float64 of its ``L = H·W·C`` leaves
        (left child, right child, distance — always 0 here — and size; node
        ``L + i`` is row ``i``, the root the last), and in CSR form the leaves
        under each of the ``2L − 1`` nodes: ``indptr`` `(2L,)` and
        ``indices``. The arrays are shared between calls: do not write to
        them.
    """
    clustering = _clustering(tuple(int(d) for d in shape))
    indptr, indices = _leaf_sets(clustering)
    for array in (clustering, indptr, indices):
        array.flags.writeable = False
    return clustering, indptr, indices


Region = tuple[int, int, int, int, int, int]


def _clustering(shape: tuple[int, ...]) -> np.ndarray:
    """The clustering rows, in shap's order (see `image_tree`)."""
    height, width, channels = shape
    n_leaves = height * width * channels
    clustering = np.zeros((n_leaves - 1, 4))
    # (−size, region, parent row, is the left child): the largest region is
    # split next, ties going to the lexicographically smallest entry
    queue: list[tuple[int, int, int, int, int, int, int, int, bool]] = [
        (0, 0, height, 0, width, 0, channels, -1, False)
    ]
    row = n_leaves - 2  # internal nodes count down to 0, then leaves go below
    while queue:
        _, x0, x1, y0, y1, z0, z1, parent, is_left = heapq.heappop(queue)
        if parent >= 0:
            clustering[parent, 0 if is_left else 1] = row + n_leaves
        if (x1 - x0, y1 - y0, z1 - z0) != (1, 1, 1):
            left, right = _halves((x0, x1, y0, y1, z0, z1))
            for half, on_left in ((left, True), (right, False)):
                size = (half[1] - half[0]) * (half[3] - half[2]) * (half[5] - half[4])
                heapq.heappush(queue, (-size, *half, row, on_left))
        row -= 1
    # sizes: children come before their parent, so one pass in row order
    for i in range(n_leaves - 1):
        children = (int(clustering[i, 0]), int(clustering[i, 1]))
        clustering[i, 3] = sum(
            1.0 if c < n_leaves else clustering[c - n_leaves, 3] for c in children
        )
    return clustering


def _halves(region: Region) -> tuple[Region, Region]:
    """`region` ``(x0, x1, y0, y1, z0, z1)`` cut in two across its widest
    spatial axis (rows on a tie), or across channels once it is one pixel."""
    x0, x1, y0, y1, z0, z1 = region
    if x1 - x0 >= y1 - y0 and x1 - x0 > 1:
        mid = x0 + (x1 - x0) // 2
        return (x0, mid, y0, y1, z0, z1), (mid, x1, y0, y1, z0, z1)
    if y1 - y0 > 1:
        mid = y0 + (y1 - y0) // 2
        return (x0, x1, y0, mid, z0, z1), (x0, x1, mid, y1, z0, z1)
    mid = z0 + (z1 - z0) // 2
    return (x0, x1, y0, y1, z0, mid), (x0, x1, y0, y1, mid, z1)


def _leaf_sets(clustering: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``indptr`` `(2L,)` and ``indices``: the leaves under each node, the
    left child's before the right child's. Children have smaller numbers
    than their parent, so one pass in node order builds every set."""
    n_leaves = len(clustering) + 1
    sets: list[np.ndarray] = list(np.arange(n_leaves)[:, None])
    children = clustering[:, :2].astype(np.int64)
    for left, right in children:
        sets.append(np.concatenate([sets[left], sets[right]]))
    counts = np.fromiter((len(s) for s in sets), np.int64, len(sets))
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return indptr, np.concatenate(sets)
