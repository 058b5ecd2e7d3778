"""A project's stored tasks and anchors -> per-video embeddings and anchors, for predict and fit.

Frame mode keeps only the frames it has (an image or an anchor), in time order, with their real times:
a frame number of a million costs one row, not a million.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mtclar.model.embeddings import VideoEmbeddings
from mtclar.model.errors import LabelConfigError, MediaError, MtclarError
from mtclar.model.video import VideoInfo

from .anchors import Anchors, expand
from .ls_format import LabelSetup, TaskMedia, parse_label_config

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger(__name__)
DEFAULT_FPS = 25.0


def media_fps(setup: LabelSetup, media: TaskMedia) -> float:
    return media.fps or setup.fps_value or DEFAULT_FPS


@dataclass
class FrameRows:
    """Frame tasks of one video as a compact sequence: row i is frame ``frames[i]``."""

    frames: np.ndarray  # (R,) sorted 0-based frame numbers
    embeddings: VideoEmbeddings  # R rows, time_s = frames / fps

    def row(self, frame: int) -> int:
        return int(np.searchsorted(self.frames, frame))

    def anchors(self, anchors: Anchors) -> Anchors:
        """Frame-numbered anchors -> row-numbered anchors (frames without a row are dropped)."""
        present = set(self.frames.tolist())
        return {self.row(f): va for f, va in anchors.items() if f in present}


def frame_rows(images: dict[int, VideoEmbeddings], extra_frames: Iterable[int], fps: float) -> FrameRows:
    """One-image embeddings per frame (+ frames with only an anchor, no image) -> one compact sequence."""
    frames = np.array(sorted(set(images) | set(extra_frames)), dtype=int)
    n = len(frames)
    if not images:
        raise MtclarError("no frame images to assemble")
    first = next(iter(images.values()))
    dim, classes = first.embeddings.shape[1], first.expression_probs.shape[1]
    info = VideoInfo("frames", n, fps, first.info.width, first.info.height, first.info.content_id)
    out = VideoEmbeddings(
        info, np.zeros(n, dtype=bool), np.zeros(n, dtype=np.float32), np.full((n, 4), np.nan, np.float32),
        np.full((n, 5, 2), np.nan, np.float32), np.full((n, dim), np.nan, np.float32),
        np.full((n, classes), np.nan, np.float32), first.encoder, first.weights_id, frames)
    for i, frame in enumerate(frames):
        one = images.get(int(frame))
        if one is None:
            continue
        out.has_face[i], out.face_score[i] = one.has_face[0], one.face_score[0]
        out.boxes[i], out.landmarks[i] = one.boxes[0], one.landmarks[0]
        out.embeddings[i], out.expression_probs[i] = one.embeddings[0], one.expression_probs[0]
    return FrameRows(frames, out)


def project_setup(runtime: Runtime, project: int) -> LabelSetup:
    state = runtime.store.get_state(project, "setup")
    if not state or not state.get("label_config"):
        raise LabelConfigError(f"project {project}: no labelling config known yet (Label Studio sends it on /setup)")
    return parse_label_config(state["label_config"])


def stored_media(runtime: Runtime, project: int, key: str) -> list[TaskMedia]:
    """The stored tasks of a video key; rows stored before validation existed that lack a URL are skipped."""
    out = []
    for task_id, frame, data in runtime.store.tasks(project, key):
        url = data.get("url") if isinstance(data, dict) else None
        if isinstance(url, str) and url:
            fps = data.get("fps")
            out.append(TaskMedia(task_id, key, url, frame, fps if isinstance(fps, int | float) else None))
    return out


def project_videos(runtime: Runtime, project: int) -> tuple[list[tuple[str, VideoEmbeddings, Anchors]], dict[str, str]]:
    """(name, embeddings, anchors) for every video of the project with anchors, and {video: why} for those
    that could not be used (media gone, no face): a fine-tune reports them and goes on with the rest."""
    setup = project_setup(runtime, project)
    found, skipped = [], {}
    for key in runtime.store.video_keys(project):
        spans = runtime.store.spans(project, key)
        media = stored_media(runtime, project, key)
        if not media:
            skipped[key] = f"{key}: no stored task with a media URL"
            continue
        try:
            if setup.mode == "video":
                embeddings = runtime.video_embeddings(media[0])
                anchors = expand(spans, embeddings.n_frames)
            else:
                frame_anchors = expand(spans, runtime.config.max_frame + 1)
                images = {m.frame: runtime.image_embeddings(m) for m in media if m.frame in frame_anchors}
                if not images:
                    skipped[key] = f"{key}: no image for any labelled frame"
                    continue
                rows = frame_rows(images, (), media_fps(setup, media[0]))
                embeddings, anchors = rows.embeddings, rows.anchors(frame_anchors)
        except MediaError as error:
            skipped[key] = str(error)
            log.warning("project %s: %s is skipped: %s", project, key, error)
            continue
        if anchors:
            found.append((key, embeddings, anchors))
        else:
            skipped[key] = f"{key}: no anchor inside the video"
    return found, skipped
