"""The API's spec declares a key where one is asked for, and only there."""

from __future__ import annotations

from inference_service.api.app import create_app
from inference_service.config import Settings

READS = [("get", "/videos"), ("get", "/videos/{job_id}"), ("get", "/identities"), ("get", "/identities/{name}")]
WRITES = [("post", "/videos"), ("delete", "/videos/{job_id}"), ("delete", "/identities/{name}")]


def security(settings: Settings) -> dict[tuple[str, str], list | None]:
    spec = create_app(settings).openapi()
    return {(m, p): spec["paths"][p][m].get("security") for m, p in READS + WRITES}


def test_reads_declare_no_key_without_a_read_key():
    declared = security(Settings(api_key="write-key"))
    assert all(declared[op] is None for op in READS), declared
    assert all(declared[op] == [{"APIKeyHeader": []}] for op in WRITES), declared


def test_reads_declare_the_read_key_when_one_is_set():
    declared = security(Settings(api_key="write-key", read_api_key="read-key"))
    assert all(declared[op] == [{"ReadKey": []}] for op in READS), declared
    assert all(declared[op] == [{"APIKeyHeader": []}] for op in WRITES), declared


def test_head_of_the_annotated_video_is_served():
    spec = create_app(Settings()).openapi()
    assert {"get", "head"} <= set(spec["paths"]["/videos/{job_id}/annotated"])
