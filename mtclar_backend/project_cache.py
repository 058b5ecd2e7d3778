"""A small per-project cache for what ``/metrics`` and ``/report`` derive from the store (agreement, the rendered
report): one entry per project, valid while its key (what the value was computed from) is unchanged, and at
most ``max_projects`` projects kept, the least recently used dropped first."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class ProjectCache(Generic[T]):
    def __init__(self, max_projects: int = 32):
        self.max_projects = max_projects
        self._entries: OrderedDict[int, tuple[Hashable, T]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, project: int, key: Hashable) -> T | None:
        with self._lock:
            entry = self._entries.get(project)
            if entry is None or entry[0] != key:
                return None
            self._entries.move_to_end(project)
            return entry[1]

    def put(self, project: int, key: Hashable, value: T) -> T:
        with self._lock:
            self._entries[project] = (key, value)
            self._entries.move_to_end(project)
            while len(self._entries) > self.max_projects:
                self._entries.popitem(last=False)
        return value

    def get_or_build(self, project: int, key: Hashable, build: Callable[[], T]) -> T:
        found = self.get(project, key)
        return found if found is not None else self.put(project, key, build())

    def __len__(self) -> int:
        return len(self._entries)


def digest(value: object) -> str:
    """A short stable hash of a JSON-able value (the annotators map, the training state)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]
