"""Anchors, tasks and per-project state that survive restarts: SQLite by default, Redis when configured.

A *video key* names what anchors belong to: ``task:<id>`` in video mode (one task per video),
``video:<video_id>`` in frame mode (frame tasks grouped by video). Anchors are kept per annotation as
spans (``anchors.Span``), so an updated or deleted annotation replaces or removes exactly its own frames,
and a long range costs one row. Every change bumps the project's revision, which is part of the model
version Label Studio sees (it only re-asks for predictions of a new version).

What is stored was validated at the edge (``payload``, ``ls_format``): a task is kept as the few fields the
backend reads (``TaskMedia``), never the body Label Studio sent.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple, Protocol

from .anchors import Span, decode, encode


class StoredAnnotation(NamedTuple):
    annotation_id: int
    video_key: str
    spans: list[Span]
    annotator: str | None = None  # who made it, where Label Studio says (agreement between annotators)


class StoredTask(NamedTuple):
    task_id: int
    video_key: str
    frame: int
    data: dict


class Store(Protocol):
    def set_annotations(self, project: int, annotations: list[StoredAnnotation]) -> bool: ...
    def delete_annotation(self, project: int, annotation_id: int) -> str | None: ...
    def spans(self, project: int, video_key: str) -> list[list[Span]]: ...
    def annotations(self, project: int, video_key: str) -> list[tuple[int, list[Span]]]: ...
    def annotators(self, project: int) -> dict[int, str]: ...
    def video_keys(self, project: int) -> list[str]: ...
    def set_tasks(self, project: int, tasks: list[StoredTask]) -> None: ...
    def tasks(self, project: int, video_key: str) -> list[tuple[int, int, dict]]: ...
    def revision(self, project: int) -> int: ...
    def bump_revision(self, project: int) -> None: ...
    def get_state(self, project: int, key: str) -> dict | None: ...
    def set_state(self, project: int, key: str, value: dict) -> None: ...
    def counts(self) -> dict: ...


class SQLiteStore:
    """One file, safe across threads and gunicorn workers (WAL, a connection per operation)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._db() as db:
            db.executescript("""
                PRAGMA journal_mode=WAL;
                CREATE TABLE IF NOT EXISTS annotations (
                    project INTEGER, annotation_id INTEGER, video_key TEXT, anchors TEXT,
                    PRIMARY KEY (project, annotation_id));
                CREATE INDEX IF NOT EXISTS annotations_video ON annotations (project, video_key);
                CREATE TABLE IF NOT EXISTS tasks (
                    project INTEGER, task_id INTEGER, video_key TEXT, frame INTEGER, data TEXT,
                    PRIMARY KEY (project, task_id));
                CREATE TABLE IF NOT EXISTS revisions (project INTEGER PRIMARY KEY, revision INTEGER);
                CREATE TABLE IF NOT EXISTS state (project INTEGER, key TEXT, value TEXT, PRIMARY KEY (project, key));
                CREATE TABLE IF NOT EXISTS annotators (
                    project INTEGER, annotation_id INTEGER, annotator TEXT, PRIMARY KEY (project, annotation_id));
            """)

    @contextmanager
    def _db(self):
        with self._lock:
            db = sqlite3.connect(self.path, timeout=30)
            db.execute("PRAGMA synchronous=NORMAL")  # WAL: a process crash loses nothing; fsync at checkpoints
            try:
                with db:
                    yield db
            finally:
                db.close()

    def bump_revision(self, project: int) -> None:
        """Something new to predict from (a video's embeddings became ready): a new model version."""
        with self._db() as db:
            self._bump(db, project)

    @staticmethod
    def _bump(db: sqlite3.Connection, project: int) -> None:
        db.execute("INSERT INTO revisions VALUES (?, 1) ON CONFLICT(project) DO UPDATE SET revision = revision + 1",
                   (project,))

    def set_annotations(self, project: int, annotations: list[StoredAnnotation]) -> bool:
        """Store the annotations' spans in one transaction; True (and one revision bump) if any changed."""
        changed = False
        with self._db() as db:
            for annotation_id, video_key, spans, annotator in annotations:
                if annotator is not None:
                    db.execute("INSERT OR REPLACE INTO annotators VALUES (?, ?, ?)",
                               (project, annotation_id, annotator))
                encoded = encode(spans)
                row = db.execute("SELECT video_key, anchors FROM annotations WHERE project=? AND annotation_id=?",
                                 (project, annotation_id)).fetchone()
                if row != (video_key, encoded):
                    db.execute("INSERT OR REPLACE INTO annotations VALUES (?, ?, ?, ?)",
                               (project, annotation_id, video_key, encoded))
                    changed = True
            if changed:
                self._bump(db, project)
        return changed

    def delete_annotation(self, project: int, annotation_id: int) -> str | None:
        with self._db() as db:
            row = db.execute("SELECT video_key FROM annotations WHERE project=? AND annotation_id=?",
                             (project, annotation_id)).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM annotations WHERE project=? AND annotation_id=?", (project, annotation_id))
            db.execute("DELETE FROM annotators WHERE project=? AND annotation_id=?", (project, annotation_id))
            self._bump(db, project)
            return row[0]

    def spans(self, project: int, video_key: str) -> list[list[Span]]:
        return [spans for _, spans in self.annotations(project, video_key)]

    def annotations(self, project: int, video_key: str) -> list[tuple[int, list[Span]]]:
        """(annotation id, its spans) of a video key, by id."""
        with self._db() as db:
            rows = db.execute("SELECT annotation_id, anchors FROM annotations WHERE project=? AND video_key=? "
                              "ORDER BY annotation_id", (project, video_key)).fetchall()
        return [(r[0], decode(r[1])) for r in rows]

    def annotators(self, project: int) -> dict[int, str]:
        """annotation id -> who made it (for the annotations whose author Label Studio named)."""
        with self._db() as db:
            rows = db.execute("SELECT annotation_id, annotator FROM annotators WHERE project=?", (project,)).fetchall()
        return dict(rows)

    def video_keys(self, project: int) -> list[str]:
        with self._db() as db:
            rows = db.execute("SELECT DISTINCT video_key FROM annotations WHERE project=? ORDER BY video_key",
                              (project,)).fetchall()
        return [r[0] for r in rows]

    def set_tasks(self, project: int, tasks: list[StoredTask]) -> None:
        if not tasks:
            return
        with self._db() as db:  # one transaction: Label Studio sends thousands of tasks in one /predict
            db.executemany("INSERT OR REPLACE INTO tasks VALUES (?, ?, ?, ?, ?)",
                           [(project, t.task_id, t.video_key, t.frame, json.dumps(t.data)) for t in tasks])

    def tasks(self, project: int, video_key: str) -> list[tuple[int, int, dict]]:
        with self._db() as db:
            rows = db.execute("SELECT task_id, frame, data FROM tasks WHERE project=? AND video_key=? ORDER BY frame",
                              (project, video_key)).fetchall()
        return [(r[0], r[1], json.loads(r[2])) for r in rows]

    def revision(self, project: int) -> int:
        with self._db() as db:
            row = db.execute("SELECT revision FROM revisions WHERE project=?", (project,)).fetchone()
        return row[0] if row else 0

    def get_state(self, project: int, key: str) -> dict | None:
        with self._db() as db:
            row = db.execute("SELECT value FROM state WHERE project=? AND key=?", (project, key)).fetchone()
        return json.loads(row[0]) if row else None

    def set_state(self, project: int, key: str, value: dict) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO state VALUES (?, ?, ?)", (project, key, json.dumps(value)))

    def counts(self) -> dict:
        with self._db() as db:
            annotations = db.execute("SELECT COUNT(*) FROM annotations").fetchone()[0]
            projects = db.execute("SELECT COUNT(DISTINCT project) FROM annotations").fetchone()[0]
        return {"backend": "sqlite", "projects": projects, "annotations": annotations}


