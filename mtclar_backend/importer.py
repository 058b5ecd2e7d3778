"""Videos or frame folders -> Label Studio tasks, so a lab starts labelling in one command.

Video mode: one task per video ``{video, fps}``. Frame mode: one task per frame ``{image, video_id, frame}``
(a folder of numbered images is one video; a folder of such folders is several). Media either stay where
they are, served by Label Studio's local-files storage (they must lie under its document root), or are
uploaded through the API.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from mtclar.model.errors import MediaError, MtclarError
from mtclar.model.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, list_frame_images, probe_video

from .curve import CurveSpec, placeholder_curve
from .ls_api import LabelStudioAPI

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MediaItem:
    path: Path
    data: dict  # task data without the media URL


def plan_items(paths: list[Path], mode: str) -> list[MediaItem]:
    """What to import, checked before anything is sent: every video decodes, every frame folder has frames."""
    items: list[MediaItem] = []
    for path in paths:
        if mode == "video":
            if path.is_dir():
                files = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
                if not files:
                    raise MediaError(f"{path}: no video files ({', '.join(VIDEO_EXTENSIONS)})")
            else:
                files = [path]
            for file in files:
                info = probe_video(file)
                items.append(MediaItem(file, {"fps": round(info.fps, 6), "frames": info.n_frames}))
        else:
            if not path.is_dir():
                raise MediaError(f"{path}: frame mode takes folders of numbered frame images")
            folders = sorted(p for p in path.iterdir() if p.is_dir())
            has_images = any(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.iterdir())
            for folder in ([path] if has_images or not folders else folders):
                for frame, image in sorted(list_frame_images(folder).items()):
                    items.append(MediaItem(image, {"video_id": folder.name, "frame": frame}))
    return items


class Importer:
    def __init__(self, api: LabelStudioAPI, project: int, value_key: str,
                 on_progress: Callable[[int, int], None] | None = None, curve: CurveSpec | None = None):
        self.api, self.project, self.value_key = api, project, value_key
        self.on_progress = on_progress
        self.curve = curve  # the config's TimeSeries: each task starts with a flat curve until it is predicted

    def _post(self, path: str, **kwargs) -> httpx.Response:
        response = httpx.post(f"{self.api.url}{path}", headers=self.api.headers(), timeout=300, **kwargs)
        if response.status_code >= 300:
            raise MtclarError(f"Label Studio answered {response.status_code} to POST {path}: {response.text[:300]}")
        return response

    def urls_local(self, items: list[MediaItem], document_root: Path) -> list[str]:
        """Media under Label Studio's LOCAL_FILES_DOCUMENT_ROOT: one local-files storage per folder, no sync."""
        root = document_root.resolve()
        folders: set[Path] = set()
        urls = []
        for item in items:
            path = item.path.resolve()
            if not path.is_relative_to(root):
                raise MediaError(f"{item.path} is not under the document root {root}: copy it there, or import "
                                 "without --document-root to upload it")
            folders.add(path.parent)
            urls.append(f"/data/local-files/?d={path.relative_to(root).as_posix()}")
        existing = {s.get("path") for s in self._storages()}
        for folder in sorted(folders):
            if str(folder) not in existing:
                self._post("/api/storages/localfiles", json={
                    "project": self.project, "path": str(folder), "title": f"mtclar {folder.name}",
                    "use_blob_urls": True, "regex_filter": "^$"})
        return urls

    def _storages(self) -> list[dict]:
        response = httpx.get(f"{self.api.url}/api/storages/localfiles", params={"project": self.project},
                             headers=self.api.headers(), timeout=60)
        return response.json() if response.status_code == 200 else []

    def urls_upload(self, items: list[MediaItem]) -> list[str]:
        urls = []
        for i, item in enumerate(items):
            with open(item.path, "rb") as f:
                answer = self._post(f"/api/projects/{self.project}/import", params={"commit_to_project": "false"},
                                    files={"file": (item.path.name, f)}).json()
            upload_id = answer["file_upload_ids"][0]
            upload = self.api.client.files.get(upload_id)
            urls.append(f"/data/{upload.file}")
            if self.on_progress:
                self.on_progress(i + 1, len(items))
        return urls

    def _curve(self, item: MediaItem) -> dict:
        if self.curve is None:
            return {}
        fps, frames = item.data.get("fps"), item.data.get("frames")
        duration = (frames - 1) / fps if fps and frames else 1.0
        return {self.curve.data_key: placeholder_curve(self.curve.columns, duration)}

    def create_tasks(self, items: list[MediaItem], urls: list[str]) -> list[int]:
        tasks = [{self.value_key: url, **item.data, **self._curve(item)} for item, url in zip(items, urls, strict=True)]
        answer = self._post(f"/api/projects/{self.project}/import", params={"return_task_ids": "true"},
                            json=tasks).json()
        return list(answer.get("task_ids") or [])
