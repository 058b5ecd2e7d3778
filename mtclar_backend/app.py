"""The ML-backend HTTP protocol Label Studio speaks: /health, /setup, /predict, /webhook, /metrics."""

from __future__ import annotations

import hmac
import logging
import time

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from model.errors import AnchorError, CheckpointError, DataError, LabelConfigError, MediaError, MtclarError

from . import __version__
from .model import MTCLARModel, parse_project
from .runtime import Runtime

log = logging.getLogger(__name__)
STATUS = {LabelConfigError: 400, AnchorError: 400, DataError: 400, MediaError: 422, CheckpointError: 500}


def create_app(runtime: Runtime) -> Flask:
    app = Flask("mtclar_backend")
    app.config["runtime"] = runtime
    config = runtime.config

    @app.before_request
    def basic_auth():
        if not config.basic_auth_user:
            return None
        auth = request.authorization
        ok = auth is not None and hmac.compare_digest(auth.username or "", config.basic_auth_user) and \
            hmac.compare_digest(auth.password or "", config.basic_auth_pass or "")
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
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise MtclarError("expected a JSON object in the request body")
        return data

    @app.get("/")
    @app.get("/health")
    def health():
        projects = request.args.get("project")
        out = {"status": "UP", "model_class": "MTCLARModel", "version": __version__,
               "base_model": runtime.base.model_version}
        if projects:
            project = parse_project(projects)
            out["model_version"] = runtime.model_version(project)
            out["training"] = runtime.jobs.state(project)
        return jsonify(out)

    @app.post("/setup")
    def setup():
        data = body()
        project = parse_project(data.get("project"))
        model = MTCLARModel(runtime, project, data.get("schema") or data.get("label_config"))
        if model.label_setup is None:
            raise LabelConfigError("/setup needs the project's labelling config in 'schema'")
        api = runtime.api
        if api is None and data.get("hostname") and data.get("access_token"):
            from .ls_api import LabelStudioAPI

            api = LabelStudioAPI(data["hostname"], data["access_token"])
        model.backfill(api)
        return jsonify({"model_version": model.model_version, "mode": model.label_setup.mode})

    @app.post("/predict")
    def predict():
        data = body()
        tasks = data.get("tasks")
        if not isinstance(tasks, list):
            raise MtclarError("/predict needs a list of tasks")
        project = parse_project(data.get("project"))
        model = MTCLARModel(runtime, project, data.get("label_config"))
        context = (data.get("params") or {}).get("context") or data.get("context")
        return jsonify(model.predict(tasks, context=context))

    @app.post("/webhook")
    def webhook():
        data = body()
        event = data.get("action")
        if not event:
            raise MtclarError("webhook without 'action'")
        project_data = data.get("project")
        project = parse_project(project_data)
        label_config = project_data.get("label_config") if isinstance(project_data, dict) else None
        if event not in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATION_DELETED", "ANNOTATIONS_DELETED",
                         "START_TRAINING"):
            return jsonify({"status": "ignored", "action": event})
        started = time.perf_counter()
        model = MTCLARModel(runtime, project, label_config)
        result = model.fit(event, data)
        return jsonify({"status": "ok", "action": event, "seconds": round(time.perf_counter() - started, 3),
                        **result}), 201

    @app.get("/metrics")
    def metrics():
        project = parse_project(request.args.get("project"))
        out = {"base_model": runtime.base.model_version, "uptime_s": round(time.time() - runtime.started, 1),
               "predict_latency": runtime.latency_summary(), "store": runtime.store.counts()}
        if project is not None:
            out.update(model_version=runtime.model_version(project), training=runtime.jobs.state(project),
                       anchor_revision=runtime.store.revision(project))
        return jsonify(out)

    return app


def create_app_from_env() -> Flask:
    from .config import BackendConfig

    return create_app(Runtime(BackendConfig.from_env()))
