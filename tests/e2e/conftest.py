"""Fixtures for end-to-end tests against a real Label Studio 1.23.2 (and a real headless Chromium).

- ``label_studio`` (session): ``(server, client)``; one Label Studio for the whole session, with a
  fresh data dir and a document root for local files at ``server.document_root`` (copy media there).
- ``chromium`` (session): a callable ``chromium(server, project, task, screenshot, **options) -> report``
  running ``browser/open_task.mjs`` (see ``label_studio.open_task_in_browser``: options, report).

To connect an ML backend (Label Studio must reach it, so bind 127.0.0.1): pick ``ls.free_port()``,
start the backend (thread or subprocess), ``ls.wait_until_up(f"{url}/health")``, then
``client.connect_ml_backend(project_id, url)``; Label Studio calls /health and /setup on connect.

Every test in this folder is marked ``e2e`` and ``slow``; tests that use ``chromium`` also ``browser``.
When Label Studio, node/playwright-core or Chromium is missing the tests are skipped with the reason,
unless ``MTCLAR_REQUIRE_E2E=1`` (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import label_studio as ls  # noqa: E402  (tests/e2e/label_studio.py, not Label Studio's own package)

E2E_DIR = Path(__file__).resolve().parent
if Path(ls.__file__).resolve().parent != E2E_DIR:
    raise ImportError(
        f"`import label_studio` found {ls.__file__}, not {E2E_DIR / 'label_studio.py'}: "
        "is Label Studio installed into the test venv? It must live in its own venv"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR not in Path(item.path).resolve().parents:
            continue
        item.add_marker(pytest.mark.e2e)
        item.add_marker(pytest.mark.slow)
        if "chromium" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)


def _skip_or_fail(reason: str) -> None:
    if ls.e2e_required():
        pytest.fail(f"{ls.REQUIRE_ENV}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def label_studio(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ls.LabelStudioServer, ls.LabelStudioClient]]:
    available, reason = ls.is_available()
    if not available:
        _skip_or_fail(reason)
    document_root = tmp_path_factory.mktemp("ls-document-root")
    base = tmp_path_factory.mktemp("label-studio")
    server = ls.LabelStudioServer(document_root, data_dir=base / "data", log_path=base / "label-studio.log")
    server.start()
    print(f"\n[e2e] Label Studio {server.url} ready in {server.startup_seconds:.1f} s, log {server.log_path}")
    try:
        yield server, ls.LabelStudioClient(server.url, server.token)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def chromium() -> Callable[..., dict[str, Any]]:
    available, reason = ls.browser_available()
    if not available:
        _skip_or_fail(reason)

    def open_task(
        server: ls.LabelStudioServer, project: int, task: int, screenshot: str | Path, **options: Any
    ) -> dict[str, Any]:
        return ls.open_task_in_browser(server, project, task, screenshot, **options)

    return open_task
