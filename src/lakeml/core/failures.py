"""Every exception a command can end with, mapped in one place to one line and an exit status.

A `LakemlError` keeps its message. Spark, Delta and IO failures a user can cause or fix (a
missing data file or a damaged `_delta_log` entry under a table, a folder that is not a
table, a path without permission, a full disk, a write that kept losing to another writer)
get a line naming the table and what to do, exit status 2. Anything else is an internal
error, exit status 1, whose full traceback goes to a log file the line names.

Spark's failures reach Python as `Py4JJavaError` or pyspark's captured exceptions, whose
text holds the Java exception chain ("Caused by: ..."). They are recognised by Java class
names and Spark/Delta error classes in that text, so this module imports neither pyspark
nor py4j (the CLI imports it before Spark starts) and works on any exception object.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import re
import sys
import tempfile
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lakeml.core.errors import LakemlError
from lakeml.core.paths import local_path

USER, INTERNAL, INTERRUPTED = 2, 1, 130

# Delta rejects a commit that conflicts with one made since the write began; the rejected
# write committed nothing. Python classes (delta.exceptions) and the Java names in a text.
COMMIT_CONFLICTS = (
    "ConcurrentAppendException",
    "ConcurrentDeleteReadException",
    "ConcurrentDeleteDeleteException",
    "ConcurrentWriteException",
    "ConcurrentTransactionException",
    "MetadataChangedException",
    "ProtocolChangedException",
    "DeltaConcurrentModificationException",
)
# How to rebuild a table whose files are lost, by its key in `tables`.
REBUILD = {
    "features": "run `lakeml features --full-refresh` to rebuild it from silver",
    "labels": "run `lakeml features --full-refresh` to rebuild it from silver",
}
REBUILD_ANY = "move the table's folder aside and rerun the step that writes it"
_PERMISSION_FIX = (
    "give the user running lakeml access to it, or point storage.root (or --input) elsewhere"
)

_PERMISSION = re.compile(
    r"(?P<path>\S+) \((?:Permission denied|Operation not permitted)\)"  # local files
    r"|AccessDeniedException: (?P<nio>\S+?):?(?:\s|$)"  # local folders, S3A
    r'|AccessControlException: Permission denied: [^\n]*?inode="(?P<inode>[^"]+)"'  # HDFS
)
_READ_FILE = re.compile(r"error while reading file (?P<path>\S+?)\.?(?:\s|$)")
_NOT_FOUND = re.compile(
    r"FileNotFoundException: (?:\[[A-Z_.]+\] )?(?:File )?(?P<path>\S+?)(?: does not exist|\s|$)"
)
_DELTA_LOG_PATH = re.compile(r"(?P<path>[^\s`'\"\[(]*/_delta_log/[^\s`'\":,;)]*)")
_NOT_PARQUET = re.compile(r"(?P<path>\S+) is not a Parquet file")
_CAUSED_BY = re.compile(r"^Caused by: (?:[\w.$]+(?:Exception|Error)): (?P<message>.+)$", re.M)
_PARTITION_DIR = re.compile(r"^[^/=]+=[^/]*$")


@dataclass(frozen=True)
class Failure:
    """What the CLI says about a failed command: one line and the exit status."""

    message: str  # one line: what went wrong and what to do (the summary's "error")
    status: int  # USER: the user can fix it; INTERNAL: a bug or an unexpected fault
    log: str | None = None  # the file holding the full traceback, if one was written

    @property
    def line(self) -> str:
        """The line on stderr after `lakeml <command>: `."""
        return f"error: {self.message}" if self.status == USER else self.message


def exception_text(exc: BaseException) -> str:
    """Everything an exception says: its message, the Java stack trace pyspark keeps for a
    captured exception, and the same for its causes."""
    parts, seen, current = [], set(), exc
    while current is not None and id(current) not in seen and len(parts) < 10:
        seen.add(id(current))
        try:
            parts.append(str(current))
        except Exception:  # a Py4JJavaError asks the JVM for its text; the JVM may be gone
            parts.append(repr(current))
        parts.append(str(getattr(current, "_stackTrace", None) or ""))
        current = current.__cause__ or current.__context__
    return "\n".join(p for p in parts if p)


def is_commit_conflict(exc: BaseException) -> bool:
    """Whether Delta rejected the write's commit for a concurrent one (nothing committed)."""
    if any(c.__name__ in COMMIT_CONFLICTS for c in type(exc).__mro__):
        return True
    head = exception_text(exc)[:2000]
    return any(f"io.delta.exceptions.{name}" in head for name in COMMIT_CONFLICTS)


