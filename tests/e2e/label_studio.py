"""Run a real Label Studio 1.23.2 on loopback for end-to-end tests, and talk to it over its REST API.

No pytest in here: the fixtures live in ``conftest.py``; scripts and benchmarks may use this module too.

    with LabelStudioServer(document_root=tmp) as server:
        client = LabelStudioClient(server.url, server.token)
        project = client.create_project("p", VIDEO_LABEL_CONFIG)

Label Studio lives in its own venv (``scripts/install_label_studio.sh``, default ``<repo>/.venv-ls``);
``MTCLAR_LABEL_STUDIO_BIN`` points at another ``label-studio`` executable. The environment of the
server is the one in the design doc (mtclar.md section 3, "Running Label Studio in tests"): a fixed user, password
and legacy API token, local-files serving under a caller-given document root, and no SSRF/local-IP
blocking so that an ML backend on 127.0.0.1 can be connected.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import requests

from mtclar_backend import label_configs

REPO_ROOT = Path(__file__).resolve().parents[2]
LABEL_STUDIO_VERSION = "1.23.2"
BIN_ENV = "MTCLAR_LABEL_STUDIO_BIN"
REQUIRE_ENV = "MTCLAR_REQUIRE_E2E"
DEFAULT_BIN = REPO_ROOT / ".venv-ls" / "bin" / "label-studio"
BROWSER_DIR = Path(__file__).resolve().parent / "browser"
OPEN_TASK_SCRIPT = BROWSER_DIR / "open_task.mjs"
CHROMIUM_ENV = "MTCLAR_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"

DEFAULT_USERNAME = "e2e@example.com"
DEFAULT_PASSWORD = "mtclar-e2e-password"
# Legacy tokens are Django REST framework tokens: at most 40 characters.
DEFAULT_TOKEN = "mtclare2e0000000000000000000000000000000"



VIDEO_LABEL_CONFIG = label_configs.VIDEO
FRAME_LABEL_CONFIG = label_configs.FRAME


class LabelStudioError(RuntimeError):
    """Label Studio could not be started, or answered an API call with a non-2xx status."""


def find_label_studio_bin() -> Path:
    """The label-studio executable: ``$MTCLAR_LABEL_STUDIO_BIN``, else ``<repo>/.venv-ls/bin/label-studio``."""
    configured = os.environ.get(BIN_ENV)
    return Path(configured).expanduser() if configured else DEFAULT_BIN


def e2e_required() -> bool:
    """True when ``MTCLAR_REQUIRE_E2E=1``: a missing Label Studio must fail the tests, not skip them."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes"}


def is_available() -> tuple[bool, str]:
    """Whether a Label Studio executable is installed, and if not, why (for ``pytest.skip``)."""
    binary = find_label_studio_bin()
    source = f"${BIN_ENV}" if os.environ.get(BIN_ENV) else "the default location"
    if not binary.exists():
        return False, (
            f"Label Studio not installed: {binary} (from {source}) does not exist; "
            f"run scripts/install_label_studio.sh or set {BIN_ENV}"
        )
    if not os.access(binary, os.X_OK):
        return False, f"Label Studio executable {binary} (from {source}) is not executable"
    return True, f"label-studio at {binary}"


def chromium_path() -> Path:
    return Path(os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM)


def browser_available() -> tuple[bool, str]:
    """Whether node, playwright-core (``npm ci`` in tests/e2e/browser) and Chromium are installed."""
    node = shutil.which("node")
    if node is None:
        return False, "node (>= 20) is not on PATH; see scripts/install_e2e_deps.sh"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    if not version.startswith("v") or int(version[1:].split(".")[0]) < 20:
        return False, f"node {version or '?'} is too old: playwright-core needs node >= 20"
    if not (BROWSER_DIR / "node_modules" / "playwright-core" / "package.json").exists():
        return False, f"playwright-core is not installed: run `npm ci` in {BROWSER_DIR}"
    chromium = chromium_path()
    if not (chromium.exists() and os.access(chromium, os.X_OK)):
        return False, f"no Chromium at {chromium} (apt-get install -y chromium, or set {CHROMIUM_ENV})"
    return True, f"node + playwright-core + {chromium}"


