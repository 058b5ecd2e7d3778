"""Task media URL -> a local file: read from an allowed root, or fetched through Label Studio with the API key.

The rules (README, "Media and credentials"):
- a relative URL (``/data/upload/...``, ``/data/local-files/?d=...``) or an absolute one on exactly Label
  Studio's origin (scheme, host and port of ``LABEL_STUDIO_URL``) is Label Studio's: local files are
  read from the media roots when they are there, anything else is fetched from Label Studio with the key;
- an http(s) URL on a host listed in ``MTCLAR_MEDIA_HOSTS`` is fetched without any credentials;
- a plain path is read from the media roots only, never outside them;
- everything else is refused, with one message whether or not the file exists.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from mtclar.model.errors import MediaError
from mtclar.model.files import stream_to_file

from .ls_api import LabelStudioAPI, origin

log = logging.getLogger(__name__)
LABEL_STUDIO_PATHS = ("/data/upload/", "/data/local-files")


class MediaResolver:
    def __init__(self, cache_dir: Path, roots: tuple[Path, ...] = (), api: LabelStudioAPI | None = None,
                 hosts: tuple[str, ...] = ()):
        self.cache_dir = Path(cache_dir)
        self.roots = tuple(Path(r).resolve() for r in roots)
        self.api = api
        self.hosts = tuple(h.lower() for h in hosts)

    def local_path(self, url: str, task_id: int | None = None, download: bool = True) -> Path | None:
        """The task's media as a local file; ``download=False``: None where that would need a download first."""
        where = f"task {task_id}: " if task_id is not None else ""
        if not isinstance(url, str) or not url.strip():
            raise MediaError(f"{where}no media URL in the task data")
        url = url.strip()
        try:
            parts = urlsplit(url)
        except ValueError:
            raise MediaError(f"{where}{url!r} is not a URL or path") from None
        scheme = parts.scheme.lower()
        on_label_studio = (not scheme and not parts.netloc) or (self.api is not None and self.api.same_origin(url))
        if on_label_studio and (scheme or parts.path.startswith(LABEL_STUDIO_PATHS)):
            if "/data/local-files" in parts.path:
                relative = parse_qs(parts.query).get("d", [""])[0]
                if not relative:
                    raise MediaError(f"{where}{url}: no ?d= path")
                if posixpath.normpath("/" + relative) != "/" + relative.lstrip("/").rstrip("/") and \
                        posixpath.normpath(relative.lstrip("/")).startswith(".."):
                    raise MediaError(f"{where}{url}: the path escapes the media roots")
                found = self._in_roots(relative, where)
                if found is not None:
                    return found
            return self._via_label_studio(url, parts, where, download)
        if scheme in ("http", "https"):
            host = (parts.hostname or "").lower()
            if host and host in self.hosts:
                return self._fetch_public(url, where, download)
            known = f"Label Studio's origin {self.api.url}" if self.api is not None else "no Label Studio configured"
            raise MediaError(f"{where}{url}: not on Label Studio's origin ({known}) and host {host!r} is not in "
                             "MTCLAR_MEDIA_HOSTS")
        if scheme in ("", "file") and not parts.netloc:
            found = self._in_roots(unquote(parts.path), where)
            if found is None:
                raise MediaError(f"{where}{url}: not found in the media roots")
            return found
        raise MediaError(f"{where}{url}: {scheme or 'this'} media is not supported; serve it through a Label "
                         "Studio local-files or upload URL")

    def _in_roots(self, path: str, where: str) -> Path | None:
        """The file inside a media root, or None. Absolute paths must lie inside a root; relative paths are
        taken from each root. Missing, unreadable and outside-the-roots files are all just "not found"."""
        for root in self.roots:
            candidate = Path(path) if Path(path).is_absolute() else root / path.lstrip("/")
            try:
                resolved = candidate.resolve()
            except (OSError, RuntimeError):  # a symlink loop
                continue
            if resolved.is_relative_to(root) and resolved.is_file():
                return resolved
        return None

    def _cached(self, url: str) -> Path:
        key = urlsplit(url)
        name = parse_qs(key.query).get("d", [key.path])[0]
        suffix = PurePosixPath(unquote(name)).suffix
        return self.cache_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:32]}{suffix[:8]}"

    def _via_label_studio(self, url: str, parts, where: str, download: bool = True) -> Path | None:
        if self.api is None:
            raise MediaError(f"{where}{url}: the file is on Label Studio; set LABEL_STUDIO_URL and "
                             "LABEL_STUDIO_API_KEY (or share the folder and set MTCLAR_MEDIA_ROOTS)")
        # relative URLs are joined to LABEL_STUDIO_URL; absolute ones were checked to be on its origin
        path = url if parts.scheme else parts.path + (f"?{parts.query}" if parts.query else "")
        target = self._cached(parts.path + (f"?{parts.query}" if parts.query else ""))
        if target.is_file() and target.stat().st_size > 0:
            return target
        if not download:
            return None
        try:
            return self.api.download(path, target)
        except MediaError as error:
            raise MediaError(f"{where}{error}") from None

    def _fetch_public(self, url: str, where: str, download: bool = True) -> Path | None:
        if origin(url) is None:
            raise MediaError(f"{where}{url}: not an http(s) URL")
        target = self._cached(url)
        if target.is_file() and target.stat().st_size > 0:
            return target
        if not download:
            return None
        try:
            with httpx.stream("GET", url, timeout=60, follow_redirects=False) as response:
                if response.status_code != 200:
                    raise MediaError(f"{where}{url}: HTTP {response.status_code}")
                return stream_to_file(response.iter_bytes(1 << 20), target)
        except httpx.HTTPError as error:
            raise MediaError(f"{where}{url}: unreachable ({error})") from error
