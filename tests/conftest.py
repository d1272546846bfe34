"""Shared fixtures: the labelled faces in ``FACES_DIR`` and one real engine per test session.

With ``FACE_REQUIRE_DATA=1`` (as ``.ci/run`` sets) any skipped test fails the run, so a CI
machine without the face data cannot pass by skipping. The one exception: a test that needs a
privilege the machine may not grant (mounting a tmpfs, ``chattr``) skips with a reason that
starts with ``OPTIONAL_SKIP``; such a skip is reported but does not fail the run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.faces import OPTIONAL_SKIP, ManifestRow, faces_dir_path, read_manifest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    root = faces_dir_path()
    if not (root / "MANIFEST.tsv").is_file():
        pytest.skip(f"labelled faces not found: set FACES_DIR (looked in {root})")
    return root


@pytest.fixture(scope="session")
def manifest(faces_dir: Path) -> list[ManifestRow]:
    return read_manifest(faces_dir)


@pytest.fixture(scope="session")
def engine():
    """The real engine with the offline embedder (dlib-resnet), shared by all tests."""
    from inference_service.config import Settings
    from inference_service.engine import FaceEngine

    return FaceEngine.from_settings(Settings(embedder="dlib-resnet", threads=2))


UNIT_DIR = Path(__file__).resolve().parent / "unit"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under ``tests/unit`` is marked ``unit`` (no model weights, no servers, no test
    faces; others may carry the marker themselves), and unit tests run first, in their order, so a
    broken refactor fails in seconds rather than after the slow tests. ``tryfirst`` so that the
    marker is set before ``-m unit`` selects."""
    for item in items:
        if UNIT_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.unit)
    items.sort(key=lambda item: item.get_closest_marker("unit") is None)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's) driven by playwright; skips without it."""
    from support.live_servers import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("FACE_REQUIRE_DATA") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    skipped = [r for r in skipped if OPTIONAL_SKIP not in _skip_reason(r)]
    if skipped:
        reporter.write_line(
            f"FACE_REQUIRE_DATA=1: {len(skipped)} test(s) skipped; a required test may not skip", red=True
        )
        session.exitstatus = 1


@pytest.fixture(scope="session")
def pg_server():
    """A throwaway PostgreSQL server for the session (tests/pg_server.py); skips without binaries."""
    from support.pg_server import pg_bin_dir, start_postgres

    if pg_bin_dir() is None:
        pytest.skip("PostgreSQL binaries not found: apt-get install postgresql (.ci/run does)")
    server = start_postgres()
    yield server
    server.remove()


@pytest.fixture
def pg_url(pg_server, request) -> str:
    """A fresh, empty database on the session's server for one test."""
    import re
    import uuid

    name = re.sub(r"\W", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:8]
    return pg_server.create_database(name)
