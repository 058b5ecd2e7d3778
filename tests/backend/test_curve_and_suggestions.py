"""The curve config (a TimeSeries beside the video) and "label me" suggestions: parsing, regions, the anchor reader."""

from __future__ import annotations

import numpy as np
import pytest
from label_studio_sdk.label_interface import LabelInterface

from mtclar.model.errors import ConfigError, LabelConfigError
from mtclar.model.fewshot import FrameLabels
from mtclar.settings import Settings
from mtclar_backend.curve import COLUMNS, MAX_POINTS, CurveSpec, CurveWriter, build_curve, placeholder_curve
from mtclar_backend.label_configs import VIDEO, VIDEO_CURVE
from mtclar_backend.ls_format import (
    SUGGEST_LABEL,
    annotation_spans,
    check_prediction,
    parse_label_config,
    suggestion_regions,
    timeline_region,
    video_prediction,
)
from mtclar_backend.payload import ResultItem
from mtclar_backend.segments import Segment

SETUP = parse_label_config(VIDEO_CURVE)


def items(result):
    return [ResultItem.model_validate(item) for item in result]


def spans(result, setup=SETUP):
    return annotation_spans(setup, items(result), "annotation", 10_000)


def test_the_curve_config_parses_into_a_curve_and_a_suggestion_label():
    assert (SETUP.mode, SETUP.label, SETUP.suggest_label, SETUP.timeline) == ("video", "VA", SUGGEST_LABEL, "segment")
    assert SETUP.curve == CurveSpec("curve", "curve", COLUMNS)
    plain = parse_label_config(VIDEO)
    assert plain.suggest_label is None and plain.curve is None
    # a time series of the project's own (no curve column) is left alone
    own = VIDEO_CURVE
    for column in COLUMNS:
        own = own.replace(f'column="{column}"', f'column="ecg_{column}"')
    assert parse_label_config(own).curve is None
    # "label me" listed first does not become the V/A label
    first = VIDEO.replace('<Label value="VA"/>', '<Label value="label me"/><Label value="VA"/>')
    assert (parse_label_config(first).label, parse_label_config(first).suggest_label) == ("VA", SUGGEST_LABEL)


@pytest.mark.parametrize("change, message", [
    (('valueType="json"', 'valueType="url"'), 'needs valueType="json"'),
    (('valueType="json" ', ''), 'needs valueType="json"'),
    (('timeColumn="time"', 'timeColumn="t"'), 'needs timeColumn="time"'),
    (('sync="va" fixedScale', 'sync="other" fixedScale'), "same sync"),
    (('timelineHeight="120" sync="va"', 'timelineHeight="120"'), "same sync"),
    (('column="arousal_high"', 'column="heart_rate"'), "'heart_rate'"),
    (('value="$curve"', 'value="curve"'), 'needs value="$field"'),
    (('<Label value="VA"/>', ''), "no <Label> for V/A segments"),
])
def test_curve_configs_that_would_not_work_say_why(change, message):
    config = VIDEO_CURVE.replace(*change)
    assert config != VIDEO_CURVE
    with pytest.raises(LabelConfigError, match=message.replace("$", r"\$").replace("(", r"\(")):
        parse_label_config(config)


def test_suggestion_regions_are_short_clipped_and_valid_in_the_config():
    regions = suggestion_regions(SETUP, [70, 0, 35], n_frames=72, half_width=6)
    assert [r["value"]["ranges"] for r in regions] == [[{"start": 1, "end": 7}], [{"start": 30, "end": 42}],
                                                       [{"start": 65, "end": 72}]]
    assert {tuple(r["value"]["timelinelabels"]) for r in regions} == {(SUGGEST_LABEL,)}
    assert all(r["origin"] == "prediction" and r["from_name"] == "segment" for r in regions)
    prediction = video_prediction(SETUP, [Segment(3, 71, 0.1234, -0.5, 0.8)], [Segment(0, 2, -0.3, 0.1, 1.0)], 0.8,
                                  "m.r1", regions)
    assert check_prediction(SETUP, prediction, n_frames=72) == []
    core = {"result": [{k: v for k, v in r.items() if k in ("id", "from_name", "to_name", "type", "value")}
                       for r in prediction["result"]], "score": prediction["score"]}
    assert LabelInterface(VIDEO_CURVE).validate_prediction(core)
    assert suggestion_regions(parse_label_config(VIDEO), [5], 72, 6) == []  # no "label me" label: no marks


def test_suggestion_marks_are_never_anchors():
    regions = suggestion_regions(SETUP, [10, 40], n_frames=72, half_width=3)
    va = timeline_region(SETUP, "human-0", 1, 3, -0.3, 0.1) + timeline_region(SETUP, "p", 20, 30, 0.5, 0.5)
    accepted = regions + va
    assert [(s.start, s.end) for s in spans(accepted)] == [(0, 2), (19, 29)]
    # a person moved a mark and even gave it numbers: still a suggestion, not a label
    moved = [{**regions[0], "origin": "manual", "value": {"ranges": [{"start": 50, "end": 52}],
                                                          "timelinelabels": [SUGGEST_LABEL]}},
             {"id": regions[0]["id"], "from_name": "valence", "to_name": "video", "type": "number", "origin": "manual",
              "value": {"ranges": [{"start": 50, "end": 52}], "number": 0.9}},
             {"id": regions[0]["id"], "from_name": "arousal", "to_name": "video", "type": "number", "origin": "manual",
              "value": {"ranges": [{"start": 50, "end": 52}], "number": 0.9}}]
    assert spans(moved) == []
    assert [(s.start, s.end, s.valence) for s in spans(moved + va)] == [(0, 2, -0.3), (19, 29, 0.5)]
    # in a config without the suggestion label, a region labelled "VA" is an anchor as before
    assert len(spans(va, parse_label_config(VIDEO))) == 2


