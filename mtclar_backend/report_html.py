"""A ``ProjectReport`` as one self-contained HTML page: tables, and matplotlib figures inlined as PNG.

Every string that came from outside (video keys, annotator names, messages) is escaped.
"""

from __future__ import annotations

import base64
import io
import math
from html import escape

import numpy as np

from mtclar.model.metrics import DIMENSIONS

from .report import ProjectReport, VideoReport

STYLE = """body{font-family:system-ui,sans-serif;margin:24px;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.note{color:#666;font-size:90%}
img{max-width:100%;border:1px solid #eee}#history td{text-align:left}"""


def _num(value: object, digits: int = 3) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _table(header: list[str], rows: list[list[str]], table_id: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def figure_png(video: VideoReport) -> bytes:
    """Predicted V and A over time, the 80% interval, the anchors and the suggested frames."""
    from matplotlib.figure import Figure  # the object API: no pyplot state, safe in request threads (Agg)

    labels, t = video.labels, video.time_s
    assert labels is not None and t is not None
    figure = Figure(figsize=(10, 4.2), dpi=80, layout="constrained")
    axes = figure.subplots(2, 1, sharex=True)
    frames = np.array(sorted(video.anchors), dtype=int)
    for ax, dim, values, low, high in (
            (axes[0], "valence", labels.valence, labels.valence_low, labels.valence_high),
            (axes[1], "arousal", labels.arousal, labels.arousal_low, labels.arousal_high)):
        ax.fill_between(t, low, high, color="tab:blue", alpha=0.2, linewidth=0, label="80% interval")
        ax.plot(t, values, color="tab:blue", linewidth=1.2, label="predicted")
        if frames.size:
            ax.scatter(t[frames], [video.anchors[f][DIMENSIONS.index(dim)] for f in frames], s=10,
                       color="tab:red", zorder=3, label="anchors (human)")
        for k, frame in enumerate(video.suggestions):
            ax.axvline(t[frame], color="tab:green", linestyle="--", linewidth=0.9,
                       label="suggested next" if k == 0 else None)
        ax.set_ylim(-1.05, 1.05)
        ax.axhline(0, color="0.6", linewidth=0.5)
        ax.set_ylabel(dim)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=7, ncol=4)
    axes[1].set_xlabel("time (s)")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _efficiency(report: ProjectReport) -> str:
    eff = report.efficiency
    if not eff:
        return "<p>Not enough held-out anchors yet: label at least two separate segments of a video.</p>"
    rows = [[escape(method)] + [_num(eff[method][dim][m]) for dim in DIMENSIONS for m in ("ccc", "rmse")]
            for method in ("model", "interpolation")]
    gain = [f"{eff['model'][dim]['ccc'] - eff['interpolation'][dim]['ccc']:+.3f}" for dim in DIMENSIONS]
    return (f"<p>{eff['held_out']} held-out anchors of {eff['videos']} video(s): each segment of anchors held out "
            "whole and predicted from the others (the labeller's own leave-one-segment-out folds; the correction "
            "weight is the one it serves with, chosen on these folds).</p>"
            + _table(["method", "V CCC", "V RMSE", "A CCC", "A RMSE"], rows, "efficiency")
            + f"<p>model − interpolation CCC: valence {gain[0]}, arousal {gain[1]}</p>")


def _history(report: ProjectReport) -> str:
    if not report.history:
        return "<p>No fine-tune has finished yet (press <i>Train</i> in the project's model settings).</p>"
    rows = []
    for run in report.history:
        before, after = run.get("before") or {}, run.get("after") or {}
        kept = {True: "new model", False: "kept serving"}.get(run.get("kept_new"), "–")
        rows.append([escape(str(run.get("finished", "–"))), escape(str(run.get("reason", ""))),
                     escape(str(run.get("status", ""))), kept, _num(before.get("mean_rmse"), 4),
                     _num(after.get("mean_rmse"), 4), _num(after.get("min_improvement"), 4),
                     escape(str(run.get("validation") or "")), escape(str(run.get("message", "")))])
    return _table(["finished", "reason", "status", "outcome", "RMSE before", "RMSE after", "needed gain",
                   "validation", "why"], rows, "history")


def _agreement(report: ProjectReport) -> str:
    data = report.agreement
    entries = [(escape(v), a) for v, a in data.get("videos", {}).items()]
    if data.get("pooled"):
        entries.append(("<b>pooled</b>", data["pooled"]))
    rows = [[name, escape(", ".join(a["raters"])), str(a["frames"])]
            + [_num(a[dim][m]) for dim in DIMENSIONS for m in ("ccc", "icc", "alpha")] for name, a in entries]
    note = ("" if entries else "<p>No frame is labelled by two annotators yet: agreement needs a task "
            "annotated by several people.</p>")
    return (note + _table(["video", "annotators", "frames", "V CCC", "V ICC", "V α", "A CCC", "A ICC", "A α"],
                          rows, "agreement")
            + "<p class=note>On the frames at least two annotators labelled. CCC: Lin's, mean over annotator pairs; "
            "ICC: ICC(A,1) = ICC(2,1), two-way random, absolute agreement, single rater, on the frames "
            "every annotator labelled; α: Krippendorff's alpha, interval; both computed exactly on the labelled "
            "runs (checked against pingouin and krippendorff).</p>")


def _video(video: VideoReport) -> str:
    title = f"<h3>{escape(video.key)}</h3>"
    if video.status != "ready":
        return f'{title}<p class="not-ready">{escape(video.status)}</p>'
    png = base64.b64encode(figure_png(video)).decode()
    suggested = ", ".join(str(f) for f in video.suggestions) or "none"
    return (f"{title}<img class=curve alt='{escape(video.key)}: predicted valence and arousal' "
            f"src='data:image/png;base64,{png}'>"
            f"<p class=note>{len(video.anchors)} anchor frames in {video.segments} segment(s); {video.held_out} "
            f"held out in validation; suggested next frames (0-based): {suggested}</p>")


def render(report: ProjectReport) -> str:
    training = report.training
    state = escape(str(training.get("status", "idle")))
    if training.get("message"):
        state += f" — {escape(str(training['message']))}"
    videos = "".join(_video(v) for v in report.videos)
    if report.not_drawn:
        videos += f"<p>{len(report.not_drawn)} more video(s) not drawn: {escape(', '.join(report.not_drawn))}</p>"
    project = report.project
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>MT-CLAR report, project {project}</title>
<style>{STYLE}</style></head><body>
<h1>MT-CLAR report — project {project}</h1>
<p>Model version <code>{escape(report.model_version)}</code> (base <code>{escape(report.base_model)}</code>);
{report.mode} mode; training: {state}. JSON: <a href="metrics?project={project}">/metrics?project={project}</a>.</p>
<h2>Label efficiency (held-out anchors)</h2>{_efficiency(report)}
<h2>Training history</h2>{_history(report)}
<h2>Annotator agreement</h2>{_agreement(report)}
<h2>Videos</h2>
<p class=note>Blue: predicted curve and its 80% interval; red: the human labels (anchors); green: the frames
the backend suggests labelling next.</p>{videos or "<p>No video has anchors yet.</p>"}
</body></html>"""
