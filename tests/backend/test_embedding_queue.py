"""The background embedding queue: order, one job per video, failures remembered, one bump per wait."""

from __future__ import annotations

import threading
import time

import pytest

from mtclar.model.errors import MediaError
from mtclar_backend.embedding_queue import BACKLOG, URGENT, EmbeddingQueue
from mtclar_backend.ls_format import TaskMedia


def media(name: str) -> TaskMedia:
    return TaskMedia(task_id=1, video_key=name, url=f"/data/local-files/?d={name}")


class Work:
    """Embedding stand-in: records the order, blocks until released, fails for names starting with 'bad'."""

    def __init__(self):
        self.order: list[str] = []
        self.gate = threading.Event()
        self.bumps: list[int] = []

    def embed(self, m: TaskMedia, on_progress=None):
        self.gate.wait(10)
        self.order.append(m.video_key)
        if m.video_key.startswith("bad"):
            raise MediaError(f"{m.video_key}: not a video")
        return m.video_key

    def queue(self) -> EmbeddingQueue:
        return EmbeddingQueue(self.embed, lambda m: None, lambda m: False, self.bumps.append, workers=1)


def settle(q: EmbeddingQueue, project: int, done: int) -> None:
    deadline = time.monotonic() + 10
    while sum(q.progress(project).get(k, 0) for k in ("done", "failed")) < done:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.05)


def test_a_video_a_request_waits_for_goes_ahead_of_the_backlog():
    work = Work()
    q = work.queue()
    q.submit(1, media("first"), BACKLOG)  # taken by the worker at once; it waits at the gate
    time.sleep(0.05)
    for name in ("b1", "b2", "b3"):
        q.submit(1, media(name), BACKLOG)
    q.submit(1, media("wanted"), URGENT)
    work.gate.set()
    settle(q, 1, 5)
    assert work.order == ["first", "wanted", "b1", "b2", "b3"]


def test_one_job_per_video_and_one_bump_once_every_awaited_video_is_done():
    work = Work()
    q = work.queue()
    assert q.wait(7, media("a"), 0.01) is None and q.wait(7, media("b"), 0.01) is None
    assert q.wait(8, media("a"), 0.01) is None  # another project, the same file: one job
    work.gate.set()
    settle(q, 7, 2)
    assert work.order == ["a", "b"]
    assert sorted(work.bumps) == [7, 8]  # once for project 7 (both of its videos), once for 8
    assert q.progress(7) == {"queued": 2, "done": 2}


def test_a_failed_video_is_reported_and_not_retried_at_once_and_brings_no_bump():
    work = Work()
    q = work.queue()
    assert q.wait(3, media("bad.mp4"), 0.01) is None
    work.gate.set()
    settle(q, 3, 1)
    assert work.bumps == []  # nothing new to predict from
    with pytest.raises(MediaError, match="not a video"):
        q.ready_or_submit(3, media("bad.mp4"))
    assert work.order == ["bad.mp4"]


def test_a_running_video_shows_how_many_of_its_frames_are_done():
    reported, finish = threading.Event(), threading.Event()

    def embed(m: TaskMedia, on_progress=None):
        on_progress(300, 1200)
        reported.set()
        finish.wait(10)
        return m.video_key

    q = EmbeddingQueue(embed, lambda m: None, lambda m: False, lambda p: None, workers=1)
    q.submit(5, media("long.mp4"), URGENT)
    assert reported.wait(10)
    assert q.progress(5) == {"queued": 1, "frames_done": 300, "frames_expected": 1200}
    assert "frames_done" not in q.progress(6)  # another project's view
    finish.set()
    settle(q, 5, 1)
    assert q.progress(5) == {"queued": 1, "done": 1}

