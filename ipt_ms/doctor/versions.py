"""What software stack a machine has: MindSpore, PyTorch, CUDA, CANN, collectives, threads.

Each probe reads what is there (package metadata, version files, `nvidia-smi`/`npu-smi`
output) and returns plain strings; a missing tool gives None, never an exception, so the
report of a CPU-only machine simply says "not found". The parsers are separate functions
so they are tested on text in the formats these tools print.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

#: MindSpore's collective backend per device target (`mindspore.communication.init()`).
COLLECTIVE_BACKENDS = {"CPU": "mccl", "GPU": "nccl", "Ascend": "hccl"}
#: where CANN installs its toolkit when ASCEND_HOME_PATH / ASCEND_TOOLKIT_HOME are not set
CANN_HOMES = ("/usr/local/Ascend/ascend-toolkit/latest", "/usr/local/Ascend/cann", "~/Ascend/ascend-toolkit/latest")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "ONEDNN_MAX_CPU_ISA", "GLOG_v", "MS_WORKER_NUM",
                    "RANK_SIZE", "RANK_TABLE_FILE", "CUDA_VISIBLE_DEVICES", "ASCEND_RT_VISIBLE_DEVICES")


def run_tool(*command: str, timeout: float = 20.0) -> str | None:
    """stdout of a command-line tool, or None when it is missing or fails."""
    if shutil.which(command[0]) is None:
        return None
    try:
        proc = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def parse_nvidia_smi(text: str | None) -> dict:
    """Driver and CUDA versions from the banner of `nvidia-smi` (e.g. "CUDA Version: 12.2")."""
    if not text:
        return {}
    found = {}
    for key, pattern in (("driver", r"Driver Version:\s*([\w.]+)"), ("cuda_driver_api", r"CUDA Version:\s*([\w.]+)")):
        match = re.search(pattern, text)
        if match:
            found[key] = match.group(1)
    return found


def parse_nvcc(text: str | None) -> str | None:
    """The toolkit release from `nvcc --version` ("Cuda compilation tools, release 12.1, V12.1.105")."""
    match = re.search(r"release\s+([\d.]+)", text or "")
    return match.group(1) if match else None


def parse_key_values(text: str | None) -> dict[str, str]:
    """`key=value` lines (CANN's version.cfg / *_install.info, the driver's version.info)."""
    out = {}
    for line in (text or "").splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            out[key.strip().lower()] = value.strip().strip('"')
    return out


def parse_npu_smi(text: str | None) -> dict:
    """Version and chip names from `npu-smi info` ("| npu-smi 23.0.0  Version: 23.0.0 |", "| 0  910B3 |")."""
    if not text:
        return {}
    found = {}
    match = re.search(r"Version:\s*([\w.\-]+)", text)
    if match:
        found["npu_smi"] = match.group(1)
    chips = re.findall(r"^\|\s*\d+\s+(\d{3}\w*)\s", text, flags=re.MULTILINE)
    if chips:
        found["chips"] = chips
    return found


def cuda_versions() -> dict:
    """CUDA as the driver (nvidia-smi), the toolkit (nvcc) and PyTorch see it."""
    info = parse_nvidia_smi(run_tool("nvidia-smi"))
    toolkit = parse_nvcc(run_tool("nvcc", "--version"))
    if toolkit:
        info["toolkit"] = toolkit
    gpus = run_tool("nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader")
    if gpus:
        info["gpus"] = [g.strip() for g in gpus.splitlines() if g.strip()]
    try:
        import torch

        info["torch_cuda"] = torch.version.cuda or "none (CPU build of PyTorch)"
    except ImportError:  # pragma: no cover
        pass
    return info


def cann_versions(env: dict | None = None) -> dict:
    """The CANN toolkit version and home, the driver version, and `npu-smi` (Ascend)."""
    env = os.environ if env is None else env
    homes = [env.get(k) for k in ("ASCEND_HOME_PATH", "ASCEND_TOOLKIT_HOME") if env.get(k)]
    homes += [os.path.expanduser(h) for h in CANN_HOMES]
    info: dict = {}
    for home in map(Path, homes):
        if not home.is_dir():
            continue
        files = sorted(home.glob("*-linux/ascend_toolkit_install.info")) + [home / "version.cfg"]
        for path in files:
            values = parse_key_values(_read(path))
            version = values.get("version") or values.get("toolkit_version") or values.get("runtime_running_version")
            if version:
                info.update(toolkit=version.strip("[]").split(":")[-1], home=str(home), source=str(path))
                break
        if "toolkit" in info:
            break
    driver = parse_key_values(_read(Path("/usr/local/Ascend/driver/version.info"))).get("version")
    if driver:
        info["driver"] = driver
    info.update(parse_npu_smi(run_tool("npu-smi", "info")))
    return info


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def package_versions() -> dict:
    out = {"python": platform.python_version(), "platform": platform.platform(), "machine": platform.machine(),
           "cpu_count": os.cpu_count()}
    for name in ("mindspore", "torch", "numpy", "onnxruntime", "onnx"):
        try:
            module = __import__(name)
            out[name] = getattr(module, "__version__", "?")
        except ImportError:
            out[name] = None
    out["executable"] = sys.executable
    return out


def thread_settings() -> dict:
    """Threads each framework will use, and the environment variables that change them."""
    out = {k: os.environ.get(k) for k in THREAD_VARIABLES if os.environ.get(k) is not None}
    try:
        import mindspore as ms

        out["mindspore_runtime_num_threads"] = ms.get_context("runtime_num_threads")
    except Exception:  # an older/newer MindSpore without this context key
        pass
    try:
        import torch

        out["torch_num_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        pass
    return out
