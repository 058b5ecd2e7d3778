"""Property-based fuzzing of the whole payload edge: random JSON shapes and values, and valid requests with a
random part replaced, into /setup, /predict and /webhook. Never a 500; a malformed request changes nothing."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import SINGLE_URL, frame_result, region, snapshot

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
ACTIONS = st.sampled_from(["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATION_DELETED", "ANNOTATIONS_DELETED",
                           "PROJECT_UPDATED", ""]) | st.text(max_size=10)


def valid_bodies(configs: dict) -> list[tuple[str, dict]]:
    """Requests the backend accepts; the fuzzer breaks one part of each. Media point at a missing file, so a
    request that survives validation ends in a 422 without embedding anything."""
    missing = "/data/local-files/?d=videos/missing.mp4"
    task = {"id": 40, "data": {"video": missing}, "annotations": [{"id": 400, "result": region("r", 1, 9, 0.1, 0.2)}]}
    frame = {"id": 41, "data": {"image": missing, "video_id": "fz", "frame": 4},
             "annotations": [{"id": 410, "result": frame_result(0.1, 0.2)}]}
    return [
        ("/setup", {"project": "7.1", "schema": configs["video"], "hostname": "http://127.0.0.1:9",
                    "access_token": "t"}),
        ("/predict", {"tasks": [task], "project": "7.1", "label_config": configs["video"],
                      "params": {"context": {"result": region("c", 2, 3, 0.0, 0.0)}}}),
        ("/predict", {"tasks": [frame], "project": "8.1", "label_config": configs["frame"]}),
        ("/webhook", {"action": "ANNOTATION_CREATED", "project": {"id": 7, "label_config": configs["video"]},
                      "task": {"id": 40, "data": {"video": SINGLE_URL}},
                      "annotation": {"id": 401, "result": region("r", 1, 9, 0.1, 0.2)}}),
        ("/webhook", {"action": "ANNOTATIONS_DELETED", "project": {"id": 7}, "annotations": [{"id": 12345}]}),
    ]


def paths_of(value, prefix=()):
    """Every path into a JSON value (dict keys and list indices)."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths_of(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths_of(item, (*prefix, index))


def replace_at(value, path, new):
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = replace_at(copy[path[0]], path[1:], new)
    return copy


def check(client, runtime, path, body) -> None:
    before = snapshot(runtime)
    response = client.post(path, data=json.dumps(body), content_type="application/json")
    assert response.status_code < 500, (path, body, response.get_json())
    if response.status_code in (400, 413):  # malformed: nothing stored. (422: a valid request whose media
        assert snapshot(runtime) == before, (path, body)  # cannot be read; its valid labels are kept)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_valid_request_with_one_part_replaced_never_gives_500(robust_client, robust_runtime, configs, data):
    path, body = data.draw(st.sampled_from(valid_bodies(configs)))
    where = data.draw(st.sampled_from(list(paths_of(body))[1:]))
    new = data.draw(JSON | ACTIONS if where and where[-1] == "action" else JSON)
    check(robust_client, robust_runtime, path, replace_at(body, where, new))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/setup", "/predict", "/webhook"]), body=JSON)
def test_random_json_never_gives_500(robust_client, robust_runtime, path, body):
    check(robust_client, robust_runtime, path, body)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(st.sampled_from(["tasks", "project", "label_config", "params", "context", "action",
                                             "task", "annotation", "annotations", "schema", "hostname"]),
                            JSON, max_size=6))
def test_random_objects_with_the_known_keys_never_give_500(robust_client, robust_runtime, body):
    for path in ("/setup", "/predict", "/webhook"):
        check(robust_client, robust_runtime, path, body)
