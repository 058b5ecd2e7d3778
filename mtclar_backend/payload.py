"""The one validation edge for what Label Studio, or anyone, sends: the request body is parsed once into typed
objects here, or rejected with a ``PayloadError`` (400) / ``PayloadTooLarge`` (413) that names the field and
the task. Nothing downstream looks at raw JSON, so nothing malformed is ever stored.

The shapes follow Label Studio 1.23.2's ML-backend calls (ml/api_connector.py); unknown keys are ignored,
known keys are strictly typed (a task id is an integer, not "7"; a result is a list, not an object).
The label-config-specific parts (which result items are anchors, which data key holds the media) are read
by ``ls_format`` from these objects, with the same errors.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from mtclar.model.errors import PayloadError, PayloadTooLarge

ID_MAX = 2**63 - 1  # SQLite INTEGER and Redis keys; Label Studio ids are positive 64-bit integers
Id = Annotated[StrictInt, Field(ge=0, le=ID_MAX)]
MAX_CONFIG_CHARS = 1_000_000


def _project_id(value: Any) -> Any:
    """Label Studio sends ``"<id>.<timestamp>"`` on /setup and /predict, an object in webhooks, an int elsewhere."""
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, str):
        head = value.split(".", 1)[0]
        if not head.isdigit():
            raise ValueError(f"{value[:40]!r} is not a project id (expected an integer or '<id>.<timestamp>')")
        return int(head)
    return value


ProjectId = Annotated[Id, BeforeValidator(_project_id)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class ResultItem(_Model):
    """One item of an annotation's ``result``; its ``value`` is read by ``ls_format`` for the backend's tags."""

    id: StrictStr | StrictInt | None = None
    from_name: StrictStr = ""
    to_name: StrictStr | None = None
    type: StrictStr = ""
    value: dict[str, Any] = Field(default_factory=dict)
    origin: StrictStr | None = None


class Annotation(_Model):
    id: Id | None = None
    result: list[ResultItem] = Field(default_factory=list)
    was_cancelled: StrictBool | None = False
    completed_by: Any = None  # an id or a user object: who labelled it (agreement between annotators)

    @property
    def usable(self) -> bool:
        return not self.was_cancelled and bool(self.result)


class Task(_Model):
    id: Id
    data: dict[str, Any]
    annotations: list[Annotation] = Field(default_factory=list)


class Context(_Model):
    result: list[ResultItem] = Field(default_factory=list)


class Params(_Model):
    context: Context | None = None


class PredictRequest(_Model):
    tasks: list[Task]
    project: ProjectId | None = None
    label_config: Annotated[StrictStr, Field(max_length=MAX_CONFIG_CHARS)] | None = None
    params: Params | None = None
    context: Context | None = None

    @property
    def interactive_context(self) -> Context | None:
        return (self.params.context if self.params is not None else None) or self.context


class SetupRequest(_Model):
    project: ProjectId | None = None
    schema_: Annotated[StrictStr, Field(max_length=MAX_CONFIG_CHARS)] | None = Field(None, alias="schema")
    label_config: Annotated[StrictStr, Field(max_length=MAX_CONFIG_CHARS)] | None = None
    hostname: StrictStr | None = None
    access_token: StrictStr | None = None
    model_version: StrictStr | None = None

    @property
    def config(self) -> str | None:
        return self.schema_ or self.label_config


class WebhookProject(_Model):
    id: Id
    label_config: Annotated[StrictStr, Field(max_length=MAX_CONFIG_CHARS)] | None = None


class AnnotationId(_Model):
    id: Id


def _project_object(value: Any) -> Any:
    if isinstance(value, int | str) and not isinstance(value, bool):
        return {"id": _project_id(value)}
    return value


class JobStatusRequest(_Model):
    job: Annotated[StrictStr, Field(min_length=1, max_length=200)]


class WebhookRequest(_Model):
    action: StrictStr
    project: Annotated[WebhookProject | None, BeforeValidator(_project_object)] = None
    task: Task | None = None
    annotation: Annotation | None = None
    annotations: list[AnnotationId] | None = None  # ANNOTATIONS_DELETED


def read_json(raw: bytes) -> dict:
    """A request body -> a JSON object; no NaN/Infinity, no nesting deep enough to exhaust the stack."""
    if not raw:
        raise PayloadError("the request body is empty: expected a JSON object")
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise PayloadError("the JSON body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise PayloadError(f"the request body is not JSON ({str(error)[:120]})") from None
    if not isinstance(data, dict):
        raise PayloadError(f"the request body must be a JSON object, not {type(data).__name__}")
    return data


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed in JSON")


def parse(model: type[_Model], data: dict, max_tasks: int | None = None) -> Any:
    """``data`` -> ``model``, or a PayloadError naming the first fields at fault (and the task they belong to)."""
    tasks = data.get("tasks")
    if max_tasks is not None and isinstance(tasks, list) and len(tasks) > max_tasks:
        raise PayloadTooLarge(f"tasks: {len(tasks)} tasks in one request; the limit is {max_tasks} "
                              "(MTCLAR_MAX_TASKS)")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise PayloadError(describe(error, data)) from None
    except RecursionError:
        raise PayloadError("the JSON body is nested too deeply") from None


def describe(error: ValidationError, data: dict, limit: int = 3) -> str:
    problems = []
    for item in error.errors(include_url=False)[:limit]:
        location = item["loc"]
        field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).lstrip(".")
        task = _task_id(data, location)
        given = item.get("input")
        shown = "" if isinstance(given, dict | list) or given is None else f" (got {_short(given)})"
        problems.append(f"{f'task {task}: ' if task is not None else ''}{field or 'body'}: {item['msg']}{shown}")
    more = len(error.errors()) - limit
    return "; ".join(problems) + (f"; and {more} more" if more > 0 else "")


def _task_id(data: dict, location: tuple) -> Any:
    """The id of the task a field belongs to, when the body says it (for the message)."""
    task = None
    if location[:1] == ("tasks",) and len(location) > 1 and isinstance(location[1], int):
        tasks = data.get("tasks")
        task = tasks[location[1]] if isinstance(tasks, list) and location[1] < len(tasks) else None
    elif location[:1] == ("task",):
        task = data.get("task")
    if isinstance(task, dict) and isinstance(task.get("id"), int) and not isinstance(task.get("id"), bool):
        return task["id"]
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def finite_number(value: Any, field: str) -> float:
    """A JSON number that is finite (not a string, bool, null or list)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"{field}: expected a number, got {_short(value)}")
    if not math.isfinite(value):
        raise PayloadError(f"{field}: {value} is not a finite number")
    return float(value)


def whole_number(value: Any, field: str, low: int, high: int) -> int:
    """A JSON integer in ``[low, high]``; above ``high`` is over a limit (413), below ``low`` is malformed."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError(f"{field}: expected a whole number, got {_short(value)}")
    if value < low:
        raise PayloadError(f"{field}: {value} is below {low}")
    if value > high:
        raise PayloadTooLarge(f"{field}: {value} is above the limit {high} (MTCLAR_MAX_FRAME)")
    return value
