"""The site's settings, read from the environment (``WEB_*`` for the site, ``FACE_*`` shared with the API).

``FACE_API_KEY``, ``FACE_READ_API_KEY`` and ``FACE_MAX_UPLOAD_MB`` deliberately use the API's own variable names: one
environment (a shell, a compose file) then configures both services the same way, so the site's
upload limit always matches the API's and the key it forwards is the key the API expects.
"""

from __future__ import annotations

import secrets

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(name: str, field: str) -> AliasChoices:
    """Accept the environment variable name and, for code and tests, the field name."""
    return AliasChoices(name, field)


class WebSettings(BaseSettings):
    """Configuration of the Flask site; every field names the variable it is read from."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, case_sensitive=False)

    host: str = Field(
        "127.0.0.1", validation_alias=_env("WEB_HOST", "host"), description="Interface the site binds to."
    )
    port: int = Field(
        5000, ge=1, le=65535, validation_alias=_env("WEB_PORT", "port"), description="TCP port of the site."
    )
    api_url: str = Field(
        "http://127.0.0.1:8000",
        validation_alias=_env("FACE_API_URL", "api_url"),
        description="Base URL of the inference API.",
    )
    api_key: str | None = Field(
        None,
        validation_alias=_env("FACE_API_KEY", "api_key"),
        description="Sent as X-API-Key on enrollment and deletion; the API needs it when it has one set.",
    )
    read_api_key: str | None = Field(
        None,
        validation_alias=_env("FACE_READ_API_KEY", "read_api_key"),
        description=(
            "Sent as X-API-Key on recognition and gallery listings (without it the site sends FACE_API_KEY, "
            "which the API accepts for reads too); the API needs one when it runs with FACE_READ_API_KEY."
        ),
    )
    secret_key: str = Field(
        default_factory=lambda: secrets.token_hex(32),
        validation_alias=_env("WEB_SECRET_KEY", "secret_key"),
        description="Signs the session cookie (CSRF token); random per process when unset.",
    )
    password: SecretStr | None = Field(
        None,
        validation_alias=_env("WEB_PASSWORD", "password"),
        description="When set, every page but Recognize needs a login with this password (the site acts with its own API keys).",
    )
    max_upload_mb: float = Field(
        10.0,
        gt=0,
        validation_alias=_env("FACE_MAX_UPLOAD_MB", "max_upload_mb"),
        description="Largest upload in MiB; the API's default too, so the site refuses what the API would.",
    )
    api_timeout_s: float = Field(
        60.0,
        gt=0,
        validation_alias=_env("WEB_API_TIMEOUT", "api_timeout_s"),
        description="Seconds to wait for the API; CPU recognition of a large photo takes a few seconds.",
    )

    threads: int = Field(
        8,
        ge=1,
        le=256,
        validation_alias=_env("WEB_THREADS", "threads"),
        description=(
            "waitress worker threads: requests served at once. Each mostly waits on the API (a photo's "
            "recognition takes seconds on a CPU) or streams a video, so more threads than cores pay off."
        ),
    )

    max_video_mb: float = Field(
        500.0,
        gt=0,
        validation_alias=_env("FACE_MAX_VIDEO_MB", "max_video_mb"),
        description="Largest video upload in MiB, the API's limit too; a video passes through a temporary file.",
    )

    live_url: str | None = Field(
        None,
        validation_alias=_env("WEB_LIVE_URL", "live_url"),
        description="The API's /live WebSocket as browsers reach it (default: FACE_API_URL with ws:// and /live).",
    )

    @field_validator("api_key", "read_api_key", "password", mode="before")
    @classmethod
    def _blank_key_is_none(cls, value: object) -> object:
        """``FACE_API_KEY=`` or ``WEB_PASSWORD=`` (set but empty, as compose may pass it) means none."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("secret_key", mode="before")
    @classmethod
    def _blank_secret_is_random(cls, value: object) -> object:
        return secrets.token_hex(32) if value is None or (isinstance(value, str) and not value.strip()) else value

    @field_validator("api_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
