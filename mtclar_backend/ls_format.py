"""Label Studio JSON <-> frames and anchors, for the two supported labelling configs.

Video mode: ``Video`` + ``TimelineLabels`` + per-region ``Number`` valence and arousal; a region's
frames (1-based ranges) are anchors. Frame mode: ``Image`` + two ``Number``s; tasks grouped by ``video_id``.
Tag names come from the project's config; the Number tags are told apart by "valence"/"arousal" in
their names. Numbers on another scale than [-1, 1] (e.g. min -10, max 10) are mapped linearly.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from label_studio_sdk.label_interface import LabelInterface

from mtclar.model.errors import LabelConfigError, PayloadError, PayloadTooLarge

from .anchors import Span
from .curve import CurveSpec, parse_curve
from .payload import ResultItem, Task, finite_number, whole_number
from .segments import Segment

log = logging.getLogger(__name__)
SUGGEST_LABEL = "label me"  # a TimelineLabels label with this value: the prediction marks the frames to label next


@dataclass(frozen=True)
class NumberSpec:
    name: str
    min: float = -1.0
    max: float = 1.0
    step: float = 0.01

    @property
    def decimals(self) -> int:
        exponent = Decimal(str(self.step)).normalize().as_tuple().exponent
        return max(0, -int(exponent))

    def from_model(self, value: float) -> float:
        """[-1, 1] -> this tag's scale, on its step grid, inside min/max."""
        x = (value * (self.max - self.min) + (self.max + self.min)) / 2
        x = self.min + round((x - self.min) / self.step) * self.step
        x = min(max(x, self.min), self.max)
        return round(x, self.decimals)

    def to_model(self, value: float) -> float:
        return (2 * float(value) - (self.max + self.min)) / (self.max - self.min)

    def check(self, value: float) -> str | None:
        if not (isinstance(value, int | float) and math.isfinite(value)):
            return f"{self.name}: {value!r} is not a finite number"
        if not self.min <= value <= self.max:
            return f"{self.name}: {value} is outside [{self.min}, {self.max}]"
        units = (value - self.min) / self.step
        if abs(units - round(units)) > 1e-6:
            return f"{self.name}: {value} is not on the step {self.step} grid"
        return None


@dataclass(frozen=True)
class LabelSetup:
    mode: str  # "video" | "frame"
    object_name: str
    object_tag: str
    value_key: str  # task data key of the media ("video" for value="$video")
    valence: NumberSpec
    arousal: NumberSpec
    timeline: str | None = None  # TimelineLabels control name (video mode)
    label: str | None = None  # the Label used for predicted segments
    fps_key: str | None = None  # task data key of the frame rate (frameRate="$fps")
    fps_value: float | None = None  # or a literal frameRate
    config: str = ""
    suggest_label: str | None = None  # the TimelineLabels label marking frames to label next (never an anchor)
    curve: CurveSpec | None = None  # the TimeSeries the backend fills with the predicted curve

    @property
    def interface(self) -> LabelInterface:
        return _interface(self.config)


@lru_cache(maxsize=64)
def _interface(config: str) -> LabelInterface:
    return LabelInterface(config)


def _float(attr: dict, key: str, default: float, where: str) -> float:
    raw = attr.get(key)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError:
        raise LabelConfigError(f"{where}: {key}={raw!r} is not a number") from None


