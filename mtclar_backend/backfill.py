"""Anchors from the Label Studio API: after /setup, a thread walks the project's tasks once (at most every
``BACKFILL_EVERY_S`` per project and process) so that annotations made before the backend was connected count."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from .ls_api import LabelStudioAPI
from .payload import Task
from .store import Store

log = logging.getLogger(__name__)
BACKFILL_EVERY_S = 600.0  # Label Studio calls /setup often; the API walk runs at most this often per project
BATCH = 500  # tasks stored in one write (one transaction, at most one revision bump)


@dataclass
class Backfills:
    """Which projects are being (or were recently) backfilled from the Label Studio API, in this process."""

    running: set[int] = field(default_factory=set)
    last: dict[int, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self, project: int) -> bool:
        with self.lock:
            recent = time.monotonic() - self.last.get(project, -BACKFILL_EVERY_S) < BACKFILL_EVERY_S
            if project in self.running or recent:
                return False
            self.running.add(project)
            self.last[project] = time.monotonic()
            return True

    def release(self, project: int) -> None:
        with self.lock:
            self.running.discard(project)

    def start(self, project: int, api: LabelStudioAPI, store: Store,
              remember: Callable[[list[Task]], set[int]]) -> bool:
        """Walk the project's tasks in a thread; ``remember`` reads and stores a batch of tasks and returns the
        ids of their usable annotations. Annotations the store has but Label Studio no longer has are dropped; a
        task the API returns malformed is skipped and counted. False when a walk is running or ran recently."""
        if not self.claim(project):
            return False
        threading.Thread(target=self._walk, args=(project, api, store, remember), name=f"mtclar-backfill-{project}",
                         daemon=True).start()
        return True

    def _walk(self, project: int, api: LabelStudioAPI, store: Store,
              remember: Callable[[list[Task]], set[int]]) -> None:
        try:
            seen: set[int] = set()
            skipped = 0
            batch: list[Task] = []
            for raw in api.iter_tasks(project):
                try:
                    batch.append(Task.model_validate(raw))
                except ValidationError as error:
                    skipped += 1
                    log.warning("project %s: task %s from the API is skipped: %s", project, _task_id(raw),
                                str(error)[:300])
                if len(batch) >= BATCH:
                    seen |= remember(batch)
                    batch = []
            seen |= remember(batch)
            stale = store.get_state(project, "annotation_ids") or {}
            for annotation_id in set(stale.get("ids", [])) - seen:
                store.delete_annotation(project, annotation_id)
            store.set_state(project, "annotation_ids", {"ids": sorted(seen)})
            log.info("project %s: backfilled %d annotations from Label Studio (%d tasks skipped)", project, len(seen),
                     skipped)
        except Exception as error:
            log.warning("project %s: backfill from Label Studio failed: %s", project, error)
        finally:
            self.release(project)


def _task_id(raw: Any) -> Any:
    return raw.get("id") if isinstance(raw, dict) else "?"
