"""Opening PostgreSQL the one way the gallery and the video jobs both use.

Every connection gets a connect timeout, TCP keepalives and a user timeout (a server that vanishes
without closing the connection, as on a cut network, fails a statement in seconds, not after the
kernel's TCP timeout of many minutes), the session time zone UTC (stored times read back the same
on every replica whatever the server's setting), and an application name that shows in
``pg_stat_activity``. Driver failures leave through :func:`translate` as gallery errors, and
URLs appear in messages only through ``redact``: a password never reaches a log line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg.errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from .errors import GalleryError, GalleryFullError, GalleryOpenError, GalleryUnavailableError
from .urls import redact

CONNECT_TIMEOUT_S = 5
POOL_TIMEOUT_S = 5.0
# Dead-peer detection: first probe after 10 s idle, then every 5 s, given up after 3 (25 s);
# unacknowledged writes fail after 15 s.
KEEPALIVES = {"keepalives_idle": "10", "keepalives_interval": "5", "keepalives_count": "3", "tcp_user_timeout": "15000"}
SESSION_OPTIONS = "-c TimeZone=UTC"
# SQLSTATEs that mean "the server or the connection went away, try again": admin shutdown,
# crash shutdown, cannot connect now, connection exceptions, serialization failure, deadlock.
_RETRYABLE = ("57P01", "57P02", "57P03", "08000", "08003", "08006", "40001", "40P01")


def conninfo(url: str, application_name: str) -> str:
    """``url`` with the timeouts, keepalives and name above (settings in the URL win)."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error as exc:
        raise GalleryOpenError(f"FACE_GALLERY {redact(url)} is not a PostgreSQL URL psycopg accepts: {exc}") from None
    params.setdefault("connect_timeout", str(CONNECT_TIMEOUT_S))
    params.setdefault("application_name", application_name)
    for key, value in KEEPALIVES.items():
        params.setdefault(key, value)
    return make_conninfo("", **params)


def translate(exc: Exception, where: str) -> GalleryError:
    """A psycopg failure as the gallery error the layers above understand (``where`` is redacted)."""
    if isinstance(exc, psycopg.errors.DiskFull):
        return GalleryFullError(f"PostgreSQL at {where} is out of disk space: {exc}")
    if isinstance(exc, (psycopg.OperationalError, PoolTimeout)) or getattr(exc, "sqlstate", "") in _RETRYABLE:
        return GalleryUnavailableError(f"PostgreSQL at {where} is unreachable: {exc}".strip())
    return GalleryError(f"PostgreSQL error: {exc}")


def check_connection(info: str, where: str, what: str) -> None:
    """One plain connection, so that the error says why (refused, bad password, no database)."""
    try:
        psycopg.connect(info).close()
    except psycopg.Error as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise GalleryOpenError(
            f"cannot connect to {what} {where}: {reason} (is PostgreSQL running there, and are the user, "
            "password and database in FACE_GALLERY right?)"
        ) from None


def open_pool(info: str, *, name: str, max_size: int, failure: str, **connection_kwargs: Any) -> ConnectionPool:
    """A small pool, opened now so that a wrong URL or a server that is down stops the start with
    ``failure`` (a ``GalleryOpenError``) instead of failing the first request; connections are
    checked before each use, so one cut while idle is replaced rather than handed out."""
    connection_kwargs.setdefault("options", SESSION_OPTIONS)
    pool = ConnectionPool(
        info,
        min_size=1,
        max_size=max_size,
        kwargs=connection_kwargs,
        check=ConnectionPool.check_connection,
        open=False,
        name=name,
    )
    try:
        pool.open(wait=True, timeout=CONNECT_TIMEOUT_S * 2)
    except PoolTimeout:
        pool.close()
        raise GalleryOpenError(failure) from None
    return pool


def connect_pool(url: str, *, name: str, max_size: int, what: str, **connection_kwargs: Any) -> ConnectionPool:
    """The pool of ``url`` for the component ``name`` (``what`` names it in errors), checked first."""
    info = conninfo(url, name)
    where = redact(url)
    check_connection(info, where, what)
    return open_pool(
        info,
        name=name,
        max_size=max_size,
        failure=f"cannot connect to {what} {where}: is PostgreSQL running there, and are the user, password "
        "and database in FACE_GALLERY right?",
        **connection_kwargs,
    )


@contextmanager
def pooled_cursor(pool: ConnectionPool, where: str, transaction: bool = True) -> Iterator[psycopg.Cursor]:
    """A cursor on a pooled connection (inside one transaction); driver errors translated."""
    try:
        with pool.connection(timeout=POOL_TIMEOUT_S) as conn:
            if transaction:
                with conn.transaction(), conn.cursor() as cur:
                    yield cur
            else:
                with conn.cursor() as cur:
                    yield cur
    except (psycopg.Error, PoolTimeout) as exc:
        raise translate(exc, where) from exc


def listen_connection(info: str) -> psycopg.Connection:
    """An autocommit connection for LISTEN (the replica sync's own, outside the pool)."""
    try:
        return psycopg.connect(info, autocommit=True)
    except psycopg.Error as exc:
        raise translate(exc, "the gallery database") from exc