def labels(n: int, no_face: tuple[int, ...] = (), interval: bool = True) -> FrameLabels:
    valence = np.linspace(-1, 1, n)
    arousal = np.linspace(0.5, -0.5, n)
    source = np.array(["predicted"] * n, dtype=object)
    source[list(no_face)] = "no_face"
    for array in (valence, arousal):
        array[list(no_face)] = np.nan
    band = {f"{d}_{side}": (v + sign * 0.1 if interval else None)
            for d, v in (("valence", valence), ("arousal", arousal)) for side, sign in (("low", -1), ("high", 1))}
    return FrameLabels(valence, arousal, np.zeros(n), np.ones(n), source, source.copy(), **band)


def test_build_curve_leaves_out_frames_without_a_face_and_maps_to_the_tag_scale():
    spec = CurveSpec("curve", "curve", COLUMNS)
    time_s = np.arange(5) / 25 + 10.0  # seconds from the first frame, whatever the clock's origin
    curve = build_curve(spec, labels(5, no_face=(2,)), time_s, lambda x: round(x * 10), lambda x: round(x, 2))
    assert curve["time"] == [0.0, 0.04, 0.12, 0.16]
    assert curve["valence"] == [-10, -5, 5, 10]
    assert curve["valence_low"] == [-11, -6, 4, 9] and curve["valence_high"] == [-9, -4, 6, 11]
    assert curve["arousal"] == [0.5, 0.25, -0.25, -0.5]
    assert set(curve) == {"time", *COLUMNS}
    only = build_curve(CurveSpec("c", "c", ("arousal",)), labels(5, interval=False), time_s, float, float)
    assert set(only) == {"time", "arousal"}
    no_band = build_curve(spec, labels(5, interval=False), time_s, float, float)
    assert no_band["valence_low"] == no_band["valence"] == no_band["valence_high"]  # no interval: the value
    assert build_curve(spec, labels(3, no_face=(0, 1)), time_s[:3], float, float) is None


def test_a_long_curve_is_thinned_evenly():
    n = 3 * MAX_POINTS + 7
    curve = build_curve(CurveSpec("c", "c", ("valence",)), labels(n, interval=False), np.arange(n) / 30, float, float)
    assert len(curve["time"]) == MAX_POINTS and curve["time"][0] == 0 and curve["time"][-1] == round((n - 1) / 30, 4)
    assert np.all(np.diff(curve["time"]) > 0)


def test_placeholder_curve_and_a_writer_without_label_studio():
    flat = placeholder_curve(("valence", "arousal"), 2.4)
    assert flat == {"time": [0.0, 2.4], "valence": [0.0, 0.0], "arousal": [0.0, 0.0]}
    assert CurveWriter(None).submit(1, "curve", flat) is False  # no API key: logged, nothing queued


def test_suggest_k_setting():
    assert Settings().suggest_k == 3
    assert Settings.from_env({"MTCLAR_SUGGEST_K": "0"}).suggest_k == 0
    for bad in ("-1", "51", "x"):
        with pytest.raises(ConfigError, match="MTCLAR_SUGGEST_K"):
            Settings.from_env({"MTCLAR_SUGGEST_K": bad})


SINGLE_FACE = {"id": 9, "data": {"video": "/data/local-files/?d=videos/single_face.mp4", "fps": 30}}
ANCHORS = {"id": 200, "result": timeline_region(SETUP, "a", 1, 3, -0.3, 0.1) +
           timeline_region(SETUP, "b", 60, 62, 0.4, 0.3)}


@pytest.mark.slow
@pytest.mark.parametrize("k", [3, 0])
def test_predictions_in_the_curve_config_mark_k_frames_to_label(tmp_path, shared_dir, k):
    """The real model on single_face.mp4 (72 frames): K "label me" marks away from the anchors, the task score,
    a valid prediction; with no Label Studio API the curve is computed but not written."""
    from mtclar_backend.app import create_app
    from mtclar_backend.runtime import Runtime

    runtime = Runtime(Settings(model_dir=tmp_path / "model", cache_dir=tmp_path / "cache",
                               media_roots=(shared_dir / "data",), suggest_k=k))
    client = create_app(runtime).test_client()
    response = client.post("/predict", json={"tasks": [{**SINGLE_FACE, "annotations": [ANCHORS]}], "project": 3,
                                             "label_config": VIDEO_CURVE})
    assert response.status_code == 200, response.get_json()
    prediction = response.get_json()["results"][0]
    assert check_prediction(SETUP, prediction, n_frames=72) == []
    assert 0 < prediction["score"] < 1
    marks = [r for r in prediction["result"] if r["value"].get("timelinelabels") == [SUGGEST_LABEL]]
    assert len(marks) == k
    centres = [(r["value"]["ranges"][0]["start"] + r["value"]["ranges"][0]["end"]) / 2 for r in marks]
    assert all(6 <= c <= 56 or c >= 66 for c in centres), centres  # not on the labelled frames 1-3, 60-62
    # accepting the prediction unchanged adds no anchor, and neither do the marks when a person touches them
    touched = [{**r, "origin": "manual"} if r in marks else r for r in prediction["result"]]
    assert sorted((s.start, s.end) for s in spans(touched)) == sorted(
        (s.start, s.end) for s in spans([r for r in touched if r not in marks]))
