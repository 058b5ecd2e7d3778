"""Frame images' embeddings held in memory, so a /predict over thousands of frame tasks reads no files.

Label Studio sends every selected task in one /predict; a frame-mode project has one task per image, and
reading each image's cache entry (an ``.npz``) costs milliseconds: 10,000 of them would use the whole time
budget. Entries are kept per image path with the file's size and modification time (a replaced file misses),
evicted least recently used beyond ``max_bytes``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from mtclar.model.embeddings import VideoEmbeddings

ENTRY_OVERHEAD = 1024  # bytes beyond the arrays: the dataclass, its VideoInfo, seven array headers


def _size(embeddings: VideoEmbeddings) -> int:
    arrays = (embeddings.has_face, embeddings.face_score, embeddings.boxes, embeddings.landmarks,
              embeddings.embeddings, embeddings.expression_probs)
    return ENTRY_OVERHEAD + sum(a.nbytes for a in arrays)


class ImageIndex:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        # path -> ((size, mtime), embeddings, bytes): one entry per file, a changed file's stamp no longer matches
        self._entries: OrderedDict[str, tuple[tuple[int, int], VideoEmbeddings, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int] | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        return stat.st_size, stat.st_mtime_ns

    def get(self, path: Path) -> VideoEmbeddings | None:
        stamp = self._stamp(path)
        with self._lock:
            entry = self._entries.get(str(path))
            if entry is None or entry[0] != stamp:
                return None
            self._entries.move_to_end(str(path))
            return entry[1]

    def put(self, path: Path, embeddings: VideoEmbeddings) -> None:
        stamp, size = self._stamp(path), _size(embeddings)
        with self._lock:
            old = self._entries.pop(str(path), None)
            self._bytes -= old[2] if old else 0
            if stamp is None or size > self.max_bytes:
                return
            self._entries[str(path)] = (stamp, embeddings, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, _, evicted) = self._entries.popitem(last=False)
                self._bytes -= evicted

    def stats(self) -> dict:
        with self._lock:
            return {"images": len(self._entries), "mb": round(self._bytes / 2**20, 1),
                    "max_mb": round(self.max_bytes / 2**20, 1)}
