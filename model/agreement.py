"""Agreement between annotators on valence and arousal: CCC, ICC and Krippendorff's alpha, per video and pooled.

Units are frames; a frame counts when at least two raters labelled it. ICC is ICC(A,1) in McGraw & Wong's
naming (Shrout & Fleiss' ICC(2,1): two-way random effects, absolute agreement, single rater), from pingouin,
on the frames every rater of the table labelled. Alpha is Krippendorff's alpha with the interval metric,
from the ``krippendorff`` package, which takes missing ratings as they are. CCC is Lin's concordance
(``metrics.ccc``), averaged over the pairs of raters on the frames each pair shares.

The ``krippendorff`` package builds a (units, values, values) array; past ``ALPHA_MAX_CELLS`` cells alpha is
computed on every s-th unit (in time order) and ``alpha_step`` says which s.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .metrics import DIMENSIONS, ccc

Ratings = Mapping[int, tuple[float, float]]  # frame -> (valence, arousal)
ICC_FORM = "ICC(A,1)"  # = ICC(2,1): two-way random effects, absolute agreement, single rater
ALPHA_MAX_CELLS = 2_000_000  # units x values^2 of krippendorff's coincidence array (float64: 16 MB, a few copies)
MIN_UNITS = 3


@dataclass(frozen=True)
class RatingTable:
    """Ratings of one dimension: ``values[r, u]`` is rater ``raters[r]`` on unit ``u`` (NaN: not rated)."""

    raters: tuple[str, ...]
    values: np.ndarray  # (R, U)

    @property
    def complete(self) -> np.ndarray:
        return np.isfinite(self.values).all(axis=0)


def mean_pairwise_ccc(table: RatingTable) -> float:
    """Lin's CCC averaged over rater pairs, each on the units both rated (pairs with fewer than MIN_UNITS skip)."""
    scores = []
    for i, j in itertools.combinations(range(len(table.raters)), 2):
        both = np.isfinite(table.values[i]) & np.isfinite(table.values[j])
        if both.sum() >= MIN_UNITS:
            scores.append(ccc(table.values[i, both], table.values[j, both]))
    return float(np.mean(scores)) if scores else float("nan")


def icc(table: RatingTable) -> float:
    """ICC(A,1) over the units every rater rated (NaN with fewer than MIN_UNITS, or no variance at all)."""
    import pandas as pd
    import pingouin

    values = table.values[:, table.complete]
    if len(table.raters) < 2 or values.shape[1] < MIN_UNITS or np.ptp(values) == 0:
        return float("nan")
    rater, unit = np.indices(values.shape)
    long = pd.DataFrame({"unit": unit.ravel(), "rater": rater.ravel(), "rating": values.ravel()})
    with warnings.catch_warnings():  # its confidence interval divides by zero on perfect agreement
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # pandas deprecations inside pingouin
        result = pingouin.intraclass_corr(long, targets="unit", raters="rater", ratings="rating")
    row = result[result["Type"].isin([ICC_FORM, "ICC2"])]
    return float(row["ICC"].iloc[0])


def alpha_step(n_units: int, n_values: int, max_cells: int = ALPHA_MAX_CELLS) -> int:
    """The unit stride that keeps krippendorff's (units, values, values) array under ``max_cells``."""
    return max(1, math.ceil(n_units * n_values * n_values / max_cells))


def interval_alpha(table: RatingTable, max_cells: int = ALPHA_MAX_CELLS) -> tuple[float, int]:
    """Krippendorff's alpha (interval) over units rated by at least two raters, and the unit stride used."""
    import krippendorff

    pairable = np.isfinite(table.values).sum(axis=0) >= 2
    values = table.values[:, pairable]
    finite = values[np.isfinite(values)]
    domain = np.unique(finite)
    if values.shape[1] < MIN_UNITS or domain.size < 2:
        return float("nan"), 1
    step = alpha_step(values.shape[1], domain.size, max_cells)
    return float(krippendorff.alpha(reliability_data=values[:, ::step], value_domain=domain,
                                    level_of_measurement="interval")), step


@dataclass(frozen=True)
class Agreement:
    raters: tuple[str, ...]
    units: int  # frames labelled by at least two raters
    complete_units: int  # frames labelled by every rater (ICC's units)
    scores: dict  # {"valence": {"ccc", "icc", "alpha", "alpha_step"}, "arousal": {...}}

    def to_dict(self) -> dict:
        def clean(value: float | int) -> float | int | None:
            return None if isinstance(value, float) and not math.isfinite(value) else value

        return {"raters": list(self.raters), "frames": self.units, "frames_all_raters": self.complete_units,
                "icc_form": ICC_FORM,
                **{dim: {k: clean(v) for k, v in s.items()} for dim, s in self.scores.items()}}


def tables(by_rater: Mapping[str, Ratings]) -> tuple[RatingTable, RatingTable] | None:
    """Valence and arousal tables over the frames at least two raters labelled (None: no such frame)."""
    raters = tuple(sorted(r for r, ratings in by_rater.items() if ratings))
    if len(raters) < 2:
        return None
    counts: dict[int, int] = {}
    for rater in raters:
        for frame in by_rater[rater]:
            counts[frame] = counts.get(frame, 0) + 1
    units = sorted(f for f, c in counts.items() if c >= 2)
    if not units:
        return None
    index = {f: u for u, f in enumerate(units)}
    values = np.full((2, len(raters), len(units)), np.nan)
    for r, rater in enumerate(raters):
        for frame, va in by_rater[rater].items():
            if frame in index:
                values[:, r, index[frame]] = va
    return RatingTable(raters, values[0]), RatingTable(raters, values[1])


def agreement(by_rater: Mapping[str, Ratings], max_cells: int = ALPHA_MAX_CELLS) -> Agreement | None:
    """Agreement of the raters of one video (rater -> frame -> (v, a)); None when no frame has two ratings."""
    found = tables(by_rater)
    if found is None:
        return None
    scores = {}
    for dim, table in zip(DIMENSIONS, found, strict=True):
        alpha, step = interval_alpha(table, max_cells)
        scores[dim] = {"ccc": mean_pairwise_ccc(table), "icc": icc(table), "alpha": alpha, "alpha_step": step}
    return Agreement(found[0].raters, found[0].values.shape[1], int(found[0].complete.sum()), scores)


def pooled_agreement(videos: Mapping[str, Mapping[str, Ratings]],
                     max_cells: int = ALPHA_MAX_CELLS) -> Agreement | None:
    """Every video's frames as units of one table (raters matched by name across videos)."""
    merged: dict[str, dict[int, tuple[float, float]]] = {}
    offset = 0
    for video in sorted(videos):
        by_rater = videos[video]
        last = max((f for ratings in by_rater.values() for f in ratings), default=-1)
        for rater, ratings in by_rater.items():
            merged.setdefault(rater, {}).update({offset + f: va for f, va in ratings.items()})
        offset += last + 1
    return agreement(merged, max_cells)


def per_video_and_pooled(videos: Mapping[str, Mapping[str, Ratings]]) -> dict:
    """``{"videos": {video: agreement}, "pooled": agreement | None}`` as plain JSON (videos without two raters
    on a common frame are left out)."""
    per_video = {video: agreement(by_rater) for video, by_rater in sorted(videos.items())}
    pooled = pooled_agreement(videos)
    return {"videos": {v: a.to_dict() for v, a in per_video.items() if a is not None},
            "pooled": pooled.to_dict() if pooled is not None else None}
