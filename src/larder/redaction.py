"""Keeping credentials out of everything larder stores or prints.

A URL may carry credentials in its userinfo (``redis://:pw@host/0``, ``postgresql://user:pw@db/x``)
or in its query string (``?password=...``, ``?token=...``, ``?sig=...``). larder records, embeds in
models, prints and logs URLs only after :func:`redact_url`:

* ``redact_url(url)`` replaces the userinfo (``user:password@``) and each secret parameter with
  ``***`` (for messages and logs: the reader sees that there was one);
* ``redact_url(url, remove=True)`` drops them (for what is persisted, so that the URL stays usable
  and the credentials come from the environment where it is used: ``PGUSER``/``PGPASSWORD`` or
  ``~/.pgpass`` for PostgreSQL, ``REDIS_USERNAME``/``REDIS_PASSWORD`` for Redis, boto3's chain for
  AWS).

:func:`redact_text` does the same for every URL inside a free-text message (an exception from a
driver, say).

>>> redact_url("redis://:hunter2@cache:6379/0?password=hunter2&ssl_cert_reqs=none")
'redis://***@cache:6379/0?password=***&ssl_cert_reqs=none'
>>> redact_url("postgresql+psycopg://larder:hunter2@db/larder", remove=True)
'postgresql+psycopg://db/larder'
>>> redact_text("cannot connect to redis://u:pw@h:1/0: refused")
'cannot connect to redis://***@h:1/0: refused'
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

MASK = "***"
#: Query-string parameters (and option names) whose values are secrets, matched ignoring case: these
#: anywhere in the name, or the whole name one of ``sig``, ``key``, ``pass``.
_SECRET_PARAM = re.compile(
    r"passw|passwd|pwd|token|secret|api[_-]?key|access[_-]?key|private[_-]?key|account[_-]?key|credential"
    r"|signature|auth|^sig$|^key$|^pass$",
    re.IGNORECASE,
)
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")


def is_secret_param(name: str) -> bool:
    """Whether a URL query parameter (or an option) of this name holds a secret."""
    return bool(_SECRET_PARAM.search(name))


def redact_url(url: str, *, remove: bool = False) -> str:
    """``url`` with its password and secret query parameters masked (``***``) or removed."""
    if not isinstance(url, str) or "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        password = parts.password
        username = parts.username
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # an unparseable URL: keep only the scheme, nothing that could be a secret
        return url.split("://", 1)[0] + "://" + MASK
    netloc = parts.netloc
    if "@" in netloc:  # userinfo (user, password): masked as a whole, or removed
        host_port = netloc.rsplit("@", 1)[1]
        netloc = host_port if remove else f"{MASK}@{host_port}"
    del password, username, host, port
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = []
        for key, value in pairs:
            if is_secret_param(key):
                if remove:
                    continue
                value = MASK
            kept.append(f"{quote(key, safe='')}={quote(value, safe='*')}")
        query = "&".join(kept)
    if netloc == parts.netloc and query == parts.query:
        return url
    return (f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
            + (f"#{parts.fragment}" if parts.fragment else ""))


def redact_text(text: str, *, secrets: tuple[str, ...] = ()) -> str:
    """``text`` with every URL in it redacted, and each of ``secrets`` (known secret values) masked."""
    out = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), str(text))
    for secret in secrets:
        if secret:
            out = out.replace(secret, MASK)
    return out


def redact_mapping(data: dict[str, Any], *, remove: bool = True) -> dict[str, Any]:
    """A copy of a JSON-able mapping (a store spec, options) with URL values redacted and values of
    secret-named keys dropped (``remove``) or masked, recursively."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if is_secret_param(str(key)) and value is not None and not isinstance(value, bool) \
                and not str(key).endswith("_env"):
            if remove:
                continue
            value = MASK
        elif isinstance(value, str):
            value = redact_url(value, remove=remove)
        elif isinstance(value, dict):
            value = redact_mapping(value, remove=remove)
        out[key] = value
    return out


__all__ = ["MASK", "is_secret_param", "redact_mapping", "redact_text", "redact_url"]
