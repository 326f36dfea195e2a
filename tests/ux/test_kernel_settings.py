"""IPT_MS_CONV_AS_MATMUL picks the convolution kernels (CI reruns the demo's parity with it),
IPT_MS_CPU_GRADIENTS the softmax gradient, and ipt_ms.machine names the CPU and oneDNN ISA
that every figure needs."""

import os
import subprocess
import sys

import pytest

from ipt_ms import machine


@pytest.mark.parametrize(("value", "expected"), [("0", False), ("off", False), ("1", True), ("", True)])
def test_conv_as_matmul_setting(value, expected, monkeypatch):
    from ipt_ms.models import Conv2d, build_ipt
    from ipt_ms.spec import IPTSpec

    monkeypatch.setenv("IPT_MS_CONV_AS_MATMUL", value)
    net = build_ipt(IPTSpec.tiny())  # the CPU: im2col unless told otherwise
    flags = {cell.as_matmul for _, cell in net.cells_and_names() if isinstance(cell, Conv2d)}
    assert flags == {expected}


@pytest.mark.parametrize("variable", ["IPT_MS_CONV_AS_MATMUL", "IPT_MS_CPU_GRADIENTS"])
def test_a_bad_setting_is_one_line(variable, tiny_ckpt, photo_png, tmp_path):
    env = dict(os.environ, **{variable: "banana"})
    proc = subprocess.run([sys.executable, "-m", "ipt_ms", "restore", "--weights", str(tiny_ckpt), "--task", "sr_x2",
                           str(photo_png), "-o", str(tmp_path / "out")], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"{variable}='banana'" in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_machine_names_cpu_and_isa(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "SSE41")
    line = machine.one_line()
    assert "oneDNN ISA SSE41" in line and "capped by ONEDNN_MAX_CPU_ISA=SSE41" in line
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert machine.isa_in_effect() == machine.best_isa()
    assert machine.cpu_kind() in ("Intel", "AMD") or machine.cpu_kind()
