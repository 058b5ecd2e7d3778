"""Task media URL -> a local file: read from an allowed root, or fetched through Label Studio with the API key.

Never a path outside the configured roots; never an unauthenticated fetch from a host that is not
Label Studio's or explicitly allowed.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, unquote, urlparse

import httpx

from model.errors import MediaError

from .ls_api import LabelStudioAPI

log = logging.getLogger(__name__)


class MediaResolver:
    def __init__(self, cache_dir: Path, roots: tuple[Path, ...] = (), api: LabelStudioAPI | None = None,
                 hosts: tuple[str, ...] = ()):
        self.cache_dir = Path(cache_dir)
        self.roots = tuple(Path(r).resolve() for r in roots)
        self.api = api
        self.hosts = tuple(hosts)

    def local_path(self, url: str, task_id: int | None = None) -> Path:
        where = f"task {task_id}: " if task_id is not None else ""
        if not isinstance(url, str) or not url.strip():
            raise MediaError(f"{where}no media URL in the task data")
        url = url.strip()
        parsed = urlparse(url)
        if parsed.path.startswith("/data/local-files") or "/data/local-files" in parsed.path:
            relative = parse_qs(parsed.query).get("d", [""])[0]
            if not relative:
                raise MediaError(f"{where}{url}: no ?d= path")
            found = self._in_roots(unquote(relative), where)
            if found is not None:
                return found
            return self._via_label_studio(url, where)
        if parsed.path.startswith("/data/upload") or "/data/upload/" in parsed.path:
            return self._via_label_studio(url, where)
        if parsed.scheme in ("http", "https"):
            host = parsed.hostname or ""
            if self.api is not None and host == urlparse(self.api.url).hostname:
                return self._via_label_studio(url, where)
            if host in self.hosts:
                return self._fetch_public(url, where)
            raise MediaError(f"{where}{url}: host {host!r} is not Label Studio's and not in MTCLAR_MEDIA_HOSTS")
        if parsed.scheme in ("", "file"):
            found = self._in_roots(unquote(parsed.path), where, absolute=True)
            if found is None:
                raise MediaError(f"{where}{url}: not found in the media roots ({', '.join(map(str, self.roots))})")
            return found
        raise MediaError(f"{where}{url}: {parsed.scheme}:// media is not supported; serve it through a Label "
                         "Studio local-files or upload URL")

    def _in_roots(self, path: str, where: str, absolute: bool = False) -> Path | None:
        for root in self.roots:
            candidate = Path(path) if absolute and Path(path).is_absolute() else root / path.lstrip("/")
            resolved = candidate.resolve()
            if not resolved.is_relative_to(root):
                if absolute and Path(path).is_absolute():
                    continue
                raise MediaError(f"{where}{path}: resolves outside the media root {root}")
            if resolved.is_file():
                return resolved
        if absolute and Path(path).is_absolute() and Path(path).exists():
            raise MediaError(f"{where}{path}: outside the configured media roots")
        return None

    def _cached(self, url: str) -> Path:
        suffix = PurePosixPath(unquote(urlparse(url).path if "?d=" not in url else url.split("?d=")[-1])).suffix
        return self.cache_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:32]}{suffix[:8]}"

    def _via_label_studio(self, url: str, where: str) -> Path:
        if self.api is None:
            raise MediaError(f"{where}{url}: the file is on Label Studio; set LABEL_STUDIO_URL and "
                             "LABEL_STUDIO_API_KEY (or share the folder and set MTCLAR_MEDIA_ROOTS)")
        target = self._cached(url)
        if target.is_file() and target.stat().st_size > 0:
            return target
        try:
            return self.api.download(url, target)
        except MediaError as error:
            raise MediaError(f"{where}{error}") from None

    def _fetch_public(self, url: str, where: str) -> Path:
        target = self._cached(url)
        if target.is_file() and target.stat().st_size > 0:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with httpx.stream("GET", url, timeout=60, follow_redirects=False) as response:
                if response.status_code != 200:
                    raise MediaError(f"{where}{url}: HTTP {response.status_code}")
                with open(target.with_suffix(target.suffix + ".part"), "wb") as f:
                    for chunk in response.iter_bytes(1 << 20):
                        f.write(chunk)
        except httpx.HTTPError as error:
            raise MediaError(f"{where}{url}: unreachable ({error})") from error
        target.with_suffix(target.suffix + ".part").replace(target)
        return target
