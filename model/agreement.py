"""Agreement between annotators on valence and arousal: CCC, ICC and Krippendorff's alpha, per video and pooled.

Units are frames; a frame counts when at least two raters labelled it. ICC is ICC(A,1) in McGraw & Wong's
naming (Shrout & Fleiss' ICC(2,1): two-way random effects, absolute agreement, single rater), on the frames
every rater of the table labelled. Alpha is Krippendorff's alpha with the interval metric over every pairable
frame, in closed form. CCC is Lin's concordance, averaged over the pairs of raters on the frames each pair shares.

Labels are piecewise constant (a timeline segment gives every frame it covers one value), so a rater's labels
are *runs* and the table's units are the stretches of frames on which no rater's value changes, each weighted
by its length: every score equals the one over single frames (tests compare with pingouin and ``krippendorff``
on the expanded frames), while time and memory follow the number of segments, never a frame number.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from .metrics import DIMENSIONS

log = logging.getLogger(__name__)
ICC_FORM = "ICC(A,1)"  # = ICC(2,1): two-way random effects, absolute agreement, single rater
MAX_CELLS = 4_000_000  # raters x units of one table (float64: 32 MB); a larger table is not scored
MIN_UNITS = 3


@dataclass(frozen=True)
class Runs:
    """One rater's labels: frames ``[start[k], stop[k])`` carry ``values[k]`` = (valence, arousal); sorted, disjoint."""

    start: np.ndarray  # (K,) int64
    stop: np.ndarray  # (K,) int64
    values: np.ndarray  # (K, 2)

    @property
    def frames(self) -> int:
        return int((self.stop - self.start).sum())

    @property
    def end(self) -> int:
        """One past the last labelled frame (0 when empty)."""
        return int(self.stop.max()) if len(self.stop) else 0

    def shifted(self, offset: int) -> Runs:
        return Runs(self.start + offset, self.stop + offset, self.values)


def runs_from_spans(spans: Iterable[tuple[int, int, float, float]]) -> Runs:
    """Inclusive spans ``(first, last, valence, arousal)``, possibly overlapping -> runs; where spans overlap, their
    mean (as anchors are). Costs the number of spans, not their lengths."""
    spans = [s for s in spans if s[0] <= s[1]]
    if not spans:
        return Runs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 2)))
    first, last, values = (np.array([s[0] for s in spans], np.int64), np.array([s[1] for s in spans], np.int64),
                           np.array([(s[2], s[3]) for s in spans], float))
    bounds = np.unique(np.concatenate([first, last + 1]))
    lo, hi = np.searchsorted(bounds, first), np.searchsorted(bounds, last + 1)
    sums, counts = np.zeros((len(bounds), 2)), np.zeros(len(bounds))
    np.add.at(sums, lo, values)
    np.add.at(sums, hi, -values)
    np.add.at(counts, lo, 1)
    np.add.at(counts, hi, -1)
    sums, counts = np.cumsum(sums, axis=0)[:-1], np.cumsum(counts)[:-1]
    covered = counts > 0.5
    start, stop, means = bounds[:-1][covered], bounds[1:][covered], sums[covered] / counts[covered, None]
    same = (start[1:] == stop[:-1]) & (means[1:] == means[:-1]).all(axis=1)  # touching runs of equal values
    first_of, last_of = np.r_[True, ~same], np.r_[~same, True]
    return Runs(start[first_of], stop[last_of], means[first_of])


def runs_from_frames(ratings: Mapping[int, tuple[float, float]]) -> Runs:
    """frame -> (valence, arousal) -> runs (consecutive frames with the same values merged)."""
    return runs_from_spans((f, f, v, a) for f, (v, a) in ratings.items())


Ratings = Runs | Mapping[int, tuple[float, float]]  # one rater's labels: runs, or frame -> (valence, arousal)


def as_runs(ratings: Ratings) -> Runs:
    return ratings if isinstance(ratings, Runs) else runs_from_frames(ratings)


