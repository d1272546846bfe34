"""Who acts on the gallery, what they attach to a write, and the audit trail's records.

A write (enroll, delete, expiry erase) carries a :class:`WriteContext` through a context
variable rather than through ``Gallery``'s methods: the store reads it inside the write's own
transaction, so the faces, the consent record, the expiry and the audit row are committed
together or not at all, and the gallery's write API stays as it is. Code that writes without a
context (``copy``, tests of the stores) leaves no audit row.

The trail never holds an image or an embedding: the time, the action, the identity, the face
ids, the key label and the client address.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .names import identity_key

ACTIONS = (
    "enroll",
    "delete_face",
    "delete_identity",
    "expire",
    "export",
    "rename",
    "merge",
    "move_face",
    "dismiss_pair",
)
CONSENT_MAX_LENGTH = 200


@dataclass(frozen=True)
class Actor:
    """Which client acted: the label of its API key (None where no key is configured) and its
    address."""

    key_label: str | None = None
    client: str | None = None


@dataclass(frozen=True)
class WriteContext:
    """What a write carries besides its faces.

    ``expired_before`` turns a delete into an expiry erase that only happens while the identity's
    ``expires_at`` is at or before that time, checked inside the store's write transaction: of
    several replicas sweeping at once, exactly one erases and audits.
    """

    actor: Actor = field(default_factory=Actor)
    consent: str | None = None
    expires_at: datetime | None = None
    expired_before: datetime | None = None
    forget_names: bool = False


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    at: str
    action: str
    identity: str | None
    face_ids: tuple[str, ...]
    key_label: str | None
    client: str | None
    consent: str | None = None  # the consent text an enrollment carried
    detail: str | None = None  # what a rename, merge or move did, e.g. "from 'Chris Lee'"

    def as_json(self) -> dict:
        return {
            "seq": self.seq,
            "at": self.at,
            "action": self.action,
            "identity": self.identity,
            "face_ids": list(self.face_ids),
            "key_label": self.key_label,
            "client": self.client,
            "consent": self.consent,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class ConsentEntry:
    """One consent given at one enrollment; an identity keeps all of them, oldest first."""

    text: str
    given_at: str
    key_label: str | None

    def as_json(self) -> dict:
        return {"text": self.text, "given_at": self.given_at, "key_label": self.key_label}


@dataclass(frozen=True)
class IdentityTerms:
    """What is recorded about a person besides their faces."""

    name: str
    created_at: str
    consent: str | None
    consent_at: str | None
    consent_by: str | None
    expires_at: str | None

    def consent_json(self) -> dict | None:
        if self.consent is None:
            return None
        return {"text": self.consent, "given_at": self.consent_at, "key_label": self.consent_by}


@dataclass(frozen=True)
class AuditQuery:
    identity: str | None = None  # compared by name key: every event under the name, any person's
    identity_uid: str | None = None  # one person's events (an export), whatever names they had
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after: int = 0  # the last seq of the previous page
    limit: int = 100

    def where(self, placeholder: str, time_value: Callable[[datetime], object]) -> tuple[str, list]:
        """The SQL condition and arguments of this query, for either store's audit table.

        ``placeholder`` is the driver's parameter mark (``?`` or ``%s``); ``time_value`` turns a
        bound of the time range into what that table stores.
        """
        where, args = [f"seq > {placeholder}"], list[object]([self.after])
        if self.identity is not None:
            where.append(f"name_key = {placeholder}")
            args.append(identity_key(self.identity))
        if self.identity_uid is not None:
            where.append(f"identity_uid = {placeholder}")
            args.append(self.identity_uid)
        if self.action is not None:
            where.append(f"action = {placeholder}")
            args.append(self.action)
        if self.since is not None:
            where.append(f"at >= {placeholder}")
            args.append(time_value(self.since))
        if self.until is not None:
            where.append(f"at < {placeholder}")
            args.append(time_value(self.until))
        return " AND ".join(where), args


def visible_consent(text: str | None) -> str | None:
    """The consent stripped of surrounding space; None when nothing in it is visible.

    A consent must say something a person can read: only spaces, zero-width or other format
    characters (U+200B, U+2060, U+FEFF), or control characters record nothing, so they count as
    no consent at all (refused where consent is required).
    """
    stripped = (text or "").strip()
    if not any(unicodedata.category(c)[0] in "LMNPS" for c in stripped):
        return None
    return stripped


_current: ContextVar[WriteContext | None] = ContextVar("gallery_write_context", default=None)


@contextmanager
def acting(context: WriteContext) -> Iterator[WriteContext]:
    """Run the writes of the ``with`` body under ``context`` (in this thread/task only)."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def current() -> WriteContext | None:
    return _current.get()


def utc_text(moment: datetime) -> str:
    """One textual form for every stored time, so SQLite compares them as strings correctly."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def now_utc() -> datetime:
    return datetime.now(UTC)
