import numpy as np
import pytest

from mtclar.model.support import diverse_start, every, first, most_uncertain, parse_support, random, suggest


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


def test_most_uncertain_by_hand():
    # by uncertainty: 7 (0.95) 1 (0.9) 2 (0.8) 5 (0.7) 8 (0.6) 9 (0.5) ...; row 0 is already an anchor (t = 0)
    # 7: 3.5 s from 0 -> take; 1: 0.5 s from 0 -> too close; 2: 1 s from 0, 2.5 s from 7 -> take
    assert most_uncertain(UNCERTAINTY, np.arange(10), np.array([0]), 2, TIMES, 1.0).tolist() == [2, 7]
    # then 5: 1.5 s from 2, 1 s from 7 -> take; 8: 0.5 s from 7 -> no; 9: 1 s from 7 -> take
    assert most_uncertain(UNCERTAINTY, np.arange(10), np.array([0]), 4, TIMES, 1.0).tolist() == [2, 5, 7, 9]


def test_most_uncertain_without_gap_takes_the_largest():
    assert most_uncertain(UNCERTAINTY, np.arange(10), np.array([], dtype=int), 3, TIMES, 0.0).tolist() == [1, 2, 7]


def test_most_uncertain_never_picks_nan_or_chosen_rows():
    picked = most_uncertain(UNCERTAINTY, np.arange(10), np.array([0, 7]), 10, TIMES, 1.0)
    # 10 rows - 2 chosen - 1 NaN: at most 7 (the gap is halved until they all fit)
    assert picked.tolist() == [1, 2, 4, 5, 6, 8, 9]
    assert most_uncertain(np.full(4, np.nan), np.arange(4), np.array([], dtype=int), 2, TIMES[:4], 1.0).size == 0


def test_most_uncertain_only_looks_at_candidates():
    assert most_uncertain(UNCERTAINTY, np.array([0, 4, 6]), np.array([], dtype=int), 1, TIMES, 1.0).tolist() == [6]


def test_most_uncertain_halves_the_gap_when_needed():
    times = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    uncertainty = np.array([0.5, 0.4, 0.3, 0.2, 0.1])
    # gap 1: 0 (nothing chosen yet); gaps 0.5, 0.25: 3 is 0.3 s from 0 -> take; 0.125: nothing new;
    # 0.0625: 1 is 0.1 s from 0 -> take
    picked = most_uncertain(uncertainty, np.arange(5), np.array([], dtype=int), 3, times, 1.0)
    assert picked.tolist() == [0, 1, 3]


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


def test_suggest_adds_the_most_uncertain_frame_one_at_a_time():
    times = np.arange(10.0)
    calls = []

    def uncertainty_of(anchor_rows):
        calls.append(anchor_rows.tolist())
        return np.abs(times[:, None] - times[anchor_rows][None, :]).min(axis=1)  # seconds to the nearest anchor

    chosen = suggest(3, np.arange(10), times, np.zeros((10, 2)), uncertainty_of, start=np.array([0]), min_gap_s=1.0)
    # from [0]: 9 s away is row 9; from [0, 9]: rows 4 and 5 are both 4 s away -> the first, 4
    assert chosen.tolist() == [0, 4, 9]
    assert calls == [[0], [0, 9]]


def test_suggest_starts_diverse_and_returns_k_sorted_unique_rows():
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(20, 4))
    times = np.arange(20) / 10

    def uncertainty_of(anchor_rows):
        u = rng.random(20)
        u[[3, 4]] = np.nan  # no face
        return u

    chosen = suggest(6, np.arange(20), times, embeddings, uncertainty_of)
    assert len(chosen) == 6 and chosen.tolist() == sorted(set(chosen.tolist()))
    assert not {3, 4} & set(chosen.tolist())
    assert diverse_start(embeddings, np.arange(20), 1, times)[0] in chosen
    assert suggest(50, np.arange(5), times[:5], embeddings[:5], lambda rows: np.ones(20)).tolist() == [0, 1, 2, 3, 4]


def test_suggest_stops_when_nothing_is_left():
    chosen = suggest(4, np.arange(3), np.arange(3.0), np.eye(3), lambda rows: np.full(3, np.nan),
                     start=np.array([1]))
    assert chosen.tolist() == [1]


def test_nothing_asked_nothing_given():
    embeddings = np.eye(3)
    assert diverse_start(embeddings, np.arange(3), 0, np.arange(3.0)).size == 0
    assert most_uncertain(np.ones(3), np.arange(3), np.array([], dtype=int), 0, np.arange(3.0), 1.0).size == 0