@lru_cache(maxsize=64)
def parse_label_config(config: str) -> LabelSetup:
    """Find the supported mode in a labelling config, or say what is missing (cached: Label Studio sends the
    same config with every request)."""
    if not config or not config.strip():
        raise LabelConfigError("empty labelling config")
    try:
        interface = LabelInterface(config)
    except Exception as error:  # the SDK raises several types for malformed XML
        raise LabelConfigError(f"unreadable labelling config: {error}") from error
    objects = {o.name: o for o in interface.objects}
    videos = [o for o in objects.values() if o.tag == "Video"]
    images = [o for o in objects.values() if o.tag == "Image"]
    if not videos and not images:
        raise LabelConfigError("the config needs a <Video> (video mode) or an <Image> (frame mode) tag")
    target = videos[0] if videos else images[0]
    numbers = [c for c in interface.controls if c.tag == "Number" and target.name in c.to_name]

    def number(kind: str) -> NumberSpec:
        found = [c for c in numbers if kind in c.name.lower()]
        if len(found) != 1:
            names = ", ".join(c.name for c in numbers) or "none"
            raise LabelConfigError(f"the config needs exactly one <Number> whose name contains {kind!r} with "
                                   f"toName=\"{target.name}\" (Numbers found: {names})")
        c = found[0]
        where = f"<Number name=\"{c.name}\">"
        spec = NumberSpec(c.name, _float(c.attr, "min", -1.0, where), _float(c.attr, "max", 1.0, where),
                          _float(c.attr, "step", 0.01, where))
        if spec.max <= spec.min or spec.step <= 0:
            raise LabelConfigError(f"{where}: needs min < max and step > 0")
        if videos and str(c.attr.get("perRegion", "")).lower() != "true":
            raise LabelConfigError(f"{where}: in video mode the numbers must be perRegion=\"true\" (one value "
                                   "per timeline segment)")
        return spec

    value_key = str(target.value or "").lstrip("$")
    if not value_key:
        raise LabelConfigError(f"<{target.tag} name=\"{target.name}\"> needs value=\"$field\"")
    valence, arousal = number("valence"), number("arousal")
    if images and not videos:
        return LabelSetup("frame", target.name, "Image", value_key, valence, arousal, config=config)

    timelines = [c for c in interface.controls if c.tag == "TimelineLabels" and target.name in c.to_name]
    if not timelines:
        raise LabelConfigError(f"video mode needs a <TimelineLabels toName=\"{target.name}\"> with a <Label>")
    timeline = timelines[0]
    labels = [label for label in timeline.labels or [] if label != SUGGEST_LABEL]
    if not labels:
        raise LabelConfigError(f"<TimelineLabels name=\"{timeline.name}\"> has no <Label> for V/A segments "
                               f"(\"{SUGGEST_LABEL}\" only marks suggestions)")
    suggest = SUGGEST_LABEL if SUGGEST_LABEL in (timeline.labels or []) else None
    rate = str(target.attr.get("frameRate", "") or "")
    fps_key = rate.lstrip("$") if rate.startswith("$") else None
    fps_value = _float(target.attr, "frameRate", 0.0, f"<Video name=\"{target.name}\">") if rate and not fps_key \
        else None
    curve = parse_curve(config, target.name, str(target.attr.get("sync", "") or ""))
    return LabelSetup("video", target.name, "Video", value_key, valence, arousal, timeline.name, labels[0],
                      fps_key, fps_value or None, config, suggest, curve)


# -- tasks and annotations -> media and anchors ------------------------------------------------------
# Each reader takes the typed objects of ``payload`` and raises PayloadError naming the field and the task.

MAX_URL_CHARS = 4096
MAX_VIDEO_ID_CHARS = 256


@dataclass(frozen=True)
class TaskMedia:
    """What the backend keeps of a task: where its media is and which video (and frame) it is."""

    task_id: int
    video_key: str  # ``task:<id>`` (video mode) or ``video:<video_id>`` (frame mode)
    url: str
    frame: int = -1  # frame mode: the 0-based frame of the video this image is
    fps: float | None = None

    def to_dict(self) -> dict:
        return {"url": self.url, "fps": self.fps}


def read_task(setup: LabelSetup, task: Task, max_frame: int) -> TaskMedia:
    where = f"task {task.id}: data"
    url = task.data.get(setup.value_key)
    if not isinstance(url, str) or not url.strip():
        raise PayloadError(f"{where}.{setup.value_key}: expected the media URL (a non-empty string), got "
                           f"{_short(url)}")
    if len(url) > MAX_URL_CHARS:
        raise PayloadTooLarge(f"{where}.{setup.value_key}: a URL of {len(url)} characters (limit {MAX_URL_CHARS})")
    fps = None
    for key in (setup.fps_key, "fps"):
        if key and task.data.get(key) is not None:
            fps = finite_number(task.data[key], f"{where}.{key}")
            if not 0 < fps <= 1000:
                raise PayloadError(f"{where}.{key}: a frame rate of {fps} is outside (0, 1000]")
            break
    if setup.mode == "video":
        return TaskMedia(task.id, f"task:{task.id}", url.strip(), fps=fps)
    group = task.data.get("video_id", task.data.get("video"))
    if isinstance(group, bool) or not isinstance(group, str | int) or group == "":
        raise PayloadError(f"{where}.video_id: frame mode needs a video id (a string or integer) to group frames, "
                           f"got {_short(group)}")
    if len(str(group)) > MAX_VIDEO_ID_CHARS:
        raise PayloadTooLarge(f"{where}.video_id: longer than {MAX_VIDEO_ID_CHARS} characters")
    frame = whole_number(task.data.get("frame"), f"{where}.frame", 0, max_frame)
    return TaskMedia(task.id, f"video:{group}", url.strip(), frame, fps)


