"""What the browser tests share: Chromium's policy complaints, the login form."""

from __future__ import annotations

CSP_WORDS = ("Content Security Policy", "Refused to")


def csp_messages(page) -> list[str]:
    """Collect what Chromium says when the policy blocks something (console errors and page errors)."""
    seen: list[str] = []
    page.on("console", lambda message: seen.append(message.text) if any(w in message.text for w in CSP_WORDS) else None)
    page.on("pageerror", lambda error: seen.append(str(error)))
    return seen


def login_form(page, password: str) -> None:
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("main form button[type=submit]")
