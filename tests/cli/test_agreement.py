"""`mtclar agreement` offline (CSV per annotator) and its CSV parser (property-tested)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtclar.cli import main
from mtclar.model.errors import DataError
from mtclar.ratings_csv import parse_ratings, read_ratings

from .conftest import run_captured

FIRST = [0.1, 0.3, 0.2, 0.6, 0.5]
SECOND = [0.2, 0.3, 0.1, 0.7, 0.4]


def write(path, rows, header="frame,valence,arousal"):
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def test_two_csv_files_give_the_hand_computed_ccc(tmp_path):
    a = write(tmp_path / "ann.csv", [(f, v, -v) for f, v in enumerate(FIRST)] + [(9, 0.0, 0.0)])
    b = write(tmp_path / "bob.csv", [(f, v, -v) for f, v in enumerate(SECOND)])
    code, out, err = run_captured(["agreement", str(a), str(b), "--json"])
    assert code == 0, err
    result = json.loads(out)
    x, y = np.array(FIRST), np.array(SECOND)
    hand = 2 * np.mean((x - x.mean()) * (y - y.mean())) / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)
    video = result["videos"]["video"]  # frame 9 only ann labelled: not compared
    assert video["raters"] == ["ann", "bob"] and video["frames"] == 5
    assert video["valence"]["ccc"] == pytest.approx(hand) and video["arousal"]["ccc"] == pytest.approx(hand)


def test_csv_files_with_a_video_column_are_compared_per_video_and_pooled(tmp_path, capsys):
    header = "video,frame,valence,arousal"
    a = write(tmp_path / "ann.csv", [("clip", f, v, v / 2) for f, v in enumerate(FIRST)], header)
    b = write(tmp_path / "bob.csv", [("clip", f, v, v / 2) for f, v in enumerate(SECOND)], header)
    assert main(["agreement", str(a), str(b), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    x, y = np.array(FIRST), np.array(SECOND)
    hand = 2 * np.mean((x - x.mean()) * (y - y.mean())) / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)
    clip = result["videos"]["clip"]
    assert clip["raters"] == ["ann", "bob"] and clip["frames"] == 5
    assert clip["valence"]["ccc"] == pytest.approx(hand) and clip["arousal"]["ccc"] == pytest.approx(hand)
    assert result["pooled"]["valence"]["icc"] == pytest.approx(clip["valence"]["icc"])
    assert main(["agreement", str(a), str(b)]) == 0
    table = capsys.readouterr().out
    assert "clip" in table and "pooled" in table and f"{hand:.3f}" in table


def test_folders_are_one_annotator_each(tmp_path, capsys):
    for rater, values in (("pass1", FIRST), ("pass2", SECOND)):
        (tmp_path / rater).mkdir()
        write(tmp_path / rater / "clipA.csv", [(f, v, 0.1 * f) for f, v in enumerate(values)])
        write(tmp_path / rater / "clipB.csv", [(f, -v, 0.2) for f, v in enumerate(values)])
    assert main(["agreement", str(tmp_path / "pass1"), str(tmp_path / "pass2"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["videos"]) == {"clipA", "clipB"} and result["pooled"]["frames"] == 10
    assert result["videos"]["clipA"]["raters"] == ["pass1", "pass2"]


def test_bad_input_is_an_error_naming_the_row(tmp_path, capsys):
    a = write(tmp_path / "a.csv", [(0, 0.1, 0.1), (1, 1.5, 0.0)])
    b = write(tmp_path / "b.csv", [(0, 0.1, 0.1)])
    assert main(["agreement", str(a), str(b)]) == 2
    assert "a.csv row 3: valence = 1.5 is outside [-1, 1]" in capsys.readouterr().err
    assert main(["agreement", str(b)]) == 2
    assert "two or more CSV files" in capsys.readouterr().err
    assert main(["agreement", str(b), str(tmp_path / "missing.csv")]) == 2
    assert "no CSV file" in capsys.readouterr().err
    assert main(["agreement", "--project", "3"]) == 2  # no Label Studio configured
    assert "--ls-url" in capsys.readouterr().err


def test_unreachable_label_studio_is_a_one_line_error(capsys):
    code = main(["agreement", "--ls-url", "http://127.0.0.1:9", "--api-key", "k", "--project", "3"], environ={})
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot reach Label Studio at http://127.0.0.1:9" in err


labels = st.dictionaries(st.integers(0, 10**6), st.tuples(*[st.integers(-100, 100).map(lambda k: k / 100)] * 2),
                         max_size=30)


@given(st.dictionaries(st.text("abcxyz_-0123456789", min_size=1, max_size=8), labels, max_size=4))
@settings(max_examples=60, deadline=None)
def test_parse_ratings_round_trips(videos):
    lines = ["video,frame,valence,arousal"] + [f"{video},{frame},{v},{a}" for video, frames in videos.items()
                                               for frame, (v, a) in frames.items()]
    parsed = parse_ratings(lines, "x.csv")
    assert parsed == {video: frames for video, frames in videos.items() if frames}


@given(st.lists(st.text(max_size=40), max_size=8))
@settings(max_examples=200, deadline=None)
def test_parse_ratings_refuses_garbage_only_with_a_data_error(lines):
    try:
        parsed = parse_ratings(["frame,valence,arousal", *lines], "g.csv")
    except DataError as error:
        assert str(error).startswith("g.csv")
        return
    for frames in parsed.values():
        for frame, (v, a) in frames.items():
            assert frame >= 0 and -1 <= v <= 1 and -1 <= a <= 1


def test_read_ratings_refuses_a_video_split_over_two_files_of_one_folder(tmp_path):
    header = "video,frame,valence,arousal"
    write(tmp_path / "one.csv", [("clip", 0, 0.1, 0.1)], header)
    write(tmp_path / "two.csv", [("clip", 0, 0.2, 0.1)], header)
    with pytest.raises(DataError, match="also in another file"):
        read_ratings(tmp_path)
