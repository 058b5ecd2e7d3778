"""Calls to Label Studio through the maintained label-studio-sdk (auth: legacy token or personal access token)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import httpx

from model.errors import MediaError

log = logging.getLogger(__name__)


class LabelStudioAPI:
    def __init__(self, url: str, api_key: str, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

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

    def download(self, url: str, destination: Path) -> Path:
        """Stream ``url`` (absolute, or a path on Label Studio) with the API key into ``destination``."""
        full = url if url.startswith(("http://", "https://")) else f"{self.url}{url}"
        tmp = destination.with_name(destination.name + ".part")
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            with httpx.stream("GET", full, headers=self.headers(), timeout=self.timeout,
                              follow_redirects=True) as response:
                if response.status_code != 200:
                    raise MediaError(f"Label Studio answered {response.status_code} for {url}")
                with open(tmp, "wb") as f:
                    for chunk in response.iter_bytes(1 << 20):
                        f.write(chunk)
        except httpx.HTTPError as error:
            tmp.unlink(missing_ok=True)
            raise MediaError(f"cannot fetch {url} from Label Studio at {self.url}: {error}") from error
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        tmp.replace(destination)
        return destination
