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
              "WORKER_HEARTBEAT_TIMEOUT_S"):
        monkeypatch.delenv(k, raising=False)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_cpu_worker_serves_the_cpu_queue_with_a_unique_name(env):
    from worker.settings import load_settings

    env.setenv("CUDA_VISIBLE_DEVICES", "")
    s = load_settings()
    assert s.device.kind == "cpu" and s.device.gpu_index == -1
    assert s.queues == ("cpu",)
    assert s.name == f"{socket.gethostname()}-{os.getpid()}"
    assert s.heartbeat_timeout_s == 60.0 and s.heartbeat_interval_s == 5.0 and s.cancel_grace_s == 30.0


def test_worker_settings_from_the_environment(env):
    from worker.settings import default_queues, Device, load_settings

    env.setenv("CUDA_VISIBLE_DEVICES", "-1")
    env.setenv("WORKER_QUEUES", "gpu, cpu")
    env.setenv("WORKER_NAME", "box-7")
    env.setenv("WORKER_HEARTBEAT_TIMEOUT_S", "3")
    s = load_settings()
    assert (s.queues, s.name, s.heartbeat_timeout_s, s.heartbeat_interval_s) == (("gpu", "cpu"), "box-7", 3.0, 0.75)
    assert default_queues(Device("cuda", "cuda:0 (GPU 2)")) == ("gpu", "cpu")
    env.setenv("WORKER_QUEUES", "gpu,fast")
    with pytest.raises(SystemExit, match="fast"):
        load_settings()
    env.setenv("WORKER_QUEUES", "cpu")
    env.setenv("WORKER_HEARTBEAT_INTERVAL_S", "2")
    with pytest.raises(SystemExit, match="at most half"):
        load_settings()


def test_celery_settings_for_long_jobs():
    import worker.tasks  # noqa: F401 - registers the tasks (the worker imports it at start)
    from worker.celery_app import app
    from worker.main import celery_argv

    c = app.conf
    assert c.task_acks_late and c.task_reject_on_worker_lost
    assert c.worker_prefetch_multiplier == 1 and c.worker_disable_prefetch and c.worker_concurrency == 1
    assert {"ddpm.train", "ddpm.sample"} <= set(app.tasks)
    argv = celery_argv("box-7", ("gpu", "cpu"), "INFO")
    for flag in ("--pool=threads", "--concurrency=1", "--queues=gpu,cpu", "--without-mingle", "--without-gossip"):
        assert flag in argv
