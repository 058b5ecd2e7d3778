"""The predicted valence/arousal curve as Label Studio's ``TimeSeries`` shows it, in sync with the ``Video``.

The curve lives in the task's data (``valueType="json"``): the editor reads it from the task it already loaded,
so no browser has to fetch anything from the backend (which may sit behind basic auth, on another origin). The
backend writes it through the Label Studio API whenever it predicts the task (``CurveWriter``). Time is in
seconds from the first frame, as the ``Video`` seeks: Label Studio maps a video time ``t`` to the curve's
``time[0] + t``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import httpx
import numpy as np

from mtclar.model.errors import LabelConfigError
from mtclar.model.fewshot import FrameLabels

log = logging.getLogger(__name__)
TIME_COLUMN = "time"
COLUMNS = ("valence", "valence_low", "valence_high", "arousal", "arousal_low", "arousal_high")
MAX_POINTS = 3000  # a task's data stays small (about 140 kB of JSON): longer videos are thinned evenly


@dataclass(frozen=True)
class CurveSpec:
    name: str  # the TimeSeries tag
    data_key: str  # task data key of the curve (``curve`` for value="$curve")
    columns: tuple[str, ...]  # the channels the config shows


def parse_curve(config: str, video_name: str, video_sync: str) -> CurveSpec | None:
    """The config's ``TimeSeries`` for the curve, or say what would not work. None when there is no TimeSeries or
    none of its channels is a curve column."""
    root = ET.fromstring(config)  # noqa: S314 - Label Studio's own config, already parsed by its SDK
    series = [e for e in root.iter() if e.tag == "TimeSeries"]
    if not series:
        return None
    if len(series) > 1:
        raise LabelConfigError("the config has several <TimeSeries>: the backend fills one with the curve")
    tag = series[0]
    columns = tuple(c.get("column", "") for c in tag.iter("Channel"))
    if not set(columns) & set(COLUMNS):
        return None  # a time series of the project's own (no curve column): not the backend's to fill
    name = tag.get("name", "")
    where = f"<TimeSeries name=\"{name}\">"
    value = tag.get("value", "")
    if not value.startswith("$") or len(value) < 2:
        raise LabelConfigError(f"{where}: needs value=\"$field\" (the task data field the backend writes)")
    if (tag.get("valueType") or tag.get("valuetype") or "url").lower() != "json":
        raise LabelConfigError(f"{where}: needs valueType=\"json\": the backend writes the curve into the task "
                               "data (a URL would be fetched by the browser, without the backend's credentials)")
    if (tag.get("timeColumn") or tag.get("timecolumn")) != TIME_COLUMN:
        raise LabelConfigError(f"{where}: needs timeColumn=\"{TIME_COLUMN}\" (seconds, as the video plays)")
    sync = tag.get("sync", "")
    if not sync or sync != video_sync:
        raise LabelConfigError(f"{where}: needs the same sync=\"...\" as <Video name=\"{video_name}\"> "
                               f"(TimeSeries sync={sync!r}, Video sync={video_sync!r}) to follow the video")
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise LabelConfigError(f"{where}: <Channel column=...> must be among {', '.join(COLUMNS)} "
                               f"(got {', '.join(map(repr, unknown))})")
    return CurveSpec(name, value[1:], columns)


def build_curve(spec: CurveSpec, labels: FrameLabels, time_s: np.ndarray, valence_scale, arousal_scale) -> dict | None:
    """Per-frame labels -> the TimeSeries data: ``time`` (s) and the config's columns on the tags' scales
    (``*_scale``: model value -> tag value). Frames without a face are left out (the line joins over them);
    where the labeller has no interval the band is the value. None when fewer than two frames have a face."""
    rows = np.flatnonzero(labels.source != "no_face")
    if rows.size < 2:
        return None
    if rows.size > MAX_POINTS:
        rows = rows[np.unique(np.linspace(0, rows.size - 1, MAX_POINTS).round().astype(int))]
    time_s = np.asarray(time_s, dtype=np.float64)
    out: dict[str, list[float]] = {TIME_COLUMN: [round(float(t), 4) for t in time_s[rows] - time_s[0]]}
    for dimension, scale in (("valence", valence_scale), ("arousal", arousal_scale)):
        value = getattr(labels, dimension)[rows]
        for column in (dimension, f"{dimension}_low", f"{dimension}_high"):
            if column not in spec.columns:
                continue
            raw = value if column == dimension else getattr(labels, column)[rows]
            raw = np.where(np.isfinite(raw), raw, value)
            out[column] = [scale(float(x)) for x in raw]
    return out


def placeholder_curve(spec_columns: tuple[str, ...] = COLUMNS, duration_s: float = 1.0) -> dict:
    """What a task carries before its first prediction (Label Studio refuses a task without the field):
    a flat line at 0 over the video."""
    duration = max(float(duration_s), 0.001)
    return {TIME_COLUMN: [0.0, round(duration, 4)], **{c: [0.0, 0.0] for c in spec_columns}}


class CurveWriter:
    """Writes curves into task data through the Label Studio API, in one background thread: a /predict never
    waits for Label Studio (which may be busy waiting for that very /predict). The latest curve of a task wins;
    a curve equal to the one last written is not sent again."""

    def __init__(self, api):
        self.api = api
        self._pending: dict[int, tuple[str, dict]] = {}
        self._written: dict[int, str] = {}
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._warned = False
        self._busy = False  # a write in flight
        self.writes = 0
        self.failures = 0

    def submit(self, task_id: int, data_key: str, curve: dict) -> bool:
        """Queue a write; False when there is nothing to do (no API, or the same curve is already there)."""
        if self.api is None:
            if not self._warned:
                log.warning("a TimeSeries curve is configured but LABEL_STUDIO_URL/LABEL_STUDIO_API_KEY are not "
                            "set: the backend cannot write curves into the tasks")
                self._warned = True
            return False
        digest = hashlib.sha1(json.dumps([data_key, curve], sort_keys=True).encode()).hexdigest()
        with self._lock:
            if self._written.get(task_id) == digest:
                return False
            self._pending[task_id] = (data_key, curve)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="curve-writer", daemon=True)
                self._thread.start()
            self._lock.notify()
        return True

    def wait_idle(self, timeout: float) -> bool:
        """True once every queued curve is written or failed (tests, shutdown)."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._pending and not self._busy, timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._lock.wait_for(lambda: self._pending, timeout=60):
                    self._thread = None
                    return
                task_id = next(iter(self._pending))
                data_key, curve = self._pending.pop(task_id)
                self._busy = True
            try:
                self._write(task_id, data_key, curve)
                digest = hashlib.sha1(json.dumps([data_key, curve], sort_keys=True).encode()).hexdigest()
                with self._lock:
                    self._written[task_id] = digest
                    self.writes += 1
            except Exception as error:  # Label Studio down, task deleted: the next prediction tries again
                log.warning("task %s: could not write its curve into Label Studio: %s", task_id, error)
                with self._lock:
                    self.failures += 1
            finally:
                with self._lock:
                    self._busy = False
                    self._lock.notify_all()

    def _write(self, task_id: int, data_key: str, curve: dict) -> None:
        """Read the task's data as stored (``resolve_uri=false``: cloud-storage URLs stay ``s3://...``, not the
        proxy URLs a plain GET answers with), set the curve, write it all back (PATCH replaces ``data``)."""
        response = httpx.get(f"{self.api.url}/api/tasks/{task_id}", params={"resolve_uri": "false"},
                             headers=self.api.headers(), timeout=self.api.timeout)
        response.raise_for_status()
        data = dict(response.json().get("data") or {})
        data[data_key] = curve
        self.api.client.tasks.update(id=str(task_id), data=data)