def human_items(result: list[ResultItem]) -> list[ResultItem]:
    """Result items a person made or changed: a prediction accepted unchanged (``origin: prediction``) is the
    model's own output, and feeding it back as an anchor would only confirm the model."""
    by_region: dict[str, list[ResultItem]] = {}
    for item in result:
        by_region.setdefault(str(item.id), []).append(item)
    return [item for items in by_region.values() if any((i.origin or "manual") != "prediction" for i in items)
            for item in items]


def _number_value(spec: NumberSpec, item: ResultItem, field: str) -> float:
    value = finite_number(item.value.get("number"), f"{field}.value.number")
    tolerance = 1e-9 * (spec.max - spec.min)
    if not spec.min - tolerance <= value <= spec.max + tolerance:
        raise PayloadError(f"{field}.value.number: {value} is outside [{spec.min}, {spec.max}] of <Number "
                           f"name=\"{spec.name}\">")
    return min(max(spec.to_model(value), -1.0), 1.0)


def _ranges(item: ResultItem, field: str, max_frame: int) -> list[tuple[int, int]]:
    ranges = item.value.get("ranges")
    if not isinstance(ranges, list):
        raise PayloadError(f"{field}.value.ranges: expected a list of {{start, end}}, got {_short(ranges)}")
    out = []
    for k, span in enumerate(ranges):
        where = f"{field}.value.ranges[{k}]"
        if not isinstance(span, dict):
            raise PayloadError(f"{where}: expected {{start, end}}, got {_short(span)}")
        start = whole_number(span.get("start"), f"{where}.start", 1, max_frame)
        end = whole_number(span.get("end", start), f"{where}.end", 1, max_frame)
        if end < start:
            raise PayloadError(f"{where}: end {end} is before start {start}")
        out.append((start - 1, end - 1))  # Label Studio's frames are 1-based
    return out


def annotation_spans(setup: LabelSetup, result: list[ResultItem], where: str, max_frame: int,
                     frame: int = -1, human_only: bool = True) -> list[Span]:
    """An annotation's result -> anchor spans (0-based frames, model scale). Video mode: every timeline region
    with both numbers; frame mode: the frame's two numbers. Items of other tags are ignored; items of the
    backend's tags must be well formed. ``human_only=False`` reads a prediction's result (every region)."""
    numbers = {setup.valence.name: setup.valence, setup.arousal.name: setup.arousal}
    regions: dict[str, dict] = {}
    positions = {id(item): k for k, item in enumerate(result)}
    for item in human_items(result) if human_only else result:
        field = f"{where}.result[{positions[id(item)]}]"
        region = regions.setdefault(str(item.id), {})
        if setup.mode == "video" and item.from_name == setup.timeline and item.type == "timelinelabels":
            if _is_suggestion(setup, item):
                region["suggestion"] = True
                continue
            region["ranges"] = _ranges(item, field, max_frame)
        elif item.from_name in numbers and item.type == "number" and "number" in item.value:
            region[item.from_name] = _number_value(numbers[item.from_name], item, field)
    spans = []
    if setup.mode == "frame":
        values = {}
        for region in regions.values():
            values.update({k: v for k, v in region.items() if k in numbers})
        if setup.valence.name in values and setup.arousal.name in values:
            spans.append(Span(frame, frame, values[setup.valence.name], values[setup.arousal.name]))
        return spans
    for rid, region in regions.items():
        if region.get("suggestion"):
            continue  # a "label me" mark, even one a person moved or gave numbers: not a label
        if not {"ranges", setup.valence.name, setup.arousal.name} <= set(region):
            log.info("%s: region %s lacks a range, valence or arousal: not an anchor", where, rid)
            continue
        v, a = region[setup.valence.name], region[setup.arousal.name]
        spans += [Span(start, end, v, a) for start, end in region["ranges"]]
    return spans


def _is_suggestion(setup: LabelSetup, item: ResultItem) -> bool:
    labels = item.value.get("timelinelabels")
    return setup.suggest_label is not None and isinstance(labels, list) and setup.suggest_label in labels


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- predictions -----------------------------------------------------------------------------------


