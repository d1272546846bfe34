"""Identity names: which strings name a person, and when two spellings name the same one.

People's names come in every script, and one name can arrive in several byte forms (``Zoë``
typed as one code point or as ``e`` plus a combining diaeresis) and several cases (``Obama``,
``obama``). Every layer that takes a name from outside (the API, the site, the pipeline, the
stores) goes through :func:`validate_name`, which returns the NFC form to store and display,
and compares identities by :func:`name_key`, so one person is never split into several.
"""

from __future__ import annotations

import unicodedata

MAX_NAME_LENGTH = 64
# Besides letters (Unicode L*), combining marks (M*) and decimal digits (Nd).
NAME_PUNCTUATION = " _-.'"
NAME_RULE = (
    f"identity names are 1-{MAX_NAME_LENGTH} characters: letters of any script, digits, space and "
    "_ - . ' with at least one letter or digit and no leading or trailing space"
)


class InvalidNameError(ValueError):
    """A name outside the allowed characters or length (the API answers 422 with the rule)."""


def _allowed(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] in "LM" or category == "Nd" or char in NAME_PUNCTUATION


def validate_name(name: str) -> str:
    """The name in NFC, the form it is stored and shown in; ``InvalidNameError`` if not a name."""
    if not isinstance(name, str):
        raise InvalidNameError(NAME_RULE)
    normal = unicodedata.normalize("NFC", name)
    if (
        not 1 <= len(normal) <= MAX_NAME_LENGTH
        or normal.strip() != normal
        or not all(_allowed(c) for c in normal)
        or not any(unicodedata.category(c)[0] == "L" or unicodedata.category(c) == "Nd" for c in normal)
    ):
        raise InvalidNameError(NAME_RULE)
    return normal


def name_key(name: str) -> str:
    """What identities are compared by: ``Obama``, ``OBAMA`` and ``obama`` are one person.

    ``casefold`` (not ``lower``) so that e.g. German ``ß``/``SS`` and Greek final sigma compare
    as people expect; NFC again afterwards because case folding can decompose characters.
    """
    return unicodedata.normalize("NFC", validate_name(name).casefold())


def identity_key(name: str) -> str:
    """The key a stored name is compared by: ``names.name_key`` for every name the current rule
    accepts; names an older rule let in (``-``, ``A×B``) get the same folding, so they stay
    reachable and deletable instead of breaking the migration."""
    try:
        return name_key(name)
    except InvalidNameError:
        return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())
