"""Calls to Label Studio through the maintained label-studio-sdk (auth: legacy token or personal access token).

The API key goes to one origin only: the scheme, host and port of ``LABEL_STUDIO_URL``. A download that
Label Studio redirects elsewhere (e.g. a presigned cloud-storage URL) is followed without the key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from mtclar.model.errors import MediaError, MtclarError
from mtclar.model.files import stream_to_file

log = logging.getLogger(__name__)
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_REDIRECTS = 5


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an absolute http(s) URL, with the default port filled in; None otherwise."""
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    except ValueError:  # a malformed port or IPv6 literal
        return None
    if scheme not in DEFAULT_PORTS or not host:
        return None
    return scheme, host, port or DEFAULT_PORTS[scheme]


@contextmanager
def label_studio_errors(url: str) -> Iterator[None]:
    """Label Studio's error answers and unreachable servers -> an MtclarError naming the server (for the CLI)."""
    from label_studio_sdk.core.api_error import ApiError

    try:
        yield
    except ApiError as error:
        raise MtclarError(f"Label Studio at {url} answered {error.status_code}: {str(error.body)[:300]}") from None
    except httpx.HTTPError as error:
        raise MtclarError(f"cannot reach Label Studio at {url}: {error}") from None


class LabelStudioAPI:
    def __init__(self, url: str, api_key: str, timeout: float = 60.0):
        self.url = url.rstrip("/")
        if origin(self.url) is None:
            raise ValueError(f"LABEL_STUDIO_URL={url!r} is not an http(s) URL with a host")
        self.api_key = api_key
        self.timeout = timeout

    @property
    def origin(self) -> tuple[str, str, int]:
        found = origin(self.url)
        assert found is not None
        return found

    def same_origin(self, url: str) -> bool:
        """True when ``url`` is absolute and on exactly Label Studio's scheme, host and port."""
        return origin(url) == self.origin

    @cached_property
    def client(self):
        from label_studio_sdk.client import LabelStudio

        return LabelStudio(base_url=self.url, api_key=self.api_key, timeout=self.timeout)

    def headers(self) -> dict[str, str]:
        """The SDK's auth header (it exchanges a personal access token for an access token when needed)."""
        headers = self.client._client_wrapper.get_headers()
        return {k: v for k, v in headers.items() if k.lower() in ("authorization", "x-api-key")}

    def iter_tasks(self, project: int) -> Iterator[dict]:
        """All tasks of a project with their annotations, as plain dicts."""
        for task in self.client.tasks.list(project=project, fields="all"):
            yield task.model_dump() if hasattr(task, "model_dump") else dict(task)

    def predictions(self, project: int) -> list[dict]:
        """Every prediction stored for a project's tasks, as plain dicts."""
        return [p.model_dump() if hasattr(p, "model_dump") else dict(p)
                for p in self.client.predictions.list(project=project)]

    def user_emails(self) -> dict[int, str]:
        """User id -> email, for naming annotators; empty when this key may not list users."""
        from label_studio_sdk.core.api_error import ApiError

        try:
            return {u.id: u.email for u in self.client.users.list() if u.id is not None and u.email}
        except (ApiError, httpx.HTTPError) as error:
            log.info("cannot list Label Studio users (%s): annotators are named by id", error)
            return {}

    def download(self, path: str, destination: Path) -> Path:
        """Stream a file on Label Studio (a path such as ``/data/upload/1/x.mp4``, or an absolute URL on its
        origin) into ``destination`` with the API key; redirects to another origin are followed without it."""
        url = path if origin(path) is not None else f"{self.url}/{path.lstrip('/')}"
        if not self.same_origin(url):
            raise MediaError(f"{path}: not on Label Studio's origin {self.url}: the API key is not sent there")
        try:
            for _ in range(MAX_REDIRECTS + 1):
                headers = self.headers() if self.same_origin(url) else {}
                with httpx.stream("GET", url, headers=headers, timeout=self.timeout,
                                  follow_redirects=False) as response:
                    if response.is_redirect:
                        target = urljoin(url, response.headers.get("location", ""))
                        if origin(target) is None:
                            raise MediaError(f"Label Studio redirected {path} to a non-http(s) URL")
                        url = target
                        continue
                    if response.status_code != 200:
                        raise MediaError(f"Label Studio answered {response.status_code} for {path}")
                    return stream_to_file(response.iter_bytes(1 << 20), destination)
            raise MediaError(f"{path}: more than {MAX_REDIRECTS} redirects")
        except httpx.HTTPError as error:
            raise MediaError(f"cannot fetch {path} from Label Studio at {self.url}: {error}") from error
