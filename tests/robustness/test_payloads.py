"""Malformed, hostile and oversized requests: a 4xx naming the field, nothing stored, cost bounded by the work.

Each case is a repro from the first security review (issue 10); none of them may give a 500 or change what
the store holds.
"""

from __future__ import annotations

import json
import time

import pytest

from .conftest import NO_FACE_URL, SINGLE_URL, frame_result, region, snapshot

VIDEO_TASK = {"id": 10, "data": {"video": SINGLE_URL}}


def post(client, path, body, **kwargs):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(path, data=data, content_type="application/json", **kwargs)


def predict_body(tasks, config, project="1.1", **extra):
    return {"tasks": tasks, "project": project, "label_config": config, **extra}


def video_task(**changes):
    return {**VIDEO_TASK, **changes}


def bad_predicts(video):
    ok_region = region("x", 1, 2, 0.1, 0.1)
    return [
        (predict_body([{"data": {"video": SINGLE_URL}}], video), 400, "tasks[0].id"),
        (predict_body([video_task(id="seven")], video), 400, "tasks[0].id"),
        (predict_body([video_task(id=-1)], video), 400, "tasks[0].id"),
        (predict_body([1, 2], video), 400, "tasks[0]"),
        (predict_body([video_task(data="a string")], video), 400, "task 10: tasks[0].data"),
        (predict_body([video_task(data=[1])], video), 400, "tasks[0].data"),
        (predict_body([video_task(data={"video": 5})], video), 400, "task 10: data.video"),
        (predict_body([video_task(data={})], video), 400, "data.video"),
        (predict_body([VIDEO_TASK], video, context=[1]), 400, "context"),
        (predict_body([VIDEO_TASK], video, params={"context": "x"}), 400, "params.context"),
        (predict_body([video_task(annotations=[{"id": 5, "result": region("r", 1, 2, "0.5", 0.1)}])], video), 400,
         "annotations[0].result[1].value.number"),
        (predict_body([video_task(annotations=[{"id": 5, "result": region("r", 1, 2, None, 0.1)}])], video), 400,
         "value.number"),
        (predict_body([video_task(annotations=[{"id": 5, "result": region("r", 1, 2, [0.5], 0.1)}])], video), 400,
         "value.number"),
        (predict_body([video_task(annotations=[{"id": 5, "result": region("r", 1, 2, 1.5, 0.1)}])], video), 400,
         "outside [-1.0, 1.0]"),
        (predict_body([video_task(annotations=[{"id": 5, "result": region("r", "x", 2, 0.5, 0.1)}])], video), 400,
         "ranges[0].start"),
        (predict_body([video_task(annotations=[{"id": 5, "result": region("r", 5, 2, 0.5, 0.1)}])], video), 400,
         "end 2 is before start 5"),
        (predict_body([video_task(annotations=[{"id": 5, "result": [{**ok_region[0], "value": {"ranges": "1-2"}}]
                                                                    + ok_region[1:]}])], video), 400, "value.ranges"),
        (predict_body([video_task(annotations=[{"id": 5, "result": {"a": 1}}])], video), 400, "result"),
        (predict_body([video_task(annotations=[{"id": 5, "result": [1]}])], video), 400, "result[0]"),
        (predict_body([video_task(annotations="none")], video), 400, "annotations"),
        (predict_body([VIDEO_TASK], video, project="99999999999999999999"), 400, "project"),
        (predict_body([VIDEO_TASK], video, project="x.1"), 400, "project"),
        (predict_body("tasks", video), 400, "tasks"),
        ({"project": "1.1"}, 400, "tasks"),
        (predict_body([VIDEO_TASK], 5), 400, "label_config"),
        (predict_body([video_task(annotations=[{"id": 5, "result": region("r", 1, 10**9, 0.5, 0.1)}])], video), 413,
         "MTCLAR_MAX_FRAME"),
    ]