def is_not_parquet(exc: BaseException) -> bool:
    """Whether Spark failed reading files as Parquet that are not (their footers)."""
    text = exception_text(exc)
    return "CANNOT_READ_FILE_FOOTER" in text or _NOT_PARQUET.search(text) is not None


def reason(exc: BaseException, limit: int = 200) -> str:
    """The most specific line an exception gives: its first line, except for a Py4JJavaError
    (whose first line only names the call) the innermost "Caused by" message of its Java
    exception, else that exception's own first line."""
    try:
        text = str(exc)
    except Exception:  # a Py4JJavaError asks the JVM for its text; the JVM may be gone
        text = repr(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and lines[0].startswith("An error occurred while calling"):
        causes = _CAUSED_BY.findall(text)
        if causes:
            return causes[-1].strip()[:limit]
        lines = [line.lstrip(": ") for line in lines[1:2]] or lines
    return (lines[0] if lines else type(exc).__name__)[:limit]


def shown_path(path: str) -> str:
    """A local path without its `file:` scheme; a remote URI as it is."""
    return local_path(path) or path


def table_of(path: str, tables: Mapping[str, str]) -> tuple[str | None, str]:
    """(key in `tables` or None, table folder) for a file under a table: the configured
    table holding it, else the folder above `_delta_log` or above partition folders."""
    file = shown_path(path).rstrip("/")
    known = sorted(((shown_path(p).rstrip("/"), n) for n, p in tables.items()), reverse=True)
    for folder, name in known:
        if file == folder or file.startswith(folder + "/"):
            return name, folder
    if "/_delta_log/" in f"{file}/":
        return None, file.split("/_delta_log")[0]
    parts = file.split("/")[:-1]
    while len(parts) > 1 and _PARTITION_DIR.match(parts[-1]):
        parts.pop()
    return None, "/".join(parts)


def _named(name: str | None, folder: str) -> str:
    return f"the {name} table at {folder}" if name else f"the Delta table at {folder}"


def _rebuild(name: str | None) -> str:
    return REBUILD.get(name or "", REBUILD_ANY)


def user_failure(exc: BaseException, tables: Mapping[str, str]) -> str | None:
    """The one-line message for a failure the user can fix, or None if it is not one."""
    if isinstance(exc, LakemlError):
        return str(exc)
    if isinstance(exc, PermissionError):
        return f"permission denied on {exc.filename or reason(exc)}; {_PERMISSION_FIX}"
    text = exception_text(exc)
    if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "No space left" in text:
        return f"no space left on the device being written ({reason(exc)}); free some space"
    found = _PERMISSION.search(text)
    if found:
        path = found["path"] or found["nio"] or found["inode"]
        return f"permission denied on {shown_path(path)}; {_PERMISSION_FIX}"
    found = re.search(r"DELTA_CANNOT_CREATE_LOG_PATH\] Cannot create (?P<path>\S+)", text)
    if found:
        return (
            f"cannot create {shown_path(found['path'])} (no permission, or a read-only file "
            f"system); {_PERMISSION_FIX}"
        )
    if is_commit_conflict(exc):
        # Delta names the table as delta.`<folder>`.
        found = re.search(r"delta\.`(?P<path>[^`]+)`", text)
        where = _named(*table_of(f"{found['path']}/_delta_log/", tables)) if found else "a table"
        return (
            f"another writer committed to {where} while this run wrote to it "
            f"({_conflict_name(exc, text)}); nothing of this write was committed: rerun the "
            "command once the other run is done"
        )
    return _file_failure(text, tables)


def _conflict_name(exc: BaseException, text: str) -> str:
    for name in COMMIT_CONFLICTS:
        if name in text or any(c.__name__ == name for c in type(exc).__mro__):
            return name
    return type(exc).__name__


def _file_failure(text: str, tables: Mapping[str, str]) -> str | None:
    """A damaged `_delta_log`, a lost data file, or a file that is not Parquet."""
    log_file = _DELTA_LOG_PATH.search(text)
    read_file = _READ_FILE.search(text) or _NOT_FOUND.search(text)
    damage = _log_damage(text, read_file is not None and "/_delta_log/" in read_file["path"])
    if log_file and damage:
        path = shown_path(log_file["path"].rstrip("."))
        name, folder = table_of(path, tables)
        return (
            f"the Delta log of {_named(name, folder)} is damaged ({os.path.basename(path)} "
            f"{damage}); restore that file from a backup, or {_rebuild(name)}"
        )
    not_parquet = _NOT_PARQUET.search(text)
    if not_parquet:
        path = shown_path(not_parquet["path"])
        return (
            f"{os.path.dirname(path)} is neither a Delta nor a Parquet table "
            f"({os.path.basename(path)} is not a Parquet file); point the command at one"
        )
    lost = "FILE_NOT_EXIST" in text or "DELTA_FILE_NOT_FOUND" in text
    if read_file and lost:
        path = shown_path(read_file["path"])
        name, folder = table_of(path, tables)
        return (
            f"a data file of {_named(name, folder)} is missing ({os.path.basename(path)}); "
            f"restore it from a backup, or {_rebuild(name)}"
        )
    return None


def _log_damage(text: str, log_file_failed: bool) -> str | None:
    """How a Delta log entry is damaged, from the text of the failure; None if it is not."""
    if "TRUNCATED_TRANSACTION_LOG" in text or "DeltaFileNotFoundException" in text:
        return "is missing"
    if "ChecksumException" in text:
        return "does not match its .crc checksum"
    if re.search(r"Json\w*Exception|MALFORMED_RECORD", text):
        return "is not valid JSON"
    return "cannot be read" if log_file_failed else None


def log_folder(root: str | None) -> str:
    """Where failure logs go: `<storage.root>/logs` for a local root, else the temp folder."""
    local = local_path(root) if root else None
    return os.path.join(local, "logs") if local else tempfile.gettempdir()


def write_log(
    exc: BaseException,
    command: str,
    root: str | None,
    redact: Callable[[str], str] = lambda text: text,
) -> str | None:
    """Write the full traceback (with Spark's Java stack trace) to a new file under
    `log_folder(root)`, or the temp folder if that cannot be written; its path, or None."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name = f"lakeml-{command}-{stamp}-{os.getpid()}.log"
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    body = redact(f"lakeml {' '.join(sys.argv[1:]) or command}\n\n{''.join(lines)}")
    for folder in dict.fromkeys([log_folder(root), tempfile.gettempdir()]):
        try:
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, name)
            with open(path, "w", encoding="utf-8") as f:
                f.write(body)
            return path
        except OSError:  # this folder cannot be written: try the next one
            continue
    return None


def describe(exc: BaseException, tables: Mapping[str, str], log: str | None = None) -> Failure:
    """The line and exit status for `exc`; `log` is where its traceback was written."""
    if isinstance(exc, KeyboardInterrupt):
        return Failure("interrupted", INTERRUPTED, log)
    details = f" (full traceback in {log})" if log else ""
    message = user_failure(exc, tables)
    if message is not None:
        return Failure(" ".join(f"{message}{details}".split()), USER, log)
    text = " ".join(f"{type(exc).__name__}: {reason(exc)}".split())
    return Failure(f"internal error: {text}{details}", INTERNAL, log)
