"""docker-compose.yml and the Dockerfiles agree with the code: commands, settings, GPUs, volumes.

No Docker engine runs here, so this checks the structure a `docker compose up` relies on.
"""
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from backend.settings import Settings
from worker.worker_settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
WORKERS = {name: s for name, s in SERVICES.items() if name.startswith("worker")}
APP = {name: s for name, s in SERVICES.items() if name == "backend" or name in WORKERS}


def _worker_env_names() -> set[str]:
    """The variables WorkerSettings reads: WORKER_<field>, or the field's own alias."""
    prefix = WorkerSettings.model_config["env_prefix"]
    return {(f.validation_alias if isinstance(f.validation_alias, str) else prefix + name).upper()
            for name, f in WorkerSettings.model_fields.items()}


WORKER_ENV = _worker_env_names()


def test_the_production_set_is_there():
    assert {"redis", "postgres", "backend", "worker-gpu0"} <= set(SERVICES)
    assert set(COMPOSE["volumes"]) >= {"data", "pgdata"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_restarts_and_long_lived_ones_have_healthchecks(name):
    service = SERVICES[name]
    assert service.get("restart") == "unless-stopped"
    if name not in WORKERS:
        assert service["healthcheck"]["test"]


@pytest.mark.parametrize("name", sorted(APP))
def test_commands_start_modules_that_exist(name):
    command = SERVICES[name]["command"]
    assert command[:2] == ["python", "-m"]
    module = command[2]
    assert module == ("worker" if name in WORKERS else "backend")
    assert (ROOT / module / "__main__.py").is_file()
    dockerfile = ROOT / SERVICES[name]["build"]["dockerfile"]
    assert f'"-m", "{module}"' in dockerfile.read_text()


@pytest.mark.parametrize("name", sorted(APP))
def test_environment_names_only_settings_the_code_reads(name):
    fields = {f.upper() for f in Settings.model_fields}
    for key in SERVICES[name]["environment"]:
        assert key in fields or (name in WORKERS and key in WORKER_ENV), key


def test_app_services_share_one_database_broker_and_data_volume():
    pg = SERVICES["postgres"]["environment"]
    envs = [SERVICES[name]["environment"] for name in APP]
    for env in envs:
        url = make_url(env["DATABASE_URL"].replace("${POSTGRES_PASSWORD:-ddpm}", "ddpm"))
        assert url.drivername == "postgresql+psycopg"  # psycopg 3 is what the api extra pins
        assert (url.username, url.database, url.host) == (pg["POSTGRES_USER"], pg["POSTGRES_DB"], "postgres")
        assert env["REDIS_URL"].startswith("redis://redis:")
        assert env["DATA_DIR"] == "/data"
    for name in APP:
        assert "data:/data" in SERVICES[name]["volumes"]


ALL_GPUS = "worker-all-gpus"


def test_one_worker_per_gpu_with_nvidia_reservation_and_large_shm():
    seen = set()
    for name, worker in WORKERS.items():
        devices = worker["deploy"]["resources"]["reservations"]["devices"]
        assert len(devices) == 1 and devices[0]["driver"] == "nvidia"
        assert "gpu" in devices[0]["capabilities"]
        size = re.fullmatch(r"(\d+)gb", worker["shm_size"])
        assert size and int(size.group(1)) >= 8
        assert worker["environment"]["WORKER_NAME"] == name
        if name == ALL_GPUS:
            continue
        ids = tuple(devices[0]["device_ids"])
        assert len(ids) == 1 and ids not in seen, "each worker owns exactly one GPU"
        seen.add(ids)


def test_the_all_gpus_worker_owns_every_gpu_and_only_runs_in_its_own_layout():
    """Its job of gpus N runs on the first N GPUs it sees; a per-GPU worker beside it on the same
    machine would share them, so it has a profile of its own that no per-GPU worker has."""
    worker = WORKERS[ALL_GPUS]
    (devices,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices["count"] == "all" and "device_ids" not in devices
    # its capacity is what it sees (WORKER_NPROC defaults to the visible GPU count)
    assert "WORKER_NPROC" not in worker["environment"] and "CUDA_VISIBLE_DEVICES" not in worker["environment"]
    assert "WORKER_NPROC" in WORKER_ENV
    profiles = set(worker["profiles"])
    for name, other in WORKERS.items():
        if name != ALL_GPUS:
            assert not profiles & set(other.get("profiles", [])), name


def test_backend_port_and_frontend_path_match_settings():
    backend = SERVICES["backend"]
    assert backend["environment"]["PORT"] == "8000"
    assert backend["ports"][0].endswith(":8000")
    text = (ROOT / "docker" / "backend.Dockerfile").read_text()
    frontend_dir = re.search(r"FRONTEND_DIR=(\S+)", text).group(1)
    assert f"COPY --from=frontend /src/frontend/dist {frontend_dir.removeprefix('/app/')}" in text


def test_worker_image_uses_the_pinned_torch():
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    torch_pin = next(p for p in pins["engine"] if p.startswith("torch=="))
    assert f"pip install {torch_pin}" in (ROOT / "docker" / "worker.Dockerfile").read_text()
