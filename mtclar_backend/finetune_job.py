"""The fine-tune a Train click (or enough new annotations) starts: the project's anchors and embeddings in,
a checkpoint that serves only when it beats the serving model on held-out anchors out."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from mtclar.model.errors import AnchorError

from .project_data import project_videos

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger(__name__)


def finetune_project_job(runtime: Runtime, project: int, progress: Callable[[str, float], None]) -> dict:
    from mtclar.training.finetune import FinetuneConfig, ProjectVideo, finetune_project

    progress("collecting anchors", 0.02)
    found, skipped = project_videos(runtime, project)
    videos = [ProjectVideo(name, embeddings, anchors) for name, embeddings, anchors in found]
    if not videos:
        reasons = f" ({'; '.join(skipped.values())})" if skipped else ""
        raise AnchorError(f"project {project} has no anchors on frames with a face yet{reasons}")
    serving = runtime.labeler(project)
    config = FinetuneConfig(min_improvement=runtime.config.finetune_min_improvement)
    result = finetune_project(serving.checkpoint, videos, serving.expression_classes, config,
                              on_progress=lambda message, f: progress(message, 0.1 + 0.85 * f))
    outcome = {"kept_new": result.kept_new, "validation": result.after.get("validation"),
               "before": result.before, "after": result.after,
               "seconds": round(result.seconds, 2), "anchors": sum(len(v.anchors) for v in videos),
               "videos": len(videos), "skipped_videos": skipped}
    if result.kept_new:
        path = runtime.config.model_dir / "projects" / str(project) / "checkpoints" / result.checkpoint.name
        result.checkpoint.save(path)  # atomic: a folder renamed into place
        runtime.store.set_state(project, "serving", {"path": str(path), "name": result.checkpoint.name})
        runtime.store.set_state(project, "annotations_since_training", {"count": 0})
    outcome["model_version"] = runtime.model_version(project)
    outcome["message"] = outcome_message(result.kept_new, result.base_name, result.new_name, result.before,
                                         result.after, project)
    log.info("project %s fine-tune: kept_new=%s, %s", project, result.kept_new, result.table())
    return outcome


def outcome_message(kept_new: bool, base_name: str, new_name: str, before: dict, after: dict, project: int) -> str:
    """One line for Label Studio's users: which model serves, why, and where the whole story is."""
    scores = (f"held-out mean RMSE {after['mean_rmse']:.4f} (fine-tune) vs {before['mean_rmse']:.4f} "
              f"({base_name or 'serving'}), needs an improvement of {after.get('min_improvement', 0):.4f}")
    verdict = f"serving the fine-tune {new_name}" if kept_new else f"kept {base_name or 'the serving model'}"
    return f"{verdict}: {scores}; report: /report?project={project}"
