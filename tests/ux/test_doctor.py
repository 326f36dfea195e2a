"""`ipt-ms doctor` on CPU as a user runs it: a real subprocess, its report, and real faults."""

from __future__ import annotations

import json

import pytest

from ipt_ms.doctor.versions import cann_versions, parse_key_values, parse_npu_smi, parse_nvcc, parse_nvidia_smi
from tests.hostile.conftest import run_cli


def _report(out):
    return json.loads((out / "doctor.json").read_text()), (out / "doctor.md").read_text()


def test_doctor_passes_on_this_cpu_and_writes_its_report(tmp_path):
    import mindspore as ms

    out = tmp_path / "report"
    proc = run_cli("doctor", "--speed", "tiny", "-o", out, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for start in ("[PASS] device: MindSpore runs on CPU", "[PASS] parity sr_x2: MindSpore CPU vs PyTorch CPU",
                  "[PASS] parity denoise_30", "[PASS] training float32: training parity",
                  "[PASS] training mixed precision (O2): O2 float16 on CPU", "[INFO] forward speed: tiny IPT",
                  "[SKIP] msrun 2 workers: not asked"):
        assert any(line.startswith(start) for line in lines), (start, proc.stdout)
    data, md = _report(out)
    assert data["ok"] is True and [c["status"] for c in data["checks"]].count("fail") == 0
    env = data["environment"]
    assert env["packages"]["mindspore"] == ms.__version__ and env["device"]["resolved"] == "CPU"
    assert env["collective"]["backend"] == "mccl"
    assert env["threads"]["mindspore_runtime_num_threads"] >= 1 and env["threads"]["torch_num_threads"] >= 1
    assert "cann" in env and "cuda" in env  # probed: nothing to find on this machine is an answer too
    assert md.startswith("# ipt-ms doctor: PASS\n\n**PASS.** ipt-ms doctor on CPU (MindSpore")
    for task in ("sr_x2", "denoise_30"):  # the parity reports a reviewer can open
        assert (out / "parity" / task / "report.md").read_text().startswith("# IPT layer-by-layer parity")
        assert (out / "parity" / task / "error_vs_depth.png").stat().st_size > 10_000


def test_doctor_fails_for_a_device_that_is_not_there(tmp_path):
    out = tmp_path / "report"
    proc = run_cli("doctor", "--device", "GPU", "-o", out, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "[FAIL] device: IPTError: device GPU requested, but this MindSpore build/machine offers only CPU" \
        in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    data, md = _report(out)
    assert data["ok"] is False
    assert {c["name"]: c["status"] for c in data["checks"]}["device"] == "fail"
    assert all(c["status"] == "skip" for c in data["checks"][1:])
    assert "| device | **FAIL** |" in md and md.splitlines()[2].startswith("**FAIL.**")


def test_doctor_fails_when_parity_cannot_meet_its_tolerance(tmp_path):
    """A real fault: tolerances no float32 computation can meet (zero, and no float32-floor allowance)."""
    out = tmp_path / "report"
    proc = run_cli("doctor", "--stage-tol", "0", "--output-tol", "0", "--floor-factor", "0",
                   "--skip", "training,amp,speed", "-o", out, cwd=tmp_path, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = [line for line in proc.stdout.splitlines() if line.startswith("[FAIL]")]
    assert len(failed) == 2 and all("parity FAIL" in line and "> tol 0e+00" in line for line in failed), failed
    data, md = _report(out)
    assert not data["ok"] and "2 of 3 checks failed: parity sr_x2, parity denoise_30" in data["verdict"]
    parity_md = (out / "parity" / "sr_x2" / "report.md").read_text()
    assert parity_md.splitlines()[2].startswith("**FAIL.**")


def test_doctor_rejects_bad_options_in_one_line(tmp_path):
    proc = run_cli("doctor", "--skip", "parity,everything", "-o", tmp_path / "r", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown: everything" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_doctor_msrun_two_workers(tmp_path):
    out = tmp_path / "report"
    proc = run_cli("doctor", "--msrun", "--skip", "parity,training,amp,speed", "-o", out, cwd=tmp_path,
                   timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data, _ = _report(out)
    msrun = next(c for c in data["checks"] if c["name"] == "msrun 2 workers")
    assert msrun["status"] == "pass", msrun
    ranks = msrun["details"]["ranks"]
    assert sorted(r["rank"] for r in ranks) == [0, 1] and all(r["world_size"] == 2 for r in ranks)
    assert ranks[0]["weights_sum"] == ranks[1]["weights_sum"] and ranks[0]["max_weight_change"] > 0


# ------------------------------------------------------------------ version probes (text in the tools' formats)
def test_cuda_version_parsers():
    banner = ("| NVIDIA-SMI 535.104.05             Driver Version: 535.104.05   CUDA Version: 12.2     |\n"
              "| GPU  Name                 Persistence-M | Bus-Id        Disp.A | Volatile Uncorr. ECC |")
    assert parse_nvidia_smi(banner) == {"driver": "535.104.05", "cuda_driver_api": "12.2"}
    assert parse_nvidia_smi(None) == {}
    nvcc = "nvcc: NVIDIA (R) Cuda compiler driver\nCuda compilation tools, release 12.1, V12.1.105\n"
    assert parse_nvcc(nvcc) == "12.1" and parse_nvcc("") is None


def test_cann_version_from_a_toolkit_folder(tmp_path):
    home = tmp_path / "ascend-toolkit" / "latest"
    (home / "aarch64-linux").mkdir(parents=True)
    (home / "aarch64-linux" / "ascend_toolkit_install.info").write_text(
        "package_name=Ascend-cann-toolkit\nversion=8.0.RC2\ninnerversion=V100R001C18SPC001B230\narch=aarch64\n")
    info = cann_versions({"ASCEND_HOME_PATH": str(home)})
    assert info["toolkit"] == "8.0.RC2" and info["home"] == str(home)
    assert parse_key_values("# comment\nVersion=23.0.0\n") == {"version": "23.0.0"}
    smi = ("+------------------------------------------------------------------------------------+\n"
           "| npu-smi 23.0.0                   Version: 23.0.0                                    |\n"
           "| 0     910B3               | OK            | 93.4        36                0    / 0 |\n")
    assert parse_npu_smi(smi) == {"npu_smi": "23.0.0", "chips": ["910B3"]}


def test_doctor_names_the_cpu_training_levers(monkeypatch):
    """The environment section says which convolutions and softmax gradient CPU training uses,
    and a bad setting there is reported, not raised."""
    from ipt_ms.doctor.checks import environment
    from ipt_ms.doctor.report import DoctorOptions

    monkeypatch.setenv("IPT_MS_CONV_AS_MATMUL", "0")
    monkeypatch.setenv("IPT_MS_CPU_GRADIENTS", "0")
    shown = environment(DoctorOptions())["cpu_training"]
    assert shown["convolutions"] == "native" and shown["softmax_gradient"] == "MindSpore's"
    monkeypatch.setenv("IPT_MS_CONV_AS_MATMUL", "1")
    monkeypatch.delenv("IPT_MS_CPU_GRADIENTS")
    shown = environment(DoctorOptions())["cpu_training"]
    assert shown["convolutions"] == "im2col, one matmul per image" and shown["softmax_gradient"].startswith("written")
    monkeypatch.setenv("IPT_MS_CONV_AS_MATMUL", "banana")
    assert "IPT_MS_CONV_AS_MATMUL='banana'" in environment(DoctorOptions())["cpu_training"]["error"]
