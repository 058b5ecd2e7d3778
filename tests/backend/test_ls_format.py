import pytest

from mtclar.model.errors import LabelConfigError
from mtclar_backend.anchors import Span, expand
from mtclar_backend.ls_format import (
    NumberSpec,
    annotation_spans,
    check_prediction,
    frame_prediction,
    parse_label_config,
    video_prediction,
)
from mtclar_backend.payload import ResultItem
from mtclar_backend.segments import Segment

VIDEO = """<View>
  <Video name="clip" value="$movie" frameRate="$fps" timelineHeight="120"/>
  <TimelineLabels name="spans" toName="clip"><Label value="Affect"/></TimelineLabels>
  <Number name="my_valence" toName="clip" perRegion="true" min="-1" max="1" step="0.01" slider="true"/>
  <Number name="Arousal" toName="clip" perRegion="true" min="-1" max="1" step="0.01" slider="true"/>
</View>"""
FRAME = """<View>
  <Image name="frame" value="$image"/>
  <Number name="valence" toName="frame" min="-10" max="10" step="1"/>
  <Number name="arousal" toName="frame" min="-10" max="10" step="1"/>
</View>"""


def items(result):
    return [ResultItem.model_validate(item) for item in result]


def video_anchors(setup, result, n_frames=1000):
    return expand([annotation_spans(setup, items(result), "annotation", 10_000)], n_frames)


def frame_values(setup, result):
    spans = annotation_spans(setup, items(result), "annotation", 10_000, frame=3)
    return (spans[0].valence, spans[0].arousal) if spans else None


def region(rid, start, end, v=None, a=None, setup_names=("spans", "my_valence", "Arousal")):
    span = {"ranges": [{"start": start, "end": end}]}
    items = [{"id": rid, "from_name": setup_names[0], "to_name": "clip", "type": "timelinelabels",
              "value": {**span, "timelinelabels": ["Affect"]}}]
    if v is not None:
        items.append({"id": rid, "from_name": setup_names[1], "to_name": "clip", "type": "number",
                      "value": {**span, "number": v}})
    if a is not None:
        items.append({"id": rid, "from_name": setup_names[2], "to_name": "clip", "type": "number",
                      "value": {**span, "number": a}})
    return items


def test_video_config_names_come_from_the_config():
    setup = parse_label_config(VIDEO)
    assert (setup.mode, setup.object_name, setup.value_key, setup.timeline, setup.label, setup.fps_key) == \
        ("video", "clip", "movie", "spans", "Affect", "fps")
    assert (setup.valence.name, setup.arousal.name) == ("my_valence", "Arousal")


def test_frame_config_and_scale_mapping():
    setup = parse_label_config(FRAME)
    assert setup.mode == "frame" and setup.value_key == "image"
    assert setup.valence.to_model(5) == pytest.approx(0.5)
    assert setup.valence.from_model(0.54) == 5  # rounded to the step grid of 1
    assert setup.valence.from_model(3.0) == 10  # clamped to max


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("", "empty"),
        ("<View><Text name='t' value='$t'/></View>", "<Video>"),
        (VIDEO.replace('name="Arousal"', 'name="energy"'), "'arousal'"),
        (VIDEO.replace('perRegion="true" min="-1" max="1" step="0.01" slider="true"/>\n  <Number name="Arousal"',
                       'min="-1" max="1" step="0.01"/>\n  <Number name="Arousal"'), "perRegion"),
        (VIDEO.replace('<TimelineLabels name="spans" toName="clip"><Label value="Affect"/></TimelineLabels>', ""),
         "TimelineLabels"),
        (VIDEO.replace('min="-1" max="1" step="0.01" slider="true"/>\n</View>', 'min="1" max="-1"/>\n</View>'),
         "min < max"),
        ("<View><Video", "unreadable"),
    ],
)
def test_unsupported_configs_say_what_is_missing(config, message):
    with pytest.raises(LabelConfigError, match=message):
        parse_label_config(config)


