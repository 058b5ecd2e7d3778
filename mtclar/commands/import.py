"""`mtclar import --ls-url URL --api-key KEY --project ID VIDEO...|FRAMES_DIR`: create Label Studio tasks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from mtclar.model.errors import MtclarError
from mtclar.settings import Settings
from mtclar_backend.label_configs import CONFIGS
from mtclar_backend.ls_format import parse_label_config


def add_parser(sub, settings: Settings) -> None:
    parser = sub.add_parser("import", help="create Label Studio tasks from videos or frame folders",
                            description=__doc__)
    parser.add_argument("paths", nargs="+", type=Path, metavar="VIDEO|FRAMES_DIR")
    parser.add_argument("--ls-url", default=settings.label_studio_url, help="LABEL_STUDIO_URL")
    parser.add_argument("--api-key", default=settings.label_studio_api_key, help="LABEL_STUDIO_API_KEY")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--project", type=int, help="an existing project (its config decides the mode)")
    target.add_argument("--create", metavar="TITLE", help="create a project with the --mode config")
    parser.add_argument("--mode", choices=sorted(CONFIGS), default="video",
                        help="with --create: video (one task per video), video-curve (video mode, the predicted curve "
                             "under the video and 'label me' suggestions) or frame (one task per frame image)")
    parser.add_argument("--document-root", type=Path, default=None,
                        help="Label Studio's LOCAL_FILES_DOCUMENT_ROOT: serve the files in place (they must lie "
                             "under it) instead of uploading them")
    parser.add_argument("--ml-url", default=None, help="also connect the ML backend at this URL")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from mtclar_backend.importer import Importer, plan_items
    from mtclar_backend.ls_api import LabelStudioAPI

    if not args.ls_url or not args.api_key:
        raise MtclarError("needs --ls-url and --api-key (or LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY)")
    api = LabelStudioAPI(args.ls_url, args.api_key)
    if args.create:
        config = CONFIGS[args.mode]
        project = api.client.projects.create(title=args.create, label_config=config).id
        print(f"created project {project} ({args.mode} mode)")
    else:
        project = args.project
        config = api.client.projects.get(id=project).label_config
    setup = parse_label_config(config)
    items = plan_items(args.paths, setup.mode)
    if not items:
        raise MtclarError("nothing to import")
    bar = tqdm(total=len(items), unit="file", desc="upload", disable=args.document_root is not None or
               not sys.stderr.isatty())
    importer = Importer(api, project, setup.value_key, on_progress=lambda done, total: bar.update(1),
                        curve=setup.curve)
    urls = importer.urls_local(items, args.document_root) if args.document_root else importer.urls_upload(items)
    bar.close()
    task_ids = importer.create_tasks(items, urls)
    print(f"project {project}: {len(task_ids)} {setup.mode} tasks created (ids {task_ids[0]}..{task_ids[-1]})")
    if args.ml_url:
        api.client.ml.create(project=project, url=args.ml_url, title="MT-CLAR", is_interactive=False)
        print(f"project {project}: ML backend {args.ml_url} connected")
    return 0
