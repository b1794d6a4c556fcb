"""Where a path or URI lives on this machine: the one place that tells local from remote."""

from __future__ import annotations

import os
from urllib.parse import urlparse
from urllib.request import url2pathname


def local_bytes(path: str) -> int | None:
    """Bytes of a local file, or of every file under a local folder; None for another store
    or a path that is not there."""
    local = local_path(path)
    if local is None or not os.path.exists(local):
        return None
    if os.path.isfile(local):
        return os.path.getsize(local)
    return sum(
        os.path.getsize(os.path.join(folder, name))
        for folder, _, names in os.walk(local)
        for name in names
    )


def local_path(path: str) -> str | None:
    """The absolute local path behind a plain path or a `file:` URI; None for any other
    store (s3a://, hdfs://, ...)."""
    uri = urlparse(path)
    if uri.scheme == "file":
        return url2pathname(uri.path)
    if uri.scheme and len(uri.scheme) > 1:  # a one-letter scheme is a Windows drive
        return None
    return os.path.abspath(path)