def test_malformed_predicts_get_400_naming_the_field_and_store_nothing(robust_client, robust_runtime, configs):
    before = snapshot(robust_runtime)
    for body, status, field in bad_predicts(configs["video"]):
        response = post(robust_client, "/predict", body)
        assert response.status_code == status, (body, response.get_json())
        assert field in response.get_json()["message"], (field, response.get_json()["message"])
        assert snapshot(robust_runtime) == before, body


@pytest.mark.parametrize(("raw", "message"), [
    (b"", "empty"),
    (b"not json", "not JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"tasks": [{"id": 1, "data": {"video": "x"}, "annotations": [{"id": 2, "result": '
     b'[{"value": {"number": NaN}}]}]}]}', "NaN"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "nested too deeply"),
])
def test_bodies_that_are_not_a_json_object_get_400(robust_client, raw, message):
    for path in ("/predict", "/setup", "/webhook"):
        response = post(robust_client, path, raw)
        assert response.status_code == 400 and message in response.get_json()["message"], response.get_json()


def test_limits_answer_413(robust_client, robust_runtime, configs):
    before = snapshot(robust_runtime)
    huge = predict_body([video_task(data={"video": SINGLE_URL, "pad": "x" * 3_000_000})], configs["video"])
    assert post(robust_client, "/predict", huge).status_code == 413  # over MTCLAR_MAX_BODY_MB (2 MB here)
    many = predict_body([video_task(id=i) for i in range(51)], configs["video"])
    response = post(robust_client, "/predict", many)
    assert response.status_code == 413 and "MTCLAR_MAX_TASKS" in response.get_json()["message"]
    frame = predict_body([{"id": 3, "data": {"image": "/x.png", "video_id": "v", "frame": 3_000_000}}],
                         configs["frame"], project="2.1")
    response = post(robust_client, "/predict", frame)
    assert response.status_code == 413 and "data.frame" in response.get_json()["message"]
    assert snapshot(robust_runtime) == before


def test_a_huge_range_is_clipped_to_the_video_before_anything_is_expanded(robust_client, robust_runtime, configs):
    """1..100000 on a 72-frame clip: one stored span, answered as fast as a short range."""
    task = video_task(id=11, annotations=[{"id": 111, "result": region("r", 1, 100_000, 0.3, 0.2)}])
    post(robust_client, "/predict", predict_body([video_task(id=12, annotations=[
        {"id": 112, "result": region("r", 1, 3, 0.3, 0.2)}])], configs["video"]))  # embeds the clip once
    started = time.perf_counter()
    response = post(robust_client, "/predict", predict_body([task], configs["video"]))
    assert response.status_code == 200 and time.perf_counter() - started < 5
    dump = "\n".join(snapshot(robust_runtime))
    assert len(dump) < 200_000  # one span, not 100,000 frames
    result = response.get_json()["results"][0]["result"]
    ranges = [r["value"]["ranges"][0] for r in result if r["type"] == "timelinelabels"]
    assert max(r["end"] for r in ranges) == 72  # nothing beyond the video


