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

from label_studio_sdk.label_interface import LabelInterface

from model.errors import LabelConfigError

from .segments import Segment

log = logging.getLogger(__name__)


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

    @property
    def interface(self) -> LabelInterface:
        return _interface(self.config)


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


def parse_label_config(config: str) -> LabelSetup:
    """Find the supported mode in a labelling config, or say what is missing."""
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
    labels = list(timeline.labels or [])
    if not labels:
        raise LabelConfigError(f"<TimelineLabels name=\"{timeline.name}\"> has no <Label>")
    rate = str(target.attr.get("frameRate", "") or "")
    fps_key = rate.lstrip("$") if rate.startswith("$") else None
    fps_value = _float(target.attr, "frameRate", 0.0, f"<Video name=\"{target.name}\">") if rate and not fps_key \
        else None
    return LabelSetup("video", target.name, "Video", value_key, valence, arousal, timeline.name, labels[0],
                      fps_key, fps_value or None, config)


# -- annotations -> anchors ------------------------------------------------------------------------


def usable_annotations(task: dict) -> list[dict]:
    return [a for a in task.get("annotations") or [] if not a.get("was_cancelled") and a.get("result")]


def human_items(result: list[dict]) -> list[dict]:
    """Result items a person made or changed: a prediction accepted unchanged (``origin: prediction``) is the
    model's own output, and feeding it back as an anchor would only confirm the model."""
    by_region: dict[str, list[dict]] = {}
    for item in result:
        by_region.setdefault(str(item.get("id")), []).append(item)
    return [item for items in by_region.values() if any(i.get("origin", "manual") != "prediction" for i in items)
            for item in items]


def video_anchors(setup: LabelSetup, result: list[dict], n_frames: int | None = None) -> dict[int, tuple[float, float]]:
    """Timeline regions with both numbers -> {0-based frame: (valence, arousal)} on the model's scale."""
    regions: dict[str, dict] = {}
    for item in human_items(result):
        rid = item.get("id")
        value = item.get("value") or {}
        if item.get("from_name") == setup.timeline and item.get("type") == "timelinelabels":
            regions.setdefault(rid, {})["ranges"] = value.get("ranges") or []
        elif item.get("from_name") == setup.valence.name and "number" in value:
            regions.setdefault(rid, {})["valence"] = value["number"]
        elif item.get("from_name") == setup.arousal.name and "number" in value:
            regions.setdefault(rid, {})["arousal"] = value["number"]
    anchors: dict[int, tuple[float, float]] = {}
    for rid, region in regions.items():
        if not {"ranges", "valence", "arousal"} <= set(region):
            log.info("region %s lacks a range, valence or arousal: not an anchor", rid)
            continue
        v, a = setup.valence.to_model(region["valence"]), setup.arousal.to_model(region["arousal"])
        if not (math.isfinite(v) and math.isfinite(a)):
            continue
        v, a = min(max(v, -1.0), 1.0), min(max(a, -1.0), 1.0)
        for span in region["ranges"]:
            start, end = int(span.get("start", 0)), int(span.get("end", span.get("start", 0)))
            for frame in range(max(start, 1), end + 1):
                if n_frames is None or frame - 1 < n_frames:
                    anchors[frame - 1] = (v, a)
    return anchors


def frame_values(setup: LabelSetup, result: list[dict]) -> tuple[float, float] | None:
    values = {}
    for item in human_items(result):
        value = item.get("value") or {}
        if item.get("type") == "number" and "number" in value:
            values[item.get("from_name")] = value["number"]
    if setup.valence.name not in values or setup.arousal.name not in values:
        return None
    return setup.valence.to_model(values[setup.valence.name]), setup.arousal.to_model(values[setup.arousal.name])


def human_regions(setup: LabelSetup, result: list[dict]) -> list[dict]:
    """The labelled segments of an annotation, as result items to copy into a prediction unchanged."""
    keep = {setup.timeline, setup.valence.name, setup.arousal.name}
    return [item for item in result if item.get("from_name") in keep]


# -- predictions -----------------------------------------------------------------------------------


def video_prediction(setup: LabelSetup, segments: list[Segment], kept: list[dict], score: float,
                     model_version: str) -> dict:
    """Predicted segments (0-based frames) + the human's regions -> one Label Studio prediction."""
    result = list(kept)
    for i, s in enumerate(segments):
        ranges = [{"start": s.start + 1, "end": s.end + 1}]
        rid = f"mtclar-{i}"
        common = {"id": rid, "to_name": setup.object_name, "origin": "prediction", "score": round(s.score, 4)}
        result += [
            {**common, "from_name": setup.timeline, "type": "timelinelabels",
             "value": {"ranges": ranges, "timelinelabels": [setup.label]}},
            {**common, "from_name": setup.valence.name, "type": "number",
             "value": {"ranges": ranges, "number": setup.valence.from_model(s.valence)}},
            {**common, "from_name": setup.arousal.name, "type": "number",
             "value": {"ranges": ranges, "number": setup.arousal.from_model(s.arousal)}},
        ]
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
