"""The worker's pure parts: failure reasons, settings from the environment, Celery settings."""
from __future__ import annotations

import math
import os
import signal
import socket

import numpy as np
import pytest

from ddpm.config import ConfigError, load_config
from ddpm.data.io import DataError
from ddpm.train.errors import NonFiniteLossError
from worker.failures import reason_for, reason_for_exit
from worker.runner import _plain


def test_config_errors_name_every_key_path():
    with pytest.raises(ConfigError) as info:
        load_config({"model": {"lr": 5, "optimizer": "sgd"}})
    reason = reason_for(info.value)
    assert reason.startswith("invalid config: ")
    assert "model.lr" in reason and "model.optimizer" in reason and "\n" not in reason


def test_multi_line_engine_errors_become_one_line_without_data_dir():
    exc = DataError("1 of 6 file(s) in /srv/data/datasets/3/files cannot be used:\n"
                    "/srv/data/datasets/3/files/a.png: cannot read (UnidentifiedImageError: bad)")
    reason = reason_for(exc, hide_prefix="/srv/data")
    assert reason == ("1 of 6 file(s) in datasets/3/files cannot be used; "
                      "datasets/3/files/a.png: cannot read (UnidentifiedImageError: bad)")


def test_out_of_memory_and_non_finite_reasons_say_what_to_change():
    class OutOfMemoryError(RuntimeError):  # the name torch.cuda.OutOfMemoryError has
        pass

    assert "dataset.batch_size" in reason_for(OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert "dataset.batch_size" in reason_for(MemoryError())
    msg = "training stopped at step 7: 5 consecutive non-finite losses or gradients; lower model.lr"
    assert reason_for(NonFiniteLossError(msg)) == msg
    assert reason_for(KeyError("x")) == "KeyError: 'x'"
    assert len(reason_for(RuntimeError("y" * 1000))) <= 300


def test_a_child_that_dies_silently_is_explained():
    assert "out-of-memory killer" in reason_for_exit(-signal.SIGKILL)
    assert "SIGSEGV" in reason_for_exit(-signal.SIGSEGV)
    assert "exit code 3" in reason_for_exit(3)


def test_reports_are_plain_json_values():
    out = _plain({"loss": np.float32(0.5), "nan": float("nan"), "n": np.int64(3), "l": (1, 2.0)})
    assert out == {"loss": 0.5, "nan": None, "n": 3, "l": [1, 2.0]}
    assert not any(isinstance(v, float) and math.isnan(v) for v in out.values())


@pytest.fixture
def env(monkeypatch):
    from backend.settings import get_settings

    for k in ("WORKER_QUEUES", "WORKER_NAME", "WORKER_DEVICE", "WORKER_HEARTBEAT_INTERVAL_S",
              "WORKER_HEARTBEAT_TIMEOUT_S", "WORKER_CANCEL_GRACE_S", "WORKER_LOGLEVEL", "WORKER_NPROC"):
        monkeypatch.delenv(k, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_cpu_worker_serves_the_cpu_queue_with_a_unique_name(env):
    from worker.worker_settings import load_settings

    env.setenv("CUDA_VISIBLE_DEVICES", "")
    s = load_settings()
    assert s.device.kind == "cpu" and not s.device.has_gpu
    assert s.queues == ("cpu",)
    assert s.name == f"{socket.gethostname()}-{os.getpid()}"
    assert s.heartbeat_timeout_s == 60.0 and s.heartbeat_interval_s == 5.0 and s.cancel_grace_s == 30.0


def test_worker_settings_from_the_environment(env):
    from worker.worker_settings import default_queues, Device, load_settings

    env.setenv("CUDA_VISIBLE_DEVICES", "-1")
    env.setenv("WORKER_QUEUES", "gpu, cpu")
    env.setenv("WORKER_NAME", "box-7")
    env.setenv("WORKER_HEARTBEAT_TIMEOUT_S", "3")
    s = load_settings()
    assert (s.queues, s.name, s.heartbeat_timeout_s, s.heartbeat_interval_s) == (("gpu", "cpu"), "box-7", 3.0, 0.75)
    assert default_queues(Device("cuda", "cuda:0 (GPU 2)")) == ("gpu", "cpu")
    env.setenv("WORKER_QUEUES", "gpu,fast")
    with pytest.raises(SystemExit, match="WORKER_QUEUES: .*'fast'"):
        load_settings()
    env.setenv("WORKER_QUEUES", "cpu")
    env.setenv("WORKER_CANCEL_GRACE_S", "soon")
    with pytest.raises(SystemExit, match="WORKER_CANCEL_GRACE_S"):
        load_settings()
    env.setenv("WORKER_CANCEL_GRACE_S", "7")
    env.setenv("WORKER_LOGLEVEL", "DEBUG")
    assert (load_settings().cancel_grace_s, load_settings().loglevel) == (7.0, "DEBUG")
    env.setenv("WORKER_QUEUES", "cpu")
    env.setenv("WORKER_HEARTBEAT_INTERVAL_S", "2")
    with pytest.raises(SystemExit, match="at most half"):
        load_settings()


def test_a_worker_declares_the_processes_one_job_may_run_on_it(env):
    from worker import worker_settings as ws

    env.setenv("CUDA_VISIBLE_DEVICES", "")
    assert ws.load_settings().nproc == 1  # a CPU worker runs one-process jobs unless told more
    env.setenv("WORKER_NPROC", "2")
    assert ws.load_settings().nproc == 2
    env.setenv("WORKER_NPROC", "0")
    with pytest.raises(SystemExit, match="WORKER_NPROC: .*(got '0')"):
        ws.load_settings()
    # a GPU worker (no GPU here: the count torch would report stands in) owns what it sees
    env.delenv("WORKER_NPROC")
    env.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    env.setattr(ws, "_count_cuda_devices", lambda: 2)
    s = ws.load_settings()
    assert (s.device.has_gpu, s.device.gpus, s.nproc) == (True, 2, 2)
    assert s.device.label == "cuda:0-1 (GPUs 2,3)"
    env.setenv("WORKER_NPROC", "3")
    with pytest.raises(SystemExit, match="WORKER_NPROC=3 but this worker sees 2 GPU"):
        ws.load_settings()


def test_celery_settings_for_long_jobs():
    import worker.tasks  # noqa: F401 - registers the tasks (the worker imports it at start)
    from worker.celery_app import app
    from worker.main import celery_argv

    c = app.conf
    assert c.task_acks_late and c.task_reject_on_worker_lost
    assert c.worker_prefetch_multiplier == 1 and c.worker_disable_prefetch and c.worker_concurrency == 1
    from backend.dispatch import TASK_NAMES

    assert set(TASK_NAMES.values()) <= set(app.tasks)
    argv = celery_argv("box-7", ("gpu", "cpu"), "INFO")
    for flag in ("--pool=threads", "--concurrency=1", "--queues=gpu,cpu", "--without-mingle", "--without-gossip"):
        assert flag in argv


@pytest.mark.parametrize("requested, config_gpu, live, queue, on_gpu_worker", [
    ("auto", 0, {"cpu"}, "cpu", "cuda:0"),  # no GPU worker alive: the CPU queue, but a GPU if it lands on one
    ("auto", 0, {"gpu", "cpu"}, "gpu", "cuda:0"),
    ("auto", -1, {"gpu", "cpu"}, "cpu", "cpu"),  # config.gpu = -1 under auto: the CPU, on any worker
    ("gpu", -1, {"cpu"}, "gpu", "cuda:0"),  # an explicit request wins over the config
    ("cpu", 0, {"gpu", "cpu"}, "cpu", "cpu"),
])
def test_one_device_decision_for_queue_and_child(tmp_path, requested, config_gpu, live, queue, on_gpu_worker):
    """The API's queue and the worker's child device come from the same choose_device."""
    from backend.dispatch import queue_for, choose_device
    from backend.run_spec import build_run_spec
    from backend.storage import Storage
    from worker.store import JobView

    assert queue_for(choose_device(requested, config_gpu), live) == queue
    cfg = {**load_config({"model": {"iterations": 5}, "dataset": {"image_size": 16}}).model_dump(mode="json"),
           "gpu": config_gpu}
    job = JobView(id=3, kind="train", status="running", device=requested, queue=queue, config=cfg, dataset_id=1,
                  source_job_id=None, attempts=1, cancel_requested=False)
    storage = Storage(tmp_path)
    on_gpu, on_cpu = build_run_spec(job, storage, True), build_run_spec(job, storage, False)
    assert on_gpu.device == on_gpu_worker and on_cpu.device == "cpu"
    assert on_gpu.config.gpu == (0 if on_gpu_worker == "cuda:0" else -1) and on_cpu.config.gpu == -1
    assert on_cpu.paths.log_path == storage.job_log_path(3) and on_cpu.paths.export_path == storage.export_path(3)
    with pytest.raises(ValueError, match="frozen"):  # what the child gets is what was built
        on_cpu.job_id = 4


def test_a_job_that_cannot_run_as_stored_gets_one_line(tmp_path):
    from backend.run_spec import RunSpecError, build_run_spec
    from backend.storage import Storage
    from worker.store import JobView

    job = JobView(id=5, kind="train", status="running", device="auto", queue="cpu",
                  config={"model": {"optimizer": "sgd"}}, dataset_id=1, source_job_id=None, attempts=1,
                  cancel_requested=False)
    with pytest.raises(RunSpecError, match=r"model.optimizer: 'sgd' is not allowed") as info:
        build_run_spec(job, Storage(tmp_path), False)
    assert "\n" not in str(info.value)
    orphan = JobView(id=6, kind="sample", status="running", device="auto", queue="cpu", config={},
                     dataset_id=None, source_job_id=None, attempts=1, cancel_requested=False)
    with pytest.raises(RunSpecError, match="was deleted"):
        build_run_spec(orphan, Storage(tmp_path), False)


def test_workers_report_precision_facts_read_from_cpuinfo_without_torch(tmp_path):
    """What the API judges bf16 by (issue 13 item 12): the CPU's flags as the engine's rule reads
    them; no torch in the worker process."""
    from worker.heartbeat import local_precision_facts

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Old Xeon\nflags\t\t: fpu sse avx2 fma\n\n"
                    "processor\t: 1\nmodel name\t: Old Xeon\nflags\t\t: fpu sse avx2 fma\n")
    facts = local_precision_facts(False, str(info))
    assert facts == {"cpu": {"kind": "cpu", "name": "the CPU (Old Xeon)", "native_bf16": False, "bf16_runs": True,
                             "evidence": "no AVX512-BF16 or AMX-BF16"}}
    info.write_text("model name\t: New Xeon\nflags\t\t: avx2 avx512f avx512_bf16 amx_bf16\n")
    assert local_precision_facts(False, str(info))["cpu"]["native_bf16"] is True
    assert local_precision_facts(False, str(tmp_path / "missing")) == {}
