"""Where a path or URI lives on this machine: the one place that tells local from remote."""

from __future__ import annotations

import os
from urllib.parse import urlparse
from urllib.request import url2pathname


def local_path(path: str) -> str | None:
    """The absolute local path behind a plain path or a `file:` URI; None for any other
    store (s3a://, hdfs://, ...)."""
    uri = urlparse(path)
    if uri.scheme == "file":
        return url2pathname(uri.path)
    if uri.scheme and len(uri.scheme) > 1:  # a one-letter scheme is a Windows drive
        return None
    return os.path.abspath(path)
