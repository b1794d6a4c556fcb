"""Keep secrets out of what lakeml shows: the config logged to MLflow, messages, the summary.

A secret is the value of a config key whose name says it is one (`fs.s3a.secret.key`,
`password`, `token`), the value of an environment variable whose name says so
(`${AWS_SECRET_ACCESS_KEY}`), or the user info of a URI (`http://alice:pw@host`). The
config logged to MLflow hides every value taken from the environment as well
(`lakeml.core.config_read`). Pure string functions: importing this module is cheap.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

REDACTED = "***"
# Shorter values would blank out ordinary words and numbers wherever they appear in a
# message; a credential is never that short.
MIN_SECRET_LENGTH = 4

# A bare `key` is not enough: tables have columns like customer_key.
_SECRET_NAME = re.compile(
    r"secret|passw(or)?d|token|credential"
    r"|(access|account|api|client|encryption|master|private|sas|signing)[._-]?key"
    r"|(^|[._-])(pass|pw|pwd|sig)($|[._-])",
    re.IGNORECASE,
)
# scheme://userinfo@ : the user info runs to the last @ before the host's end.
_URI_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^\s/?#@]*(?:@[^\s/?#@]*)*)@"
)
_QUERY_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;\s#]+)=(?P<value>[^&;\s#'\"]*)")


def is_secret_name(name: str) -> bool:
    """Whether a config key or an environment variable's name says its value is a secret."""
    return bool(_SECRET_NAME.search(str(name)))


def redact_uri(uri: str) -> str:
    """`uri` without its password (`http://alice:***@host`), or without its whole user info
    when that is a single token (`https://***@host`); secret query parameters are hidden too."""
    return _redact_uris(uri)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every URI's credentials and every occurrence of `secrets` (as written, or
    escaped the way repr() and JSON quote it) replaced by `***`."""
    forms = {
        form
        for secret in secrets
        if len(secret) >= MIN_SECRET_LENGTH
        for form in (secret, repr(secret)[1:-1], json.dumps(secret)[1:-1])
    }
    # Longest first, so a secret that contains another is hidden whole.
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, REDACTED)
    return _redact_uris(text)


def redact_mapping(
    mapping: Mapping[str, Any], secrets: Iterable[str] = (), *, secret_key: bool = False
) -> dict[str, Any]:
    """A copy of `mapping` in which every value under a secret-looking key is `***` and every
    string is passed through `redact_text(value, secrets)`."""
    known = frozenset(secrets)
    return {k: _redact_value(v, known, secret_key or is_secret_name(k)) for k, v in mapping.items()}


def secret_values(value: Any, secret_key: bool = False) -> set[str]:
    """The text of every value under a secret-looking key in `value` (a mapping or list)."""
    if isinstance(value, Mapping):
        return set().union(
            *(secret_values(v, secret_key or is_secret_name(k)) for k, v in value.items())
        )
    if isinstance(value, list):
        return set().union(*(secret_values(v, secret_key) for v in value))
    return {str(value)} if secret_key and value is not None else set()


def _redact_value(value: Any, secrets: frozenset[str], hidden: bool) -> Any:
    if isinstance(value, Mapping):
        return redact_mapping(value, secrets, secret_key=hidden)
    if isinstance(value, list):
        return [_redact_value(v, secrets, hidden) for v in value]
    if hidden:
        return REDACTED
    return redact_text(value, secrets) if isinstance(value, str) else value


def _redact_uris(text: str) -> str:
    def userinfo(match: re.Match[str]) -> str:
        user, colon, _ = match["info"].partition(":")
        shown = f"{user}:{REDACTED}" if colon else REDACTED
        return f"{match['scheme']}{shown}@"

    def param(match: re.Match[str]) -> str:
        if not is_secret_name(match["name"]) or not match["value"]:
            return match[0]
        return f"{match['lead']}{match['name']}={REDACTED}"

    return _QUERY_PARAM.sub(param, _URI_USERINFO.sub(userinfo, text))


class RedactingStream:
    """A text stream that writes to `stream` what `redact` leaves of each write; `redact` can
    be replaced once the secrets are known (the CLI: by `Config.redact`, after loading)."""

    def __init__(self, stream: Any, redact: Callable[[str], str] = redact_text) -> None:
        self.stream = stream
        self.redact = redact

    def write(self, text: str) -> int:
        return self.stream.write(self.redact(text))

    def flush(self) -> None:
        self.stream.flush()
