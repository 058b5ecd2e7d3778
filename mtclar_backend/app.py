"""The ML-backend HTTP protocol Label Studio speaks: /health, /setup, /predict, /webhook, /versions, /job_status,
/metrics; and /report, a page for people.

Every body goes through ``payload`` (the validation edge) before anything else sees it; the backend's own
errors map to 4xx with their message, and only bugs become 500s.
"""

from __future__ import annotations

import hmac
import logging
import time

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from mtclar.model.errors import (
    AnchorError,
    CheckpointError,
    ConfigError,
    DataError,
    LabelConfigError,
    MediaError,
    MtclarError,
    PayloadError,
    PayloadTooLarge,
)

from . import __version__
from .agreement import project_agreement
from .model import MTCLARModel
from .payload import JobStatusRequest, PredictRequest, ProjectId, SetupRequest, WebhookRequest, parse, read_json
from .project_cache import ProjectCache, digest
from .project_data import project_setup
from .report import build_report
from .report_html import render
from .runtime import Runtime

log = logging.getLogger(__name__)
STATUS = {PayloadTooLarge: 413, PayloadError: 400, LabelConfigError: 400, AnchorError: 400, DataError: 400,
          ConfigError: 400, MediaError: 422, CheckpointError: 500}
MAX_CACHED_PROJECTS = 32  # projects whose agreement and rendered report are kept
HANDLED_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATION_DELETED", "ANNOTATIONS_DELETED",
                  "START_TRAINING")