def test_regions_become_anchors_on_0_based_frames():
    setup = parse_label_config(VIDEO)
    result = region("a", 1, 3, 0.2, -0.5) + region("b", 10, 10, 0.9, 0.1) + region("c", 20, 22, v=0.3)
    anchors = video_anchors(setup, result, n_frames=12)
    assert anchors == {0: (0.2, -0.5), 1: (0.2, -0.5), 2: (0.2, -0.5), 9: (0.9, 0.1)}  # c lacks arousal


def test_number_spec_grid_and_checks():
    spec = NumberSpec("v", -1, 1, 0.01)
    assert spec.from_model(0.891) == 0.89 and spec.from_model(0.8951) == 0.9 and spec.from_model(-1.7) == -1
    assert spec.check(0.89) is None
    assert "step" in spec.check(0.891) and "outside" in spec.check(1.5) and "finite" in spec.check(float("nan"))


def test_video_prediction_validates_and_checks_catch_what_the_sdk_does_not():
    setup = parse_label_config(VIDEO)
    prediction = video_prediction(setup, [Segment(0, 9, 0.123, -0.456, 0.7), Segment(10, 20, 0.5, 0.5, 0.4)], [],
                                  0.55, "m1")
    assert all(item["origin"] == "prediction" for item in prediction["result"])
    assert check_prediction(setup, prediction, n_frames=21) == []
    numbers = [r for r in prediction["result"] if r["type"] == "number"]
    assert {r["value"]["number"] for r in numbers} == {0.12, -0.46, 0.5}
    ids = [r["id"] for r in prediction["result"]]
    assert ids.count("mtclar-0") == 3  # region + its two numbers share the id
    assert prediction["result"][0]["value"]["ranges"] == [{"start": 1, "end": 10}]
    assert check_prediction(setup, prediction, n_frames=15)  # range 11..21 beyond 15 frames
    numbers[0]["value"]["number"] = 0.891
    assert any("step" in p for p in check_prediction(setup, prediction, n_frames=21))


def test_frame_values_and_prediction():
    setup = parse_label_config(FRAME)
    result = frame_prediction(setup, 0.31, -0.77, 0.9, "m")["result"]
    assert [r["value"]["number"] for r in result] == [3, -8]
    result = [{**r, "origin": "manual"} for r in result]
    assert frame_values(setup, result) == (pytest.approx(0.3), pytest.approx(-0.8))
    assert frame_values(setup, result[:1]) is None


def test_predictions_accepted_unchanged_are_not_anchors():
    setup = parse_label_config(VIDEO)
    accepted = [{**item, "origin": "prediction"} for item in region("p", 1, 3, 0.5, 0.5)]
    changed = [{**item, "origin": "prediction-changed"} for item in region("q", 5, 5, 0.1, 0.2)]
    manual = region("m", 8, 8, -0.3, 0.0)
    assert video_anchors(setup, accepted + changed + manual) == {4: (0.1, 0.2), 7: (-0.3, 0.0)}
    frame = parse_label_config(FRAME)
    result = frame_prediction(frame, 0.3, 0.3, 1.0, "m")["result"]
    assert frame_values(frame, result) is None  # origin "prediction": the model's own values
    assert frame_values(frame, [{**r, "origin": "prediction-changed"} for r in result]) is not None


def test_human_segments_go_back_as_plain_regions():
    setup = parse_label_config(VIDEO)
    prediction = video_prediction(setup, [Segment(3, 9, 0.1, 0.1, 0.5)], [Segment(0, 2, -0.4, 0.2, 1.0)], 0.5, "m")
    human = [item for item in prediction["result"] if item["id"] == "human-0"]
    assert len(human) == 3 and not any("origin" in item or "score" in item for item in human)
    assert check_prediction(setup, prediction, n_frames=10) == []


def test_a_range_is_kept_as_one_span():
    setup = parse_label_config(VIDEO)
    spans = annotation_spans(setup, items(region("a", 1, 1_000_000, 0.2, 0.1)), "annotation", 2_000_000)
    assert spans == [Span(0, 999_999, 0.2, 0.1)]
