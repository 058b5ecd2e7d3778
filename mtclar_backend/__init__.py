"""Label Studio side of MT-CLAR: HTTP protocol, label configs, anchor store, jobs, and the `mtclar` CLI."""

__version__ = "0.1.0"