def timeline_region(setup: LabelSetup, region_id: str, start: int, end: int, valence: float, arousal: float,
                    **extra) -> list[dict]:
    """One labelled span as Label Studio stores it: the timeline label and the two numbers over the same
    ranges (Label Studio's 1-based frames, values in the tags' units); ``extra`` goes on every item."""
    ranges = [{"start": start, "end": end}]
    common = {"id": region_id, "to_name": setup.object_name, **extra}
    return [
        {**common, "from_name": setup.timeline, "type": "timelinelabels",
         "value": {"ranges": ranges, "timelinelabels": [setup.label]}},
        {**common, "from_name": setup.valence.name, "type": "number", "value": {"ranges": ranges, "number": valence}},
        {**common, "from_name": setup.arousal.name, "type": "number", "value": {"ranges": ranges, "number": arousal}},
    ]


def suggestion_regions(setup: LabelSetup, frames: list[int], n_frames: int, half_width: int) -> list[dict]:
    """The frames to label next (0-based) as short ``label me`` regions (``half_width`` frames each side, inside
    the video); nothing when the config has no suggestion label."""
    if setup.suggest_label is None:
        return []
    out = []
    for i, frame in enumerate(sorted(frames)):
        start, end = max(1, frame + 1 - half_width), min(n_frames, frame + 1 + half_width)
        out.append({"id": f"suggest-{i}", "from_name": setup.timeline, "to_name": setup.object_name,
                    "type": "timelinelabels", "origin": "prediction",
                    "value": {"ranges": [{"start": start, "end": end}], "timelinelabels": [setup.suggest_label]}})
    return out


def video_prediction(setup: LabelSetup, segments: list[Segment], human: list[Segment], score: float,
                     model_version: str, suggestions: list[dict] | None = None) -> dict:
    """Predicted segments + the person's labelled segments (0-based frames) -> one Label Studio prediction.
    The person's segments go back as plain regions (no ``origin``/``score``): accepting the prediction keeps
    them as they were labelled. ``suggestions``: regions of ``suggestion_regions``, listed last (the editor's
    timeline opens on its last rows)."""
    result = []
    for prefix, items, predicted in (("human", human, False), ("mtclar", segments, True)):
        for i, s in enumerate(items):
            extra = {"origin": "prediction", "score": round(s.score, 4)} if predicted else {}
            result += timeline_region(setup, f"{prefix}-{i}", s.start + 1, s.end + 1,
                                      setup.valence.from_model(s.valence), setup.arousal.from_model(s.arousal),
                                      **extra)
    result += suggestions or []
    return {"result": result, "score": round(float(score), 4), "model_version": model_version}


def frame_prediction(setup: LabelSetup, valence: float, arousal: float, score: float, model_version: str) -> dict:
    common = {"to_name": setup.object_name, "type": "number", "origin": "prediction"}
    result = [{**common, "id": f"mtclar-{spec.name}", "from_name": spec.name,
               "value": {"number": spec.from_model(value)}}
              for spec, value in ((setup.valence, valence), (setup.arousal, arousal))]
    return {"result": result, "score": round(float(score), 4), "model_version": model_version}


def check_prediction(setup: LabelSetup, prediction: dict, n_frames: int | None = None) -> list[str]:
    """What Label Studio would accept but the editor would not: off-grid or out-of-range numbers, ranges
    outside the video, plus the SDK's own tag/type/label check. Empty list = valid."""
    problems: list[str] = []
    if not setup.interface.validate_prediction(prediction):
        problems.append("label_studio_sdk.validate_prediction rejected the prediction")
    specs = {setup.valence.name: setup.valence, setup.arousal.name: setup.arousal}
    for item in prediction.get("result", []):
        value = item.get("value") or {}
        if item.get("from_name") in specs:
            problem = specs[item["from_name"]].check(value.get("number"))
            if problem:
                problems.append(f"region {item.get('id')}: {problem}")
        for span in value.get("ranges") or []:
            start, end = span.get("start"), span.get("end")
            if not (isinstance(start, int) and isinstance(end, int) and 1 <= start <= end):
                problems.append(f"region {item.get('id')}: bad range {span}")
            elif n_frames is not None and end > n_frames:
                problems.append(f"region {item.get('id')}: range {start}..{end} beyond the video's {n_frames} frames")
    score = prediction.get("score")
    if score is not None and not (isinstance(score, int | float) and 0 <= score <= 1):
        problems.append(f"score {score!r} outside [0, 1]")
    return problems