class RedisStore:
    """The same store on Redis, for several backend machines or RQ workers sharing one state."""

    def __init__(self, url: str, prefix: str = "mtclar"):
        import redis

        self.redis = redis.Redis.from_url(url, decode_responses=True)
        self.redis.ping()
        self.prefix = prefix

    def _key(self, project: int, *parts: object) -> str:
        return ":".join([self.prefix, str(project), *map(str, parts)])

    def set_annotations(self, project: int, annotations: list[StoredAnnotation]) -> bool:
        if not annotations:
            return False
        key = self._key(project, "annotations")
        olds = self.redis.hmget(key, [a.annotation_id for a in annotations])
        pipe = self.redis.pipeline()
        changed = False
        named = {a.annotation_id: a.annotator for a in annotations if a.annotator is not None}
        if named:
            pipe.hset(self._key(project, "annotators"), mapping=named)
        for (annotation_id, video_key, spans, _), old in zip(annotations, olds, strict=True):
            entry = json.dumps({"video_key": video_key, "anchors": encode(spans)})
            if old == entry:
                continue
            if old is not None:
                pipe.srem(self._key(project, "video", json.loads(old)["video_key"]), annotation_id)
            pipe.hset(key, annotation_id, entry)
            pipe.sadd(self._key(project, "video", video_key), annotation_id)
            pipe.sadd(self._key(project, "videos"), video_key)
            changed = True
        if changed:
            pipe.incr(self._key(project, "revision"))
        if changed or named:
            pipe.execute()
        return changed

    def delete_annotation(self, project: int, annotation_id: int) -> str | None:
        key = self._key(project, "annotations")
        old = self.redis.hget(key, annotation_id)
        if old is None:
            return None
        video_key = json.loads(old)["video_key"]
        pipe = self.redis.pipeline()
        pipe.hdel(key, annotation_id)
        pipe.hdel(self._key(project, "annotators"), annotation_id)
        pipe.srem(self._key(project, "video", video_key), annotation_id)
        pipe.incr(self._key(project, "revision"))
        pipe.execute()
        return video_key

    def spans(self, project: int, video_key: str) -> list[list[Span]]:
        return [spans for _, spans in self.annotations(project, video_key)]

    def annotations(self, project: int, video_key: str) -> list[tuple[int, list[Span]]]:
        ids = sorted(self.redis.smembers(self._key(project, "video", video_key)), key=int)
        entries = self.redis.hmget(self._key(project, "annotations"), ids) if ids else []
        return [(int(i), decode(json.loads(e)["anchors"])) for i, e in zip(ids, entries, strict=True) if e]

    def annotators(self, project: int) -> dict[int, str]:
        return {int(k): v for k, v in self.redis.hgetall(self._key(project, "annotators")).items()}

    def video_keys(self, project: int) -> list[str]:
        keys = self.redis.smembers(self._key(project, "videos"))
        return sorted(k for k in keys if self.redis.scard(self._key(project, "video", k)))

    def set_tasks(self, project: int, tasks: list[StoredTask]) -> None:
        pipe = self.redis.pipeline()
        for task in tasks:
            entry = json.dumps({"task_id": task.task_id, "frame": task.frame, "data": task.data})
            pipe.hset(self._key(project, "tasks", task.video_key), task.task_id, entry)
        pipe.execute()

    def tasks(self, project: int, video_key: str) -> list[tuple[int, int, dict]]:
        entries = [json.loads(e) for e in self.redis.hvals(self._key(project, "tasks", video_key))]
        return sorted(((e["task_id"], e["frame"], e["data"]) for e in entries), key=lambda t: (t[1], t[0]))

    def revision(self, project: int) -> int:
        return int(self.redis.get(self._key(project, "revision")) or 0)

    def bump_revision(self, project: int) -> None:
        self.redis.incr(self._key(project, "revision"))

    def get_state(self, project: int, key: str) -> dict | None:
        raw = self.redis.get(self._key(project, "state", key))
        return json.loads(raw) if raw else None

    def set_state(self, project: int, key: str, value: dict) -> None:
        self.redis.set(self._key(project, "state", key), json.dumps(value))

    def counts(self) -> dict:
        return {"backend": "redis"}


def open_store(model_dir: Path, redis_url: str | None) -> Store:
    return RedisStore(redis_url) if redis_url else SQLiteStore(Path(model_dir) / "anchors.sqlite3")
