"""Token on every route but health, no leaks in error bodies, loopback rule of ``python -m
backend``, CORS off, no torch in the API process, OpenAPI models, gzip rules, the SPA."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from backend.app import create_app

REPO = Path(__file__).resolve().parents[2]
TOKEN = "tok-" + "x" * 28


@pytest.fixture
def secured(settings):
    app = create_app(settings.model_copy(update={"api_token": TOKEN}))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield app, c


def api_routes(app) -> list[tuple[str, str]]:
    """Every (method, concrete path) of the API, from the app's own OpenAPI document."""
    out = []
    for path, ops in app.openapi()["paths"].items():
        for method in ops:
            concrete = (path.replace("{dataset_id}", "1").replace("{job_id}", "1").replace("{file_id}", "1")
                        .replace("{sample_id}", "1").replace("{path}", "a.nii.gz"))
            out.append((method.upper(), concrete))
    return out


def test_every_route_but_health_needs_the_token(secured):
    app, c = secured
    routes = api_routes(app)
    assert len(routes) >= 20
    for method, path in routes:
        r = c.request(method, path)
        if path == "/api/health":
            assert r.status_code == 200
            continue
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.headers["www-authenticate"] == "Bearer"
        bad = c.request(method, path, headers={"Authorization": "Bearer " + "x" * len(TOKEN)})
        assert bad.status_code == 401, (method, path)
        good = c.request(method, path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert good.status_code != 401, (method, path)


def test_token_flow_works_end_to_end(secured):
    _, c = secured
    h = {"Authorization": f"Bearer {TOKEN}"}
    assert c.post("/api/datasets", json={"name": "x"}, headers=h).status_code == 201
    assert c.post("/api/datasets", json={"name": "x"}).status_code == 401
    assert c.get("/api/datasets", headers={"Authorization": TOKEN}).status_code == 401  # scheme needed


def test_internal_errors_do_not_leak(app, settings):
    with app.state.session_factory() as s:  # a corrupt row: config must be an object
        s.execute(text("INSERT INTO jobs (kind, status, device, queue, config, step, total, cancel_requested, "
                       "attempts, created_at) VALUES ('train', 'failed', 'auto', 'cpu', '[1, 2]', 0, 0, 0, 0, "
                       "'2026-01-01 00:00:00')"))
        s.commit()
        jid = s.execute(text("SELECT max(id) FROM jobs")).scalar()
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get(f"/api/jobs/{jid}")
    assert r.status_code == 500
    assert r.json() == {"detail": "internal server error"}
    assert str(settings.resolved_data_dir) not in r.text and "Traceback" not in r.text


def test_404_and_405_are_json(client):
    assert client.get("/api/nope").json() == {"detail": "Not Found"}
    assert client.get("/api/nope").status_code == 404
    assert client.patch("/api/jobs").status_code == 405


def _run_main(env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("API_TOKEN", "ALLOW_INSECURE", "HOST")}
    return subprocess.run([sys.executable, "-m", "backend"], env={**full, **env}, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_refuses_non_loopback_host_without_token(tmp_path):
    r = _run_main({"HOST": "0.0.0.0", "DATA_DIR": str(tmp_path)})
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "API_TOKEN" in lines[0] and "ALLOW_INSECURE" in lines[0]
    assert not (tmp_path / "db.sqlite").exists()  # refused before touching anything


@pytest.mark.parametrize("extra", [{"API_TOKEN": TOKEN}, {"ALLOW_INSECURE": "1"}])
def test_non_loopback_host_starts_with_a_token_or_on_purpose(tmp_path, redis_url, extra):
    import httpx
    from servers import free_port, wait_for_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("API_TOKEN", "ALLOW_INSECURE")}
    env.update(HOST="0.0.0.0", PORT=str(port), DATA_DIR=str(tmp_path), REDIS_URL=redis_url, **extra)
    proc = subprocess.Popen([sys.executable, "-m", "backend"], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, timeout=30, proc=proc)
        assert httpx.get(f"http://127.0.0.1:{port}/api/health").json()["database"] == "ok"
        want = 401 if "API_TOKEN" in extra else 200
        assert httpx.get(f"http://127.0.0.1:{port}/api/jobs").status_code == want
    finally:
        proc.terminate()
        proc.wait(15)


def test_loopback_rule():
    from backend.__main__ import is_loopback

    assert all(is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "127.1.2.3", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.5", "example.org"))


def test_cors_is_off_by_default(client):
    r = client.options("/api/datasets", headers={"Origin": "https://evil.example",
                                                 "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in r.headers
    r = client.get("/api/datasets", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_api_process_never_imports_torch(tmp_path, redis_url):
    """Create the app in a fresh interpreter, exercise the routes that validate configs and
    read files, and look at sys.modules."""
    script = r"""
import sys, io, gzip
import numpy as np, nibabel as nib
from fastapi.testclient import TestClient
from backend.app import create_app
c = TestClient(create_app())
ds = c.post('/api/datasets', json={'name': 'x'}).json()['id']
img = nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4))
assert c.put(f'/api/datasets/{ds}/files/a.nii.gz', content=gzip.compress(img.to_bytes())).status_code == 201
assert c.post(f'/api/datasets/{ds}/commit').status_code == 200
cfg = {'is_3d': True, 'dataset': {'name': 'volume3d', 'image_size': 8}, 'model': {'unet': {'dim': 8, 'channel_mults': [1, 2], 'num_head_channels': 8}}}
r = c.post('/api/jobs', json={'kind': 'train', 'dataset_id': ds, 'config': cfg})
assert r.status_code == 201, r.text
for p in ('/api/jobs', '/api/health', '/api/workers', '/docs', '/openapi.json'):
    c.get(p)
print('TORCH' if any(m == 'torch' or m.startswith('torch.') for m in sys.modules) else 'NO-TORCH')
"""
    env = {**os.environ, "DATA_DIR": str(tmp_path), "REDIS_URL": redis_url}
    env.pop("API_TOKEN", None)
    r = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "NO-TORCH"


def test_openapi_documents_every_route(client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for p in ["/api/health", "/api/workers", "/api/datasets", "/api/datasets/{dataset_id}",
              "/api/datasets/{dataset_id}/files/{path}", "/api/datasets/{dataset_id}/commit",
              "/api/datasets/{dataset_id}/files/{file_id}", "/api/jobs", "/api/jobs/{job_id}",
              "/api/jobs/{job_id}/metrics", "/api/jobs/{job_id}/events", "/api/jobs/{job_id}/cancel",
              "/api/jobs/{job_id}/resume", "/api/jobs/{job_id}/samples", "/api/jobs/{job_id}/checkpoint",
              "/api/jobs/{job_id}/log", "/api/samples/{sample_id}/volume.nii.gz",
              "/api/samples/{sample_id}/preview.png"]:
        assert p in paths, p
    create = paths["/api/jobs"]["post"]
    assert create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/JobOut")
    assert "discriminator" in str(create["requestBody"])
    upload = paths["/api/datasets/{dataset_id}/files/{path}"]["put"]
    assert "application/octet-stream" in upload["requestBody"]["content"]
    assert {"400", "413", "415"} <= set(upload["responses"])
    assert client.get("/docs").status_code == 200
    # 422 is documented as what the server sends: {"detail": [{"loc": "config.model.lr", "msg": ...}]}
    schemas = spec["components"]["schemas"]
    assert schemas["HTTPValidationError"] == {"$ref": "#/components/schemas/ErrorResponse"}
    assert schemas["ErrorItem"]["properties"]["loc"]["type"] == "string"


def test_gzip_for_json_but_not_for_streams_or_volumes(client):
    for i in range(30):
        client.post("/api/datasets", json={"name": f"dataset number {i}"})
    r = client.get("/api/datasets", headers={"Accept-Encoding": "gzip"})
    assert r.headers.get("content-encoding") == "gzip" and len(r.json()) == 30


def test_workers_and_health_count_live_workers(app, client):
    from backend.leases import heartbeat
    from backend.worker_registry import remove_worker

    assert client.get("/api/health").json() == {"status": "ok", "database": "ok", "broker": "ok", "workers": 0,
                                                "live_workers": []}
    with app.state.session_factory() as s:
        heartbeat(s, "gpu0@host", queues=["gpu", "cpu"], device="cuda:0")
    assert client.get("/api/health").json()["workers"] == 1
    w = client.get("/api/workers").json()
    assert [(x["name"], x["queues"], x["device"], x["current_job_id"]) for x in w] == [
        ("gpu0@host", ["gpu", "cpu"], "cuda:0", None)]
    with app.state.session_factory() as s:
        remove_worker(s, "gpu0@host")
    assert client.get("/api/workers").json() == []


def test_health_reports_broker_down(app, settings):
    app.state.settings = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with TestClient(app) as c:
        r = c.get("/api/health")
    assert r.status_code == 200 and r.json()["broker"] == "error" and r.json()["status"] == "degraded"


def test_spa_is_served_with_fallback(tmp_path, settings):
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<html>app</html>")
    (dist / "assets" / "app.js").write_text("console.log(1)")
    app = create_app(settings.model_copy(update={"frontend_dir": dist}))
    with TestClient(app) as c:
        assert c.get("/").text == "<html>app</html>"
        assert c.get("/jobs/12").text == "<html>app</html>"  # client-side route
        r = c.get("/assets/app.js")
        assert r.text == "console.log(1)" and "immutable" in r.headers["cache-control"]
        assert c.get("/%2e%2e/%2e%2e/etc/passwd").text == "<html>app</html>"
        r = c.get("/api/unknown")
        assert r.status_code == 404 and r.json() == {"detail": "Not Found"}


def test_without_frontend_root_says_so(client):
    r = client.get("/")
    assert r.status_code == 404 and "/docs" in r.json()["detail"]
