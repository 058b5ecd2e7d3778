"""Similar / dissimilar pairs of face images, resampled every epoch.

By expression class (the paper): half the pairs similar (two *different* images of the same class),
half dissimilar (different classes); the first image's class is drawn uniformly over the classes, then
an image uniformly within it (class-balanced: rare classes are seen as often as common ones).

By valence/arousal, for data with V/A but no classes: a pair is similar when the Euclidean distance of
the two labels in the V/A plane is below ``VA_THRESHOLD`` = 0.2. Why 0.2: labels live in [-1, 1]^2,
whose diagonal is 2.8, and 0.2 is two steps of AFEW-VA's integer scale (V/A / 10); it keeps "similar"
to labels an annotator would hardly tell apart, while a clear change of expression (neutral to a mild
smile is about 0.3 to 0.5 in valence) is dissimilar. The first image is drawn uniformly over occupied
cells of a ``VA_CELL`` x ``VA_CELL`` grid of the V/A plane (the analogue of class balancing: the rare
high-arousal or negative corners are seen as often as the crowded neutral centre), then uniformly
within the cell.

A sample is an int array (P, 3): first index, second index, similar (0/1). Deltas are
``label(first) - label(second)``.
"""

from __future__ import annotations

import numpy as np

VA_THRESHOLD = 0.2
VA_CELL = 0.5


def balanced_flags(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) 0/1 with exactly n // 2 ones (and a coin flip for an odd one out), shuffled."""
    flags = np.zeros(n, dtype=np.int64)
    ones = n // 2 + (int(rng.integers(2)) if n % 2 else 0)
    flags[:ones] = 1
    return rng.permutation(flags)


