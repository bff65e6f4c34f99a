"""Every integer a request carries is bounded: 2^63 (past SQLite's and PostgreSQL's 64-bit
integers) or a negative id gives 404/422 with a JSON detail, never a 500 (an OverflowError deep in
the driver). The cases are read from /openapi.json, so a new route is covered with no edit here."""
from __future__ import annotations

import re
from typing import Any, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from servers import api_server

from backend.app import create_app
from backend.settings import Settings

HUGE = 2**63


def _is_int(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "integer" or any(s.get("type") == "integer" for s in schema.get("anyOf", ()))


def _cases() -> Iterator[tuple[str, str, str]]:
    """(method, path template, integer parameter) for every integer parameter of every operation."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        spec = create_app(Settings(data_dir=f"{tmp}/data", frontend_dir=f"{tmp}/none")).openapi()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for p in op.get("parameters", ()):
                if p["in"] in ("path", "query") and _is_int(p.get("schema", {})):
                    yield method.upper(), path, p["name"]


CASES = sorted(set(_cases()))


def _url(path: str, param: str, value: int, params_in_path: list[str]) -> tuple[str, dict[str, Any]]:
    url = path
    for name in params_in_path:
        url = url.replace("{" + name + "}", str(value) if name == param else "1")
    url = re.sub(r"\{[^}]+\}", "a.png", url)  # a non-integer path part (a file path)
    return url, ({} if param in params_in_path else {param: value})


def test_the_walk_covers_the_id_and_paging_parameters() -> None:
    names = {name for _m, _p, name in CASES}
    assert {"job_id", "dataset_id", "file_id", "sample_id", "offset", "since_step"} <= names


@pytest.fixture(scope="module")
def shared_client(tmp_path_factory, redis_url: str) -> Iterator[TestClient]:
    """One app for the whole walk (a fresh one per case would cost a migration each)."""
    data = tmp_path_factory.mktemp("bounds")
    app = create_app(Settings(data_dir=data / "data", redis_url=redis_url, frontend_dir=data / "none"))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize("method,path,param", CASES, ids=[f"{m} {p} {n}" for m, p, n in CASES])
def test_out_of_range_integer_is_a_client_error(shared_client: TestClient, method: str, path: str,
                                                param: str) -> None:
    params_in_path = re.findall(r"\{([^}:]+)", path)
    for value in (HUGE, 10**30, -HUGE - 1, -1):
        url, query = _url(path, param, value, params_in_path)
        r = shared_client.request(method, url, params=query, content=b"x" if method == "PUT" else None,
                                  json={} if method == "POST" else None)
        assert r.status_code < 500, f"{method} {url} {query}: {r.status_code} {r.text}"
        if param.endswith("_id") or value > 0:
            assert r.status_code in (404, 422), f"{method} {url} {query}: {r.status_code} {r.text}"
        assert "detail" in r.json()


@pytest.mark.parametrize("body", [
    {"kind": "sample", "source_job_id": HUGE},
    {"kind": "sample", "source_job_id": -5},
    {"kind": "train", "dataset_id": HUGE, "config": {"is_3d": True}},
])
def test_huge_ids_in_a_job_body_are_422(client: TestClient, body: dict[str, Any]) -> None:
    r = client.post("/api/jobs", json=body)
    assert r.status_code == 422, r.text
    key = "source_job_id" if "source_job_id" in body else "dataset_id"
    assert any(item["loc"] == key for item in r.json()["detail"]), r.json()


@pytest.fixture(scope="module")
def live_api(tmp_path_factory, redis_url: str) -> Iterator[tuple[str, Settings]]:
    """A real API process: event streams are read over a socket, as a browser does."""
    data_dir = tmp_path_factory.mktemp("bounds-live") / "data"
    env = {"DATA_DIR": str(data_dir), "REDIS_URL": redis_url, "SSE_PING_S": "0.5"}
    with api_server(env) as (base, _proc):
        yield base, Settings(data_dir=data_dir, redis_url=redis_url)


@pytest.mark.parametrize("header", [str(HUGE), str(10**30), "-1", "abc", "9" * 400, "1e9", "", "0x10", "1_000"])
def test_odd_last_event_id_does_not_kill_the_stream(live_api: tuple[str, Settings], header: str) -> None:
    """A cancelled job's stream with any Last-Event-ID: a 200 event stream that starts over with
    the job's snapshot (the id cannot be resumed from) and ends."""
    from backend.db import open_database
    from backend.models import Job

    base, settings = live_api
    with open_database(settings)() as s:
        job = Job(kind="sample", status="cancelled", config={}, total=1)
        s.add(job)
        s.commit()
        job_id = job.id
    timeout = httpx.Timeout(10.0, read=5.0)
    with httpx.stream("GET", f"{base}/api/jobs/{job_id}/events", headers={"Last-Event-ID": header},
                      timeout=timeout) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line and not line.startswith(":")]
    assert "event: status" in lines and any('"snapshot": true' in line for line in lines), lines


def test_every_success_response_names_its_content_type(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    missing = [f"{m.upper()} {p}" for p, ops in spec["paths"].items() for m, op in ops.items()
               for code, resp in op.get("responses", {}).items()
               if code.startswith("2") and code != "204" and not resp.get("content")]
    assert not missing, missing


def test_a_served_file_has_a_documented_content_type(client: TestClient) -> None:
    from upload_files import png_bytes

    ds = client.post("/api/datasets", json={"name": "png"}).json()["id"]
    f = client.put(f"/api/datasets/{ds}/files/a.png", content=png_bytes()).json()
    r = client.get(f["url"])
    assert r.status_code == 200
    op = client.get("/openapi.json").json()["paths"]["/api/datasets/{dataset_id}/files/{file_id}"]["get"]
    assert r.headers["content-type"].split(";")[0] in op["responses"]["200"]["content"]
