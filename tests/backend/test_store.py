import pytest

from mtclar_backend.anchors import Span, decode, encode, expand
from mtclar_backend.store import RedisStore, SQLiteStore, StoredAnnotation, StoredTask


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "sqlite":
        return SQLiteStore(tmp_path / "anchors.sqlite3")
    url = request.getfixturevalue("redis_url")
    store = RedisStore(url, prefix=f"test-{tmp_path.name}")
    return store


def frames(*pairs):
    return [Span(f, f, v, a) for f, (v, a) in pairs]


def annotate(store, project, annotation_id, key, spans) -> bool:
    return store.set_annotations(project, [StoredAnnotation(annotation_id, key, spans)])


def anchors(store, project, key, n_frames=100):
    return expand(store.spans(project, key), n_frames)


def test_expand_averages_frames_labelled_twice_and_clips_to_the_video():
    one, two = [Span(1, 1, 0.2, 0.4)], [Span(1, 1, 0.4, 0.0), Span(3, 3, 1.0, -1.0)]
    assert expand([one, two], 10) == {1: (pytest.approx(0.3), pytest.approx(0.2)), 3: (1.0, -1.0)}
    assert expand([[Span(0, 999_999_999, 0.1, 0.2)]], 3) == {0: (0.1, 0.2), 1: (0.1, 0.2), 2: (0.1, 0.2)}
    assert expand([[Span(50, 60, 0.1, 0.2)]], 10) == {}


def test_spans_round_trip_and_the_first_format_still_reads():
    spans = [Span(0, 4, 0.5, -0.25), Span(9, 9, 1.0, 0.0)]
    assert decode(encode(spans)) == spans
    assert decode('{"4": [0.5, -0.5]}') == [Span(4, 4, 0.5, -0.5)]


def test_annotations_set_update_delete(store):
    assert store.revision(1) == 0
    assert annotate(store, 1, 10, "task:5", [Span(0, 1, 0.1, 0.2)])
    assert store.revision(1) == 1
    assert not annotate(store, 1, 10, "task:5", [Span(0, 1, 0.1, 0.2)])  # unchanged: same revision
    assert store.revision(1) == 1
    annotate(store, 1, 11, "task:5", frames((1, (0.3, 0.0))))
    assert anchors(store, 1, "task:5") == {0: (0.1, 0.2), 1: (pytest.approx(0.2), pytest.approx(0.1))}
    annotate(store, 1, 10, "task:5", frames((7, (0.5, 0.5))))  # updated annotation replaces its frames
    assert anchors(store, 1, "task:5") == {1: (0.3, 0.0), 7: (0.5, 0.5)}
    assert store.delete_annotation(1, 11) == "task:5"
    assert anchors(store, 1, "task:5") == {7: (0.5, 0.5)}
    assert store.delete_annotation(1, 999) is None
    assert store.revision(1) == 4
    assert store.video_keys(1) == ["task:5"] and store.video_keys(2) == []
    assert anchors(store, 2, "task:5") == {}  # projects are separate


def test_a_batch_of_annotations_is_one_revision(store):
    batch = [StoredAnnotation(i, f"video:{i % 3}", frames((i, (0.1, 0.2)))) for i in range(50)]
    assert store.set_annotations(4, batch)
    assert store.revision(4) == 1
    assert not store.set_annotations(4, batch) and not store.set_annotations(4, [])  # nothing new: same revision
    assert store.revision(4) == 1
    assert store.set_annotations(4, batch[:49] + [StoredAnnotation(49, "video:0", frames((99, (0.5, 0.5))))])
    assert store.revision(4) == 2
    assert anchors(store, 4, "video:0")[99] == (0.5, 0.5) and 49 not in anchors(store, 4, "video:1")


def test_tasks_and_state(store):
    store.set_tasks(3, [StoredTask(1, "video:a", 5, {"image": "/data/upload/1.png", "frame": 5}),
                        StoredTask(2, "video:a", 2, {"image": "/data/upload/2.png", "frame": 2})])
    store.set_tasks(3, [StoredTask(1, "video:a", 5, {"image": "/data/upload/1b.png", "frame": 5})])
    store.set_tasks(3, [])
    assert store.tasks(3, "video:a") == [(2, 2, {"image": "/data/upload/2.png", "frame": 2}),
                                         (1, 5, {"image": "/data/upload/1b.png", "frame": 5})]
    assert store.get_state(3, "training") is None
    store.set_state(3, "training", {"status": "running"})
    assert store.get_state(3, "training") == {"status": "running"}


def test_sqlite_survives_reopening(tmp_path):
    annotate(SQLiteStore(tmp_path / "s.db"), 1, 1, "task:1", frames((4, (0.5, -0.5))))
    assert anchors(SQLiteStore(tmp_path / "s.db"), 1, "task:1") == {4: (0.5, -0.5)}




def test_expand_costs_the_labelled_frames_not_the_bound():
    far = [[Span(5, 5, 0.1, 0.2), Span(1_999_999, 1_999_999, 0.3, 0.4)], [Span(5, 5, 0.3, 0.0)]]
    assert expand(far, 2_000_001) == {5: (pytest.approx(0.2), pytest.approx(0.1)), 1_999_999: (0.3, 0.4)}


def test_annotations_keep_their_ids_and_annotators(store):
    annotate(store, 3, 12, "task:1", frames((4, (0.5, -0.5))))
    annotate(store, 3, 11, "task:1", frames((5, (0.1, 0.2))))
    annotate(store, 3, 13, "task:2", frames((6, (0.3, 0.3))))
    assert [(i, [s.start for s in spans]) for i, spans in store.annotations(3, "task:1")] == [(11, [5]), (12, [4])]
    assert store.annotators(3) == {}
    unchanged = [StoredAnnotation(11, "task:1", frames((5, (0.1, 0.2))), "user 1"),
                 StoredAnnotation(12, "task:1", frames((4, (0.5, -0.5))), "bob@example.org")]
    assert not store.set_annotations(3, unchanged)  # the anchors did not change: the authors are still kept
    assert not store.set_annotations(3, unchanged[1:])
    assert store.annotators(3) == {11: "user 1", 12: "bob@example.org"}
    assert store.annotators(4) == {}


def test_deleting_an_annotation_drops_its_annotator(store):
    store.set_annotations(3, [StoredAnnotation(11, "task:1", frames((5, (0.1, 0.2))), "ann@example.org"),
                              StoredAnnotation(12, "task:1", frames((4, (0.5, -0.5))), "bob@example.org")])
    assert store.delete_annotation(3, 11) == "task:1"
    assert store.annotators(3) == {12: "bob@example.org"}
    assert store.delete_annotation(3, 11) is None
    assert store.annotators(3) == {12: "bob@example.org"}