@dataclass(frozen=True)
class RatingTable:
    """Ratings of one dimension: ``values[r, u]`` is rater ``raters[r]`` on unit ``u`` (NaN: not rated), a unit
    standing for ``weights[u]`` frames (all ones: one unit per frame)."""

    raters: tuple[str, ...]
    values: np.ndarray  # (R, U)
    weights: np.ndarray | None = None  # (U,)

    @property
    def w(self) -> np.ndarray:
        return np.ones(self.values.shape[1]) if self.weights is None else np.asarray(self.weights, float)

    @property
    def complete(self) -> np.ndarray:
        return np.isfinite(self.values).all(axis=0)


def weighted_ccc(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Lin's CCC with population moments, unit ``i`` counted ``w[i]`` times."""
    mx, my = np.average(x, weights=w), np.average(y, weights=w)
    covariance = np.average((x - mx) * (y - my), weights=w)
    denominator = np.average((x - mx) ** 2, weights=w) + np.average((y - my) ** 2, weights=w) + (mx - my) ** 2
    return 1.0 if denominator == 0 else float(2 * covariance / denominator)


def mean_pairwise_ccc(table: RatingTable) -> float:
    """Lin's CCC averaged over rater pairs, each on the frames both rated (pairs with fewer than MIN_UNITS skip)."""
    scores, w = [], table.w
    for i, j in itertools.combinations(range(len(table.raters)), 2):
        both = np.isfinite(table.values[i]) & np.isfinite(table.values[j])
        if w[both].sum() >= MIN_UNITS:
            scores.append(weighted_ccc(table.values[i, both], table.values[j, both], w[both]))
    return float(np.mean(scores)) if scores else float("nan")


def icc(table: RatingTable) -> float:
    """ICC(A,1) from the two-way ANOVA mean squares over the frames every rater rated (NaN with fewer than
    MIN_UNITS frames, or no variance at all)."""
    complete = table.complete
    y, w = table.values[:, complete].T, table.w[complete]  # (units, raters)
    n, k = w.sum(), len(table.raters)
    if k < 2 or n < MIN_UNITS or np.ptp(y) == 0:
        return float("nan")
    grand = (w[:, None] * y).sum() / (n * k)
    rows, cols = y.mean(axis=1), (w[:, None] * y).sum(axis=0) / n
    ss_rows = k * (w * (rows - grand) ** 2).sum()
    ss_cols = n * ((cols - grand) ** 2).sum()
    ss_error = (w[:, None] * (y - grand) ** 2).sum() - ss_rows - ss_cols
    ms_rows, ms_cols, ms_error = ss_rows / (n - 1), ss_cols / (k - 1), ss_error / ((n - 1) * (k - 1))
    return float((ms_rows - ms_error) / (ms_rows + (k - 1) * ms_error + k * (ms_cols - ms_error) / n))


def interval_alpha(table: RatingTable) -> float:
    """Krippendorff's alpha (interval metric) over the frames rated by at least two raters, exactly:
    D_o = sum_u 1/(m_u-1) sum_{i!=j in u} (v_i-v_j)^2 / n and D_e = (2 n sum v^2 - 2 (sum v)^2) / (n (n-1))."""
    finite = np.isfinite(table.values)
    m = finite.sum(axis=0)
    pairable = m >= 2
    values, m, w = np.where(finite, table.values, 0.0)[:, pairable], m[pairable], table.w[pairable]
    if w.sum() < MIN_UNITS or np.ptp(table.values[:, pairable][finite[:, pairable]]) == 0:
        return float("nan")
    s1, s2 = values.sum(axis=0), (values ** 2).sum(axis=0)
    n = (w * m).sum()
    observed = (w * 2 * (m * s2 - s1 ** 2) / (m - 1)).sum() / n
    total1, total2 = (w * s1).sum(), (w * s2).sum()
    expected = (2 * n * total2 - 2 * total1 ** 2) / (n * (n - 1))
    return float(1 - observed / expected)


@dataclass(frozen=True)
class Agreement:
    raters: tuple[str, ...]
    units: int  # frames labelled by at least two raters
    complete_units: int  # frames labelled by every rater (ICC's units)
    scores: dict  # {"valence": {"ccc", "icc", "alpha"}, "arousal": {...}}

    def to_dict(self) -> dict:
        def clean(value: float | int) -> float | int | None:
            return None if isinstance(value, float) and not math.isfinite(value) else value

        return {"raters": list(self.raters), "frames": self.units, "frames_all_raters": self.complete_units,
                "icc_form": ICC_FORM,
                **{dim: {k: clean(v) for k, v in s.items()} for dim, s in self.scores.items()}}


def tables(by_rater: Mapping[str, Ratings],
           max_cells: int = MAX_CELLS) -> tuple[RatingTable, RatingTable] | None:
    """Valence and arousal tables over the stretches of frames at least two raters labelled (None: no such frame,
    or more than ``max_cells`` raters x stretches)."""
    runs = {rater: as_runs(ratings) for rater, ratings in by_rater.items()}
    raters = tuple(sorted(r for r, found in runs.items() if found.frames))
    if len(raters) < 2:
        return None
    bounds = np.unique(np.concatenate([np.concatenate([runs[r].start, runs[r].stop]) for r in raters]))
    low = bounds[:-1]
    if len(raters) * len(low) > max_cells:
        log.warning("agreement of %d raters over %d stretches of frames is not computed (over %d cells)",
                    len(raters), len(low), max_cells)
        return None
    values = np.full((2, len(raters), len(low)), np.nan)
    for r, rater in enumerate(raters):
        found = runs[rater]
        k = np.searchsorted(found.start, low, side="right") - 1
        inside = (k >= 0) & (low < found.stop[np.maximum(k, 0)])
        values[:, r, inside] = found.values[k[inside]].T
    keep = np.isfinite(values[0]).sum(axis=0) >= 2
    if not keep.any():
        return None
    weights = np.diff(bounds)[keep].astype(float)
    return RatingTable(raters, values[0][:, keep], weights), RatingTable(raters, values[1][:, keep], weights)


def agreement(by_rater: Mapping[str, Ratings], max_cells: int = MAX_CELLS) -> Agreement | None:
    """Agreement of the raters of one video (rater -> runs or frame -> (v, a)); None when no frame has two
    ratings (or the table is past ``max_cells``)."""
    found = tables(by_rater, max_cells)
    if found is None:
        return None
    scores = {dim: {"ccc": mean_pairwise_ccc(table), "icc": icc(table), "alpha": interval_alpha(table)}
              for dim, table in zip(DIMENSIONS, found, strict=True)}
    first = found[0]
    return Agreement(first.raters, int(first.w.sum()), int(first.w[first.complete].sum()), scores)


def pooled_agreement(videos: Mapping[str, Mapping[str, Ratings]], max_cells: int = MAX_CELLS) -> Agreement | None:
    """Every video's frames as units of one table (raters matched by name across videos)."""
    merged: dict[str, list[Runs]] = {}
    offset = 0
    for video in sorted(videos):
        runs = {rater: as_runs(ratings) for rater, ratings in videos[video].items()}
        for rater, found in runs.items():
            merged.setdefault(rater, []).append(found.shifted(offset))
        offset += max((found.end for found in runs.values()), default=0)
    joined = {rater: Runs(np.concatenate([p.start for p in parts]), np.concatenate([p.stop for p in parts]),
                          np.concatenate([p.values for p in parts])) for rater, parts in merged.items()}
    return agreement(joined, max_cells)


def per_video_and_pooled(videos: Mapping[str, Mapping[str, Ratings]]) -> dict:
    """``{"videos": {video: agreement}, "pooled": agreement | None}`` as plain JSON (videos without two raters
    on a common frame are left out)."""
    runs = {video: {rater: as_runs(r) for rater, r in by_rater.items()} for video, by_rater in videos.items()}
    per_video = {video: agreement(by_rater) for video, by_rater in sorted(runs.items())}
    pooled = pooled_agreement(runs)
    return {"videos": {v: a.to_dict() for v, a in per_video.items() if a is not None},
            "pooled": pooled.to_dict() if pooled is not None else None}