def _other_member(members: np.ndarray, first_pos: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each position in ``members``, a uniformly drawn *other* position (members has >= 2 entries)."""
    offset = rng.integers(0, len(members) - 1, size=len(first_pos))
    return members[np.where(offset >= first_pos, offset + 1, offset)]


def sample_class_pairs(classes: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Class-balanced pairs over items with ``classes >= 0`` (others never drawn). (n, 3)."""
    classes = np.asarray(classes)
    labelled = np.unique(classes[classes >= 0])
    if labelled.size == 0:
        raise ValueError("no item has an expression class")
    members = {int(c): np.flatnonzero(classes == c) for c in labelled}
    with_two = np.array([c for c in labelled if len(members[int(c)]) >= 2])
    similar = balanced_flags(n, rng)
    if with_two.size == 0:
        similar[:] = 0  # no class has two images: only dissimilar pairs exist
    if labelled.size < 2:
        similar[:] = 1  # one class: only similar pairs exist
        if with_two.size == 0:
            raise ValueError("a single image of a single class: no pair can be made")
    out = np.empty((n, 3), dtype=np.int64)
    out[:, 2] = similar

    sim_rows = np.flatnonzero(similar == 1)
    first_class = rng.choice(with_two, size=len(sim_rows)) if len(sim_rows) else np.array([], dtype=int)
    for c in np.unique(first_class):
        rows = sim_rows[first_class == c]
        group = members[int(c)]
        pos = rng.integers(0, len(group), size=len(rows))
        out[rows, 0] = group[pos]
        out[rows, 1] = _other_member(group, pos, rng)

    dis_rows = np.flatnonzero(similar == 0)
    if len(dis_rows):
        first_pos = rng.integers(0, len(labelled), size=len(dis_rows))
        second_pos = _other_member(np.arange(len(labelled)), first_pos, rng)
        for rows, pos, column in ((dis_rows, first_pos, 0), (dis_rows, second_pos, 1)):
            chosen = labelled[pos]
            for c in np.unique(chosen):
                these = rows[chosen == c]
                out[these, column] = rng.choice(members[int(c)], size=len(these))
    return out


class _Grid:
    """Items bucketed by V/A cells of side ``cell``, for neighbour lookups within ``cell``."""

    def __init__(self, va: np.ndarray, cell: float):
        self.va, self.cell = va, cell
        keys = np.floor((va + 1) / cell).astype(np.int64)
        self.buckets: dict[tuple[int, int], np.ndarray] = {}
        order = np.lexsort((keys[:, 1], keys[:, 0]))
        sorted_keys = keys[order]
        change = np.flatnonzero(np.any(np.diff(sorted_keys, axis=0) != 0, axis=1)) + 1
        for chunk in np.split(order, change):
            if len(chunk):
                self.buckets[(int(keys[chunk[0], 0]), int(keys[chunk[0], 1]))] = chunk

    def near(self, i: int, radius: float) -> np.ndarray:
        """Items other than ``i`` closer than ``radius`` (<= cell) to item ``i``."""
        kx, ky = (int(k) for k in np.floor((self.va[i] + 1) / self.cell))
        candidates = [self.buckets[(x, y)] for x in (kx - 1, kx, kx + 1) for y in (ky - 1, ky, ky + 1)
                      if (x, y) in self.buckets]
        pool = np.concatenate(candidates)
        pool = pool[pool != i]
        return pool[np.linalg.norm(self.va[pool] - self.va[i], axis=1) < radius]


class VAPairSampler:
    """Pairs labelled similar by V/A distance < ``threshold``, 50/50, first image balanced over V/A cells.

    ``va``: (N, 2) in [-1, 1]; rows with NaN are never drawn. The neighbour structure is built once;
    ``sample`` is called every epoch.
    """

    def __init__(self, va: np.ndarray, threshold: float = VA_THRESHOLD, cell: float = VA_CELL):
        va = np.asarray(va, dtype=np.float64)
        self.valid = np.flatnonzero(np.isfinite(va).all(axis=1))
        if len(self.valid) < 2:
            raise ValueError("fewer than two items have valence and arousal: no pair can be made")
        self.threshold = threshold
        self.va = va[self.valid]
        self.neighbours = _Grid(self.va, threshold)
        cells = np.floor((self.va + 1) / cell).astype(np.int64)
        _, inverse = np.unique(cells, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        self.cells = [np.flatnonzero(inverse == k) for k in range(inverse.max() + 1)]
        self.has_near = np.array([self.neighbours.near(i, threshold).size > 0 for i in range(len(self.va))])
        self.near_cells = [members[self.has_near[members]] for members in self.cells]
        self.near_cells = [m for m in self.near_cells if m.size]

    def sample(self, n: int, rng: np.random.Generator, max_tries: int = 50) -> np.ndarray:
        similar = balanced_flags(n, rng)
        if not self.near_cells:
            similar[:] = 0
        out = np.empty((n, 3), dtype=np.int64)
        count = len(self.va)
        for row in range(n):
            if similar[row]:
                members = self.near_cells[int(rng.integers(len(self.near_cells)))]
                i = int(rng.choice(members))
                j = int(rng.choice(self.neighbours.near(i, self.threshold)))
            else:
                members = self.cells[int(rng.integers(len(self.cells)))]
                i = int(rng.choice(members))
                for _ in range(max_tries):  # the second image: uniform over the far ones (rejection first)
                    j = int(rng.integers(count - 1))
                    j += j >= i
                    if np.linalg.norm(self.va[j] - self.va[i]) >= self.threshold:
                        break
                else:
                    far = np.flatnonzero(np.linalg.norm(self.va - self.va[i], axis=1) >= self.threshold)
                    if far.size:
                        j = int(rng.choice(far))
            out[row] = self.valid[i], self.valid[j], int(np.linalg.norm(self.va[j] - self.va[i]) < self.threshold)
        return out


class ClassPairSampler:
    """``sample_class_pairs`` behind the same interface as ``VAPairSampler``."""

    def __init__(self, classes: np.ndarray):
        self.classes = np.asarray(classes)
        sample_class_pairs(self.classes, 2, np.random.default_rng(0))  # fail now if no pair can be made

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return sample_class_pairs(self.classes, n, rng)


def pair_targets(pairs: np.ndarray, va: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P, 2) deltas ``va[first] - va[second]`` and (P,) bool: both labels known."""
    delta = va[pairs[:, 0]] - va[pairs[:, 1]]
    known = np.isfinite(delta).all(axis=1)
    return np.where(known[:, None], delta, 0.0), known
