"""Database URLs as they may be printed: the password hidden, whatever it holds."""

from __future__ import annotations

from urllib.parse import unquote

HIDDEN_URL = "(a database URL that could not be read safely; not shown)"
_MASK = "***"


def masked_url(url: str) -> str:
    """The database URL as it may be printed or logged: any PostgreSQL password (URL or
    `key=value` form, escaped or not) replaced by `***`. Read as libpq reads it; when that
    reading and the text disagree about where the password is, nothing of it is shown."""
    if url.startswith("sqlite:") or not url.strip():
        return url  # a file path: nothing secret in it
    try:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo
    except ImportError:  # without the driver the URL cannot be used anyway
        return HIDDEN_URL
    try:
        parsed = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
    except Exception:
        return HIDDEN_URL
    secrets = {k: v for k, v in parsed.items() if "password" in k.lower()}
    _, sep, rest = url.partition("://")
    userinfo = rest.rpartition("@")[0] if sep else ""
    written = unquote(userinfo.partition(":")[2]) if ":" in userinfo else None
    if written is not None and secrets.get("password") != written:
        return HIDDEN_URL  # the text has a password where libpq did not read one
    if not secrets:
        return HIDDEN_URL if "password" in url.lower() else url
    masked = make_conninfo(**{k: _MASK if k in secrets else v for k, v in parsed.items()})
    if any(value and value in masked for value in secrets.values()):
        return HIDDEN_URL
    return masked
