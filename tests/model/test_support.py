import numpy as np
import pytest

from mtclar.model.support import diverse_start, every, first, parse_support, random


@pytest.mark.parametrize(("spec", "parsed"), [
    ("every:20", ("every", 20)), ("first:1", ("first", 1)), ("random:3", ("random", 3)),
    ("suggest:5", ("suggest", 5)), ("  every:7 ", ("every", 7)),
])
def test_parse_support(spec, parsed):
    assert parse_support(spec) == parsed


@pytest.mark.parametrize("spec", ["every:0", "first", "every:-1", "sometimes:3", "first:1.5", "", "first:k",
                                  "First:2", "first: 2"])
def test_parse_support_rejects(spec):
    with pytest.raises(ValueError) as error:
        parse_support(spec)
    assert str(error.value) == (f"bad support set {spec!r}: use every:N, first:K, random:K or suggest:K "
                                "(N, K >= 1)")


CANDIDATES = np.array([3, 5, 8, 10, 12, 15])


def test_every_first():
    assert every(CANDIDATES, 2).tolist() == [3, 8, 12]  # every 2nd candidate from the first
    assert every(CANDIDATES, 1).tolist() == CANDIDATES.tolist()
    assert every(CANDIDATES, 20).tolist() == [3]
    assert first(CANDIDATES, 2).tolist() == [3, 5]
    assert first(CANDIDATES, 10).tolist() == CANDIDATES.tolist()


def test_random_is_seeded_sorted_unique():
    candidates = np.arange(100, 200)
    a, b = random(candidates, 10, seed=1), random(candidates, 10, seed=1)
    assert a.tolist() == b.tolist()
    assert a.tolist() == sorted(set(a.tolist())) and len(a) == 10
    assert set(a.tolist()) <= set(candidates.tolist())
    assert random(candidates, 10, seed=2).tolist() != a.tolist()
    assert random(CANDIDATES, 50).tolist() == CANDIDATES.tolist()  # k > candidates: all of them


# ten frames half a second apart; row 3 has no face (NaN)
TIMES = np.arange(10) * 0.5
UNCERTAINTY = np.array([0.1, 0.9, 0.8, np.nan, 0.2, 0.7, 0.3, 0.95, 0.6, 0.5])


def test_diverse_start_by_hand():
    embeddings = np.array([[2.0, 0], [1, 0], [0.8, 0.6], [0, 1], [0, 3]])  # normalised inside
    times = np.arange(5.0)
    # features (e, t / 4): (1,0,0) (1,0,.25) (.8,.6,.5) (0,1,.75) (0,1,1); mean (.56,.52,.5)
    # distances to the mean: .845 .726 .253 .779 .891 -> start at row 2
    assert diverse_start(embeddings, np.arange(5), 1, times).tolist() == [2]
    # distances to row 2: .806 .680 0 .929 1.025 -> row 4; then min(d2, d4): .806 .680 0 .25 0 -> row 0
    assert diverse_start(embeddings, np.arange(5), 3, times).tolist() == [0, 2, 4]
    assert diverse_start(embeddings, np.arange(5), 9, times).tolist() == [0, 1, 2, 3, 4]


def test_diverse_start_maps_back_to_candidate_rows():
    embeddings = np.array([[1.0, 0], [np.nan, np.nan], [0, 1]])
    assert diverse_start(embeddings, np.array([0, 2]), 2, np.arange(3.0)).tolist() == [0, 2]
    assert diverse_start(embeddings, np.array([], dtype=int), 2, np.arange(3.0)).size == 0


def test_nothing_asked_nothing_given():
    embeddings = np.eye(3)
    assert diverse_start(embeddings, np.arange(3), 0, np.arange(3.0)).size == 0