def test_frame_mode_rejects_bad_frames_and_values_and_stores_nothing(robust_client, robust_runtime, configs):
    before = snapshot(robust_runtime)
    image = "/data/local-files/?d=stills/single_face.jpg"
    cases = [
        ({"image": image, "video_id": "v", "frame": -5}, frame_result(0.1, 0.1), 400, "data.frame"),
        ({"image": image, "video_id": "v", "frame": "3"}, frame_result(0.1, 0.1), 400, "data.frame"),
        ({"image": image, "frame": 3}, frame_result(0.1, 0.1), 400, "data.video_id"),
        ({"image": image, "video_id": [1], "frame": 3}, frame_result(0.1, 0.1), 400, "data.video_id"),
        ({"image": image, "video_id": "v", "frame": 3}, frame_result(11, 0.1), 400, "outside [-1.0, 1.0]"),
        ({"image": image, "video_id": "v", "frame": 3, "fps": 0}, frame_result(0.1, 0.1), 400, "data.fps"),
    ]
    for data, result, status, field in cases:
        hook = {"action": "ANNOTATION_CREATED", "project": {"id": 2, "label_config": configs["frame"]},
                "task": {"id": 20, "data": data}, "annotation": {"id": 200, "result": result}}
        response = post(robust_client, "/webhook", hook)
        assert response.status_code == status and field in response.get_json()["message"], response.get_json()
    nan = ('{"action": "ANNOTATION_CREATED", "project": {"id": 2}, "task": {"id": 20, "data": {"image": "x", '
           '"video_id": "v", "frame": 1}}, "annotation": {"id": 200, "result": [{"id": "v", "from_name": "valence", '
           '"type": "number", "value": {"number": NaN}}]}}')
    assert post(robust_client, "/webhook", nan).status_code == 400
    assert snapshot(robust_runtime) == before
    # and the project still predicts afterwards
    ok = {"id": 21, "data": {"image": image, "video_id": "v", "frame": 0}, "annotations": [
        {"id": 210, "result": frame_result(0.2, 0.1)}]}
    query = {"id": 22, "data": {"image": "/data/local-files/?d=stills/0-f15-hao-ph.jpg", "video_id": "v", "frame": 5}}
    response = post(robust_client, "/predict", predict_body([ok, query], configs["frame"], project="2.1"))
    assert response.status_code == 200
    body = response.get_json()
    assert body["results"][1]["result"] and {r["model_version"] for r in body["results"]} == {body["model_version"]}


def test_malformed_webhooks_get_400_and_unknown_actions_are_ignored(robust_client, robust_runtime, configs):
    before = snapshot(robust_runtime)
    project = {"id": 1, "label_config": configs["video"]}
    cases = [
        ({"project": project}, 400, "action"),
        ({"action": 5, "project": project}, 400, "action"),
        ({"action": "ANNOTATION_CREATED", "project": project, "task": {"id": 1, "data": [1]},
          "annotation": {"id": 1, "result": []}}, 400, "task.data"),
        ({"action": "ANNOTATION_CREATED", "project": project, "task": {"id": 1, "data": {"video": SINGLE_URL}},
          "annotation": {"id": 1, "result": "x"}}, 400, "annotation.result"),
        ({"action": "ANNOTATION_CREATED", "project": project, "task": {"id": 1, "data": {"video": SINGLE_URL}}},
         400, "annotation"),
        ({"action": "ANNOTATIONS_DELETED", "project": project, "annotations": [{"id": "abc"}]}, 400,
         "annotations[0].id"),
        ({"action": "ANNOTATIONS_DELETED", "project": project, "annotations": "all"}, 400, "annotations"),
        ({"action": "ANNOTATION_CREATED", "project": {"id": 99999999999999999999}, "task": {}}, 400, "project.id"),
        ({"action": "START_TRAINING"}, 400, "project"),
    ]
    for body, status, field in cases:
        response = post(robust_client, "/webhook", body)
        assert response.status_code == status and field in response.get_json()["message"], (body, response.get_json())
    response = post(robust_client, "/webhook", {"action": "PROJECT_UPDATED", "project": [1, 2, 3]})
    assert response.status_code == 200 and response.get_json()["status"] == "ignored"
    assert snapshot(robust_runtime) == before


def test_bad_query_arguments_get_400(robust_client):
    for path in ("/health?project=abc", "/metrics?project=99999999999999999999"):
        assert robust_client.get(path).status_code == 400


def test_a_video_without_a_face_gets_no_prediction_and_score_0(robust_client, configs):
    task = {"id": 30, "data": {"video": NO_FACE_URL}, "annotations": [{"id": 300, "result": region("r", 1, 3, 0, 0)}]}
    response = post(robust_client, "/predict", predict_body([task], configs["video"], project="5.1"))
    assert response.status_code == 200
    result = response.get_json()["results"][0]
    assert result["score"] == 0.0 and not [r for r in result["result"] if r.get("origin") == "prediction"]
