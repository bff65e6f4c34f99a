"""model.precision "auto" and the bf16 trap: bf16 only where the hardware runs it natively, a
warning where an explicit bf16 is emulated, and the precision used (and why) recorded by runs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_helpers import Recorder, tiny_cfg, write_images

from ddpm import precision as prec
from ddpm.cli import main
from ddpm.config import ConfigError, load_config, load_finetune_config
from ddpm.precision_rules import cpu_facts
from ddpm.precision import (DeviceFacts, autocast_dtype, choose_precision, device_facts, precision_problem,
                            resolve_precision)
from ddpm.run.errors import RunError
from ddpm.sample import sample_run
from ddpm.train import run_training

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")

AVX2_CPU = cpu_facts({"avx", "avx2", "fma"}, "AVX2 box")
BF16_CPU = cpu_facts({"avx2", "avx512f", "amx_tile", "amx_bf16"}, "Sapphire Rapids")
AMPERE = DeviceFacts("cuda", "the GPU (A100)", native_bf16=True, bf16_runs=True, evidence="compute capability 8.0")
TURING = DeviceFacts("cuda", "the GPU (T4)", native_bf16=False, bf16_runs=True, evidence="compute capability 7.5")
KEPLER = DeviceFacts("cuda", "the GPU (K80)", native_bf16=False, bf16_runs=False, evidence="compute capability 3.7")


def cpuinfo_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def test_this_cpu_is_judged_by_its_bf16_flags():
    native = bool({"avx512_bf16", "amx_bf16"} & cpuinfo_flags())
    facts = device_facts(CPU)
    assert facts.kind == "cpu" and facts.native_bf16 == native
    choice = resolve_precision("auto", CPU)
    assert choice.precision == ("bf16" if native else "fp32")
    assert autocast_dtype(choice) == (torch.bfloat16 if native else None)
    assert choice.reason.startswith("auto: ") and facts.evidence in choice.reason
    assert (precision_problem("bf16", CPU) is None) == native
    assert "CUDA" in precision_problem("fp16", CPU) and precision_problem("fp32", CPU) is None


def test_cpu_facts_come_from_the_bf16_flags():
    assert (BF16_CPU.native_bf16, BF16_CPU.evidence, BF16_CPU.name) == (True, "AMX-BF16", "the CPU (Sapphire Rapids)")
    assert (AVX2_CPU.native_bf16, AVX2_CPU.evidence) == (False, "no AVX512-BF16 or AMX-BF16")
    assert cpu_facts({"avx512_bf16", "amx_bf16"}, "x").evidence == "AVX512-BF16 and AMX-BF16"


def test_the_rule_is_torch_free_so_the_api_can_apply_it():
    code = "import sys, ddpm.precision_rules; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


@pytest.mark.parametrize("facts, requested, expected", [
    (AVX2_CPU, "auto", "fp32"), (BF16_CPU, "auto", "bf16"), (AMPERE, "auto", "bf16"),
    (TURING, "auto", "fp32"), (KEPLER, "auto", "fp32"),
    (AVX2_CPU, "fp32", "fp32"), (AMPERE, "fp32", "fp32"),
    (AVX2_CPU, "bf16", "bf16"), (BF16_CPU, "bf16", "bf16"), (TURING, "bf16", "bf16"), (AMPERE, "bf16", "bf16"),
    (AMPERE, "fp16", "fp16"), (TURING, "fp16", "fp16"),
])
def test_decision_on_every_kind_of_device(facts, requested, expected):
    choice = choose_precision(requested, facts)
    assert (choice.requested, choice.precision) == (requested, expected)
    assert (choice.warning is not None) == (requested == "bf16" and not facts.native_bf16)


def test_explicit_bf16_where_emulated_runs_with_a_warning_that_says_why():
    choice = choose_precision("bf16", AVX2_CPU)
    assert choice.precision == "bf16"
    assert choice.warning == ("model.precision is bf16 but the CPU (AVX2 box) has no native bf16 (no AVX512-BF16 "
                              "or AMX-BF16): torch emulates it, and a training step can take 20 times as long "
                              "as in fp32; set model.precision to auto (or fp32)")
    assert "emulated" in choice.reason
    assert choose_precision("auto", AVX2_CPU).reason == (
        "auto: the CPU (AVX2 box) has no native bf16 (no AVX512-BF16 or AMX-BF16), so bf16 would be emulated and slow")


@pytest.mark.parametrize("facts, requested, words", [
    (AVX2_CPU, "fp16", "needs a CUDA GPU"), (BF16_CPU, "fp16", "needs a CUDA GPU"),
    (KEPLER, "bf16", "has no bf16 support"), (AMPERE, "fp8", "not a precision"),
])
def test_what_cannot_run_is_a_config_error_on_the_key(facts, requested, words):
    with pytest.raises(ConfigError) as err:
        choose_precision(requested, facts)
    (key, msg), = err.value.errors
    assert key == "model.precision" and words in msg


def test_auto_is_the_default_and_explicit_precisions_still_load():
    assert load_config({}).model.precision == "auto"
    assert load_config(ROOT / "configs" / "config_3d.json").model.precision == "auto"
    for p in ("fp32", "bf16", "fp16", "auto"):
        assert load_config({"model": {"precision": p}}).model.precision == p
    assert load_finetune_config({"dataset": {"path": "x"}, "model": {"unet": {}}}).model.precision == "auto"
    for name in ("small_2d", "small_3d", "base_2d", "base_3d"):
        assert load_config(ROOT / "configs" / "presets" / f"{name}.json").model.precision == "auto"


def test_a_run_logs_records_and_reports_the_precision_it_used(tmp_path, capsys):
    data = write_images(tmp_path / "data")
    rec = Recorder()
    infos = []
    rec.on_run_info = infos.append
    run_training(tiny_cfg(data, tmp_path / "exp", model={"iterations": 2}), tmp_path / "run", rec)
    expected = resolve_precision("auto", CPU)
    start = json.loads((tmp_path / "run" / "run.json").read_text())["starts"][-1]
    assert (start["device"], start["precision"], start["precision_reason"]) == ("cpu", expected.precision,
                                                                                expected.reason)
    assert infos == [start]
    log = (tmp_path / "run" / "train.log").read_text()
    assert f"started at step 0 of 2 on cpu in {expected.precision} ({expected.reason})" in log

    files = sample_run(tmp_path / "run", 2, steps=2, out_dir=tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "samples.json").read_text())
    assert len(files) == 2 and (manifest["precision"], manifest["precision_reason"]) == (expected.precision,
                                                                                       expected.reason)
    with pytest.raises(RunError, match=r"--precision fp16: fp16 needs a CUDA GPU"):
        sample_run(tmp_path / "run", 1, out_dir=tmp_path / "out16", precision="fp16")
    assert main(["sample", "--run", str(tmp_path / "run"), "--num", "1", "--steps", "2", "--precision", "fp32",
                 "--out", str(tmp_path / "out32")]) == 0
    assert json.loads((tmp_path / "out32" / "samples.json").read_text())["precision"] == "fp32"
    assert main(["sample", "--run", str(tmp_path / "run"), "--precision", "fp16"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "--precision fp16: fp16 needs a CUDA GPU" in err[0]


def test_explicit_bf16_on_an_emulating_cpu_trains_and_warns_in_the_log(tmp_path, monkeypatch):
    # this machine's CPU may have native bf16: the probe's CPU flags are what is replaced
    monkeypatch.setattr(prec, "cpu_bf16_features", lambda: ())
    data = write_images(tmp_path / "data")
    result = run_training(tiny_cfg(data, tmp_path / "exp", model={"precision": "bf16", "iterations": 1}),
                          tmp_path / "run")
    assert result.status == "completed"
    warning = choose_precision("bf16", device_facts(CPU)).warning
    assert "no native bf16" in warning and warning in (tmp_path / "run" / "train.log").read_text()
    start = json.loads((tmp_path / "run" / "run.json").read_text())["starts"][-1]
    assert start["precision"] == "bf16" and "emulated" in start["precision_reason"]
    # and "auto" on the same CPU trains in fp32
    run_training(tiny_cfg(data, tmp_path / "exp", model={"iterations": 1}), tmp_path / "auto")
    assert json.loads((tmp_path / "auto" / "run.json").read_text())["starts"][-1]["precision"] == "fp32"
