import contextlib
import io
from pathlib import Path

import pytest

from mtclar.cli import main


@pytest.fixture(scope="session")
def cache_dir(embedder, tmp_path_factory) -> Path:
    """``--cache-dir`` for the CLI, sharing the embedding cache of the session's ``embedder`` (the CLI keeps its
    embeddings under ``<cache-dir>/embeddings``), so each clip is decoded and encoded once per test session."""
    root = tmp_path_factory.mktemp("cli-cache")
    (root / "embeddings").symlink_to(embedder.cache.root, target_is_directory=True)
    return root


def run_captured(argv: list[str]) -> tuple[int, str, str]:
    """``mtclar ARGV`` in-process, for module-scoped fixtures (tests use ``capsys``)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()