def open_task_in_browser(
    server: LabelStudioServer,
    project: int,
    task: int,
    screenshot: str | os.PathLike[str],
    *,
    submit: bool = False,
    select_region: bool = False,
    expect_regions: int | None = None,
    expect_controls: dict[str, str] | None = None,
    step_timeout: float = 60.0,
    timeout: float = 240.0,
    curve: bool = False,
) -> dict[str, Any]:
    """Run ``browser/open_task.mjs`` on one task and return its JSON report.

    ``expect_regions`` / ``expect_controls`` (``{"valence": "0.12"}``, values as the input shows them)
    make the script wait for that state and fail the step with what it saw instead. ``curve``: the task's
    config has a TimeSeries synced with the Video; the report's ``curve`` then holds the plots as drawn and
    their state after a seek of the video and after a click on the plot (see the script's header).

    The report has ``ok``, ``failed_step``, ``error``, ``editor_loaded``, ``media`` (``kind``, ``videos``
    with ``ready_state``/``duration``, ``images``), ``frame_count``, ``regions``, ``region_labels``,
    ``selected_region``, ``controls`` (values of the Number tags' inputs by tag name, e.g.
    ``{"valence": "0.12", "arousal": "-0.3"}``; per-region ones only with ``select_region``),
    ``submit_button``, ``submitted`` (``method``, ``status``, ``annotation_id``, ``result_count``),
    ``console_errors``, ``fatal_errors``, ``page_errors``, ``http_errors``, ``warnings``,
    ``expected_tabs``/``annotation_tabs`` (annotations + predictions the editor mounted), ``timings_ms``, and
    ``stderr`` (the script's progress log) and ``returncode``. It never raises on a failed step: check
    ``report["ok"]`` and show ``report["error"]``.
    """
    command = [
        "node", str(OPEN_TASK_SCRIPT), server.url, server.username, server.password,
        str(project), str(task), str(screenshot), "--step-timeout-ms", str(int(step_timeout * 1000)),
    ]  # fmt: skip
    if submit:
        command.append("--submit")
    if select_region:
        command.append("--select-region")
    if curve:
        command.append("--curve")
    if expect_regions is not None:
        command += ["--expect-regions", str(expect_regions)]
    for name, value in (expect_controls or {}).items():
        command += ["--expect-control", f"{name}={value}"]
    env = {**os.environ, CHROMIUM_ENV: str(chromium_path())}
    try:
        done = subprocess.run(
            command, cwd=BROWSER_DIR, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        return {
            "ok": False, "failed_step": "timeout", "returncode": None,
            "error": f"open_task.mjs ran past {timeout:.0f} s",
            "stderr": (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes)
            else (exc.stderr or ""),
        }  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {
            "ok": False, "failed_step": "no-report", "returncode": done.returncode,
            "error": f"open_task.mjs printed no JSON report (exit {done.returncode})",
            "stdout": done.stdout[-4000:], "stderr": done.stderr[-4000:],
        }  # fmt: skip
    report = json.loads(lines[-1])
    report["returncode"] = done.returncode
    report["stderr"] = done.stderr[-4000:]
    return report


def wait_until_up(url: str, timeout: float = 60.0, ok_statuses: Iterable[int] = (200,)) -> None:
    """Poll ``url`` with GET until it answers one of ``ok_statuses`` (e.g. an ML backend's /health)."""
    statuses = set(ok_statuses)
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = requests.get(url, timeout=5)
            if response.status_code in statuses:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except requests.RequestException as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s (last: {last})")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now (another process could still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file ('' when it does not exist)."""
    try:
        with open(path, errors="replace") as handle:
            return "".join(collections.deque(handle, maxlen=lines))
    except FileNotFoundError:
        return ""


class LabelStudioServer:
    """A Label Studio process on 127.0.0.1 with a fresh data dir, stopped on exit.

    Attributes once started: ``url`` (``http://127.0.0.1:PORT``), ``port``, ``token``, ``username``,
    ``password``, ``log_path``, ``data_dir``, ``document_root``, ``startup_seconds``.
    """

    def __init__(
        self,
        document_root: str | os.PathLike[str],
        *,
        binary: str | os.PathLike[str] | None = None,
        port: int | None = None,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        token: str = DEFAULT_TOKEN,
        data_dir: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 180.0,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.document_root = Path(document_root).resolve()
        self.binary = Path(binary) if binary else find_label_studio_bin()
        self.port = port
        self.username = username
        self.password = password
        self.token = token
        self._data_dir_arg = Path(data_dir) if data_dir else None
        self._log_path_arg = Path(log_path) if log_path else None
        self.startup_timeout = startup_timeout
        self.extra_env = dict(extra_env or {})
        self.data_dir: Path | None = None
        self.log_path: Path | None = None
        self.startup_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise LabelStudioError("Label Studio is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def environment(self) -> dict[str, str]:
        """The process environment: the caller's, minus any inherited Label Studio settings, plus ours."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("LABEL_STUDIO_", "DJANGO_"))
            and key not in {"ML_BLOCK_LOCAL_IP", "SSRF_PROTECTION_ENABLED", "USERNAME", "PASSWORD"}
        }
        env.update(
            {
                "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
                "LABEL_STUDIO_USERNAME": self.username,
                "LABEL_STUDIO_PASSWORD": self.password,
                "LABEL_STUDIO_USER_TOKEN": self.token,
                "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
                "LATEST_VERSION_CHECK": "false",
                "COLLECT_ANALYTICS": "false",
                "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
                "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(self.document_root),
                "ML_BLOCK_LOCAL_IP": "false",
                "SSRF_PROTECTION_ENABLED": "false",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self) -> LabelStudioServer:
        if self.running:
            return self
        if not (self.binary.is_file() and os.access(self.binary, os.X_OK)):
            raise LabelStudioError(
                f"no executable label-studio at {self.binary}; run scripts/install_label_studio.sh or set {BIN_ENV}"
            )
        self.document_root.mkdir(parents=True, exist_ok=True)
        if self._data_dir_arg is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mtclar-ls-")
            self.data_dir = Path(self._tmp.name) / "data"
        else:
            self.data_dir = self._data_dir_arg
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._log_path_arg is not None:
            self.log_path = self._log_path_arg
        else:  # outside the data dir, so that it survives stop() for a post-mortem
            handle, name = tempfile.mkstemp(prefix="mtclar-label-studio-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port()

        command = [
            str(self.binary), "start", "--no-browser",
            "--internal-host", "127.0.0.1", "--port", str(self.port),
        ]  # fmt: skip
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log_file.write(f"$ {' '.join(command)}\n".encode())
        self._log_file.flush()
        started = time.monotonic()
        self._process = subprocess.Popen(
            command,
            cwd=self.data_dir,
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_until_ready(started)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _wait_until_ready(self, started: float) -> None:
        """Poll until the health page answers and the API accepts the token."""
        deadline = started + self.startup_timeout
        last_error = "no answer yet"
        session = requests.Session()
        while True:
            code = self._process.poll() if self._process else None
            if code is not None:
                raise LabelStudioError(
                    f"Label Studio exited with code {code} during start-up (log {self.log_path}):\n"
                    + tail(self.log_path)
                )
            try:
                health = session.get(f"{self.url}/health", timeout=5)
                if health.status_code == 200:
                    me = session.get(
                        f"{self.url}/api/current-user/whoami",
                        headers={"Authorization": f"Token {self.token}"},
                        timeout=10,
                    )
                    if me.status_code == 200:
                        return
                    last_error = f"GET /api/current-user/whoami -> {me.status_code} {me.text[:200]}"
                else:
                    last_error = f"GET /health -> {health.status_code}"
            except requests.RequestException as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                raise LabelStudioError(
                    f"Label Studio did not answer on {self.url} within {self.startup_timeout:.0f} s "
                    f"(last: {last_error}); log {self.log_path}, last 40 lines:\n" + tail(self.log_path)
                )
            time.sleep(0.5)

    def stop(self, timeout: float = 15.0) -> None:
        """Terminate the whole process group (label-studio spawns workers), then kill what is left."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=timeout)
        if process is not None:
            # Workers left in the group after the leader exited.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines) if self.log_path else ""

    def __enter__(self) -> LabelStudioServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class LabelStudioClient:
    """A thin requests client for the Label Studio 1.23.2 REST API (calls checked against a live server)."""

    def __init__(self, url: str, token: str, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send a request; raise ``LabelStudioError`` with the response body on a non-2xx status."""
        kwargs.setdefault("timeout", self.timeout)
        response = self.session.request(method, f"{self.url}{path}", **kwargs)
        if not 200 <= response.status_code < 300:
            raise LabelStudioError(f"{method} {path} -> {response.status_code}: {response.text[:2000]}")
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        return response.json() if response.content else None

    # Projects and storage ---------------------------------------------------------------------------

    def create_project(self, title: str, label_config: str, **fields: Any) -> dict[str, Any]:
        return self._json("POST", "/api/projects", json={"title": title, "label_config": label_config, **fields})

    def get_project(self, project: int) -> dict[str, Any]:
        return self._json("GET", f"/api/projects/{project}")

    def add_local_storage(
        self,
        project: int,
        path: str | os.PathLike[str],
        *,
        title: str = "local files",
        regex_filter: str | None = None,
        use_blob_urls: bool = True,
        sync: bool = False,
    ) -> dict[str, Any]:
        """Register a local-files source storage; ``path`` must be inside the server's document root.

        The storage is what lets ``/data/local-files/?d=...`` URLs be served for this project. With
        ``sync=True`` every matching file also becomes a task (one per file, ``use_blob_urls``).
        """
        body: dict[str, Any] = {
            "project": project,
            "path": str(path),
            "title": title,
            "use_blob_urls": use_blob_urls,
        }
        if regex_filter is not None:
            body["regex_filter"] = regex_filter
        storage = self._json("POST", "/api/storages/localfiles", json=body)
        if sync:
            storage = self.sync_local_storage(storage["id"])
        return storage

    def sync_local_storage(self, storage_id: int) -> dict[str, Any]:
        return self._json("POST", f"/api/storages/localfiles/{storage_id}/sync")

    # Tasks --------------------------------------------------------------------------------------------

    def import_tasks(
        self, project: int, tasks: Sequence[dict[str, Any]], return_task_ids: bool = True
    ) -> list[int] | dict[str, Any]:
        """Import tasks (dicts with a ``data`` key, or bare data dicts); the new task ids by default."""
        params = {"return_task_ids": "true"} if return_task_ids else None
        answer = self._json("POST", f"/api/projects/{project}/import", json=list(tasks), params=params)
        return list(answer["task_ids"]) if return_task_ids else answer

    def get_task(self, task_id: int) -> dict[str, Any]:
        return self._json("GET", f"/api/tasks/{task_id}")

    def list_tasks(self, project: int, page_size: int = 100) -> list[dict[str, Any]]:
        """All tasks of a project, every page, each with its ``annotations`` and ``predictions``."""
        tasks: list[dict[str, Any]] = []
        page = 1
        while True:
            response = self.session.get(
                f"{self.url}/api/tasks",
                params={"project": project, "page": page, "page_size": page_size, "fields": "all"},
                timeout=self.timeout,
            )
            if response.status_code == 404 and page > 1:  # past the last page
                break
            if not 200 <= response.status_code < 300:
                raise LabelStudioError(
                    f"GET /api/tasks?project={project}&page={page} -> {response.status_code}: {response.text[:2000]}"
                )
            body = response.json()
            batch = body["tasks"] if isinstance(body, dict) else body
            tasks.extend(batch)
            total = body.get("total") if isinstance(body, dict) else None
            if not batch or len(batch) < page_size or (total is not None and len(tasks) >= total):
                break
            page += 1
        return tasks

    # Annotations -------------------------------------------------------------------------------------

    def create_annotation(self, task_id: int, result: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
        return self._json("POST", f"/api/tasks/{task_id}/annotations", json={"result": result, **fields})

    def get_annotation(self, annotation_id: int) -> dict[str, Any]:
        return self._json("GET", f"/api/annotations/{annotation_id}")

    def update_annotation(self, annotation_id: int, result: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
        return self._json("PATCH", f"/api/annotations/{annotation_id}", json={"result": result, **fields})

    def delete_annotation(self, annotation_id: int) -> None:
        self.request("DELETE", f"/api/annotations/{annotation_id}")

    def list_annotations(self, task_id: int) -> list[dict[str, Any]]:
        return self._json("GET", f"/api/tasks/{task_id}/annotations")

    # ML backends and predictions ---------------------------------------------------------------------

    def connect_ml_backend(self, project: int, url: str, title: str = "mtclar", **fields: Any) -> int:
        """Connect an ML backend; Label Studio calls its /health and /setup before answering."""
        body = {"project": project, "url": url, "title": title, **fields}
        return self._json("POST", "/api/ml", json=body)["id"]

    def get_ml(self, ml_id: int) -> dict[str, Any]:
        """The ML backend's record; this also makes Label Studio re-run /health and /setup."""
        return self._json("GET", f"/api/ml/{ml_id}")

    def list_ml(self, project: int) -> list[dict[str, Any]]:
        return self._json("GET", "/api/ml", params={"project": project})

    def train(self, ml_id: int) -> Any:
        """Ask Label Studio to send START_TRAINING to the backend (always 200 in 1.23.2)."""
        return self._json("POST", f"/api/ml/{ml_id}/train")

    def dm_action(self, project: int, action: str, selected: Iterable[int] | None = None) -> dict[str, Any]:
        """Run a data-manager action on all tasks, or on the ``selected`` task ids."""
        items = {"all": True, "excluded": []} if selected is None else {"all": False, "included": list(selected)}
        return self._json(
            "POST",
            "/api/dm/actions",
            params={"id": action, "project": project},
            json={"selectedItems": items},
        )

    def retrieve_predictions(self, project: int, selected: Iterable[int] | None = None) -> dict[str, Any]:
        """ "Retrieve predictions": asks the backend for tasks without a prediction of its model_version."""
        return self.dm_action(project, "retrieve_tasks_predictions", selected)

    def list_predictions(self, *, task: int | None = None, project: int | None = None) -> list[dict[str, Any]]:
        if (task is None) == (project is None):
            raise ValueError("give exactly one of task= or project=")
        params = {"task": task} if task is not None else {"project": project}
        return self._json("GET", "/api/predictions", params=params)

    def create_prediction(
        self, task_id: int, result: list[dict[str, Any]], score: float | None = None, model_version: str = ""
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"task": task_id, "result": result, "model_version": model_version}
        if score is not None:
            body["score"] = score
        return self._json("POST", "/api/predictions", json=body)

    def delete_predictions(self, project: int, selected: Iterable[int] | None = None) -> dict[str, Any]:
        return self.dm_action(project, "delete_tasks_predictions", selected)