def create_app(runtime: Runtime) -> Flask:
    app = Flask("mtclar_backend")
    app.config["runtime"] = runtime
    config = runtime.config
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes

    @app.before_request
    def basic_auth():
        if not config.basic_auth_user or (request.path in ("/", "/health") and not request.args):
            return None  # liveness is public: it tells nothing but "UP" (Docker's HEALTHCHECK has no password)
        auth = request.authorization
        ok = auth is not None and _same(auth.username, config.basic_auth_user) and \
            _same(auth.password, config.basic_auth_pass)
        if not ok:
            return Response("authentication required", 401, {"WWW-Authenticate": 'Basic realm="mtclar"'})
        return None

    @app.errorhandler(MtclarError)
    def known_error(error: MtclarError):
        status = next((code for kind, code in STATUS.items() if isinstance(error, kind)), 400)
        return jsonify({"status": "error", "error": type(error).__name__, "message": str(error)}), status

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        if isinstance(error, HTTPException):
            return jsonify({"status": "error", "message": error.description}), error.code
        log.exception("unexpected error on %s", request.path)
        return jsonify({"status": "error", "error": type(error).__name__, "message": str(error)}), 500

    def body() -> dict:
        return read_json(request.get_data(cache=False))

    def project_arg() -> int | None:
        raw = request.args.get("project")
        if raw in (None, ""):
            return None
        from pydantic import TypeAdapter, ValidationError

        try:
            return TypeAdapter(ProjectId).validate_python(raw)
        except ValidationError:
            raise PayloadError(f"project: {raw[:40]!r} is not a project id") from None

    @app.get("/")
    @app.get("/health")
    def health():
        """Never waits for model work: it reads the loaded model's name and, with ?project=, the stored state."""
        out = {"status": "UP", "model_class": "MTCLARModel", "version": __version__,
               "base_model": runtime.base.model_version, "device": runtime.base.placement}
        project = project_arg()
        if project is not None:
            out["model_version"] = runtime.model_version(project)
            out["training"] = runtime.jobs.state(project)
            out["embedding"] = runtime.embeddings.progress(project)
        return jsonify(out)

    @app.post("/setup")
    def setup():
        data = parse(SetupRequest, body())
        model = MTCLARModel(runtime, data.project, data.config)
        if model.label_setup is None:
            raise LabelConfigError("/setup needs the project's labelling config in 'schema'")
        model.remember_setup()
        model.backfill(runtime.api_for_setup(data.hostname, data.access_token))
        return jsonify({"model_version": model.model_version, "mode": model.label_setup.mode})

    @app.post("/predict")
    def predict():
        received = time.perf_counter()  # the budget counts from here: reading 10,000 tasks takes a while
        data = parse(PredictRequest, body(), max_tasks=config.max_tasks)
        model = MTCLARModel(runtime, data.project, data.label_config)
        return jsonify(model.predict(data.tasks, context=data.interactive_context, received=received))

    @app.post("/webhook")
    def webhook():
        raw = body()
        action = raw.get("action")
        if not isinstance(action, str) or not action:
            raise PayloadError("action: a webhook needs an 'action' (a string)")
        if action not in HANDLED_EVENTS:
            return jsonify({"status": "ignored", "action": action})
        data = parse(WebhookRequest, raw)
        started = time.perf_counter()
        project = data.project
        model = MTCLARModel(runtime, project.id if project else None, project.label_config if project else None)
        result = model.fit(action, data)
        return jsonify({"status": "ok", "action": action, "seconds": round(time.perf_counter() - started, 3),
                        **result}), 201

    @app.get("/versions")
    def versions():
        """The model versions this backend can serve: the base model and the project's kept fine-tunes."""
        project = project_arg()
        return jsonify({"versions": runtime.model_versions(project),
                        **({"model_version": runtime.model_version(project)} if project is not None else {})})

    @app.post("/job_status")
    def job_status():
        """A training job's status, as Label Studio follows it (the ``job`` a Train webhook answered with)."""
        data = parse(JobStatusRequest, body())
        status = runtime.jobs.job_status(data.job)
        if status is None:  # Label Studio reads 410 as "removed"
            return jsonify({"status": "error", "error": "Gone",
                            "message": f"job {data.job[:80]!r} is unknown or was replaced by a later one"}), 410
        return jsonify(status)

    @app.get("/metrics")
    def metrics():
        project = project_arg()
        out = {"base_model": runtime.base.model_version, "device": runtime.base.placement,
               "uptime_s": round(time.time() - runtime.started, 1),
               "predict_latency": runtime.latencies.summary(), "store": runtime.store.counts(),
               "embedding": runtime.embeddings.progress(), "image_index": runtime.images.stats()}
        if project is not None:
            out.update(model_version=runtime.model_version(project), training=runtime.jobs.state(project),
                       anchor_revision=runtime.store.revision(project),
                       project_embedding=runtime.embeddings.progress(project),
                       agreement=agreement(project), report=f"/report?project={project}")
        return jsonify(out)

    agreements: ProjectCache[dict] = ProjectCache(MAX_CACHED_PROJECTS)
    reports: ProjectCache[str] = ProjectCache(MAX_CACHED_PROJECTS)

    def agreement_key(project: int) -> tuple:
        return runtime.store.revision(project), digest(runtime.store.annotators(project))

    def agreement(project: int) -> dict:
        return agreements.get_or_build(project, agreement_key(project),
                                       lambda: project_agreement(runtime.store, project, config.max_frame + 1))

    @app.get("/report")
    def report():
        """The project's report page: curves, label efficiency, training history, annotator agreement."""
        project = project_arg()
        if project is None:
            raise PayloadError("project: /report needs ?project=N (a Label Studio project id)")
        setup = project_setup(runtime, project)  # an unknown project is a 400 before any work or cache entry
        key = (runtime.model_version(project), agreement_key(project),
               digest([runtime.jobs.state(project), runtime.jobs.history(project)]))
        page = reports.get(project, key)
        if page is None:
            built = build_report(runtime, project, setup, agreement(project))
            page = render(built)
            if built.complete:  # a video still embedding (or a media error) is looked at again on the next reload
                reports.put(project, key, page)
        return Response(page, 200, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"})

    return app


def _same(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of credentials, any characters (compare_digest refuses non-ASCII str)."""
    return hmac.compare_digest((given or "").encode(), (expected or "").encode())
