"""Label Studio side of MT-CLAR: HTTP protocol, Label Studio JSON, anchor store, media, background jobs."""

from mtclar import __version__

__all__ = ["__version__"]
