"""Inference benchmark: MindSpore PyNative / Graph, PyTorch eager and ONNX Runtime, side by side.

Usage:
    .venv/bin/python bench/run.py                  # full-size IPT (x2), writes "## Inference" in BENCHMARKS.md
    .venv/bin/python bench/run.py --smoke --out /tmp/bench.md   # tiny model, 1 iteration (CI)

For the full-size single-task x2 model (115.5M parameters, seeded weights; speed does not
depend on the values) it measures, in one run:

* 48x48 patches/s at batch 1 and batch 64 in every framework: the first call (Graph
  compilation, oneDNN kernel creation, ORT arena warm-up) timed apart from the median of
  the warm calls that follow; ratios against PyTorch eager; achieved TFLOP/s (2 FLOP per
  MAC, `bench/flops.py`);
* one whole 256x256 photo restored with the official tiling protocol (361 tiles, predictor
  batches of 64) in MindSpore Graph, PyTorch and ONNX Runtime, timed in the batch-64
  process after its warm calls;
* peak resident memory: every (framework, batch size) runs in its own subprocess, so each
  peak (VmHWM) belongs to one framework and one batch size;
* the machine: CPU model, cores, memory, load average before/after every job, versions and
  thread settings.

Jobs are interleaved (batch 1 of every framework, then batch 64 of every framework, ...)
so a change in background load hits all of them alike. The timings are only meaningful
on a quiet machine: check `uptime` first; the load averages are printed next to the
numbers. With the defaults the suite takes ~20 minutes on 2 cores: batch 64 of the full
model costs ~30-40 s per call, so batch 64 gets 1 first call + 3 warm calls, batch 1 gets
1 + 5, and the 256x256 image one timed run (361 tiles x ~0.5 s each).

MindSpore Graph on CPU runs a predictor batch as compiled calls of at most
`ipt_ms.inference.CPU_GRAPH_CALL_TILES` (8) tiles: Graph mode keeps every intermediate
of a call allocated), see docs/export.md.

CPU levers (`ipt_ms.levers`: im2col or native convolutions, tiles per Graph call): by default
what a user gets, i.e. the library's rule (`$IPT_MS_LEVERS`, else this machine's choice stored
by `ipt-ms tune` if there is one, else the built-in levers); `--levers stored|trial|default`
sets it. They are resolved once here, per MindSpore mode, from this user's compile cache (the
workers run with a scratch one), and every row says which levers it ran with (its "levers"
column, and "levers" in `--json`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ipt_ms  # noqa: E402,F401  (oneDNN / GLOG environment before MindSpore loads)
from bench.loadmeter import (  # noqa: E402
    REFUSED_EXIT,
    OthersMeter,
    loaded_banner,
    memory_mib,
    sample_others,
    scratch_dir,
    section_heading,
    verdict,
)

FRAMEWORKS = {  # key -> (create_predictor framework, MindSpore mode, label)
    "mindspore-pynative": ("mindspore", "pynative", "MindSpore PyNative"),
    "mindspore-graph": ("mindspore", "graph", "MindSpore Graph"),
    "torch": ("torch", None, "PyTorch eager"),
    "onnxruntime": ("onnx", None, "ONNX Runtime (MindSpore export, opset 11)"),
    "onnxruntime-torch": ("onnx", None, "ONNX Runtime (PyTorch export, opset 18)"),
}
DEFAULT_FRAMEWORKS = ("mindspore-pynative", "mindspore-graph", "torch", "onnxruntime", "onnxruntime-torch")
IMAGE_FRAMEWORKS = ("mindspore-graph", "torch", "onnxruntime")
REFERENCE = "torch"
RESULT_TAG = "BENCH_RESULT "
SECTION = "## Inference"


def section_title() -> str:
    return section_heading(SECTION)


@dataclass
class Job:
    """One framework at one batch size in one fresh process (optionally also the whole image)."""

    framework: str
    batch: int
    repeats: int
    weights: str
    task: str
    device: str = "cpu"
    image_size: int = 256
    image_runs: int = 0  # timed whole-image restorations after the patch timings
    compile_cache: str = ""  # IPT_MS_COMPILE_CACHE for the worker ("" inherits, "0" off)
    cache_state: str = ""  # MindSpore Graph: "cold" (empty compile cache) or "warm" (filled by the cold job)
    levers: dict = field(default_factory=dict)  # MindSpore: the `Levers` to run with (`resolve_levers`)


@dataclass
class Result:
    job: Job
    load_s: float = 0.0
    first_s: float = 0.0
    warm_s: list[float] = field(default_factory=list)
    image_s: list[float] = field(default_factory=list)
    tiles: int = 0
    peak_rss_mib: float = 0.0
    rss_loaded_mib: float = 0.0
    threads: str = ""
    load_before: float = 0.0
    load_after: float = 0.0
    others_cores: float = float("nan")  # mean cores other processes kept busy during the job
    levers: dict = field(default_factory=dict)  # MindSpore: the levers in effect (the predictor's `levers`)
    error: str = ""

    @property
    def warm_median(self) -> float:
        return _median(self.warm_s)

    @property
    def patches_per_s(self) -> float:
        return self.job.batch / self.warm_median if self.warm_s else 0.0


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


# ------------------------------------------------------------------------------ worker side
def _thread_settings(framework: str) -> str:
    if framework.startswith("mindspore"):
        import mindspore as ms

        return f"runtime_num_threads={ms.get_context('runtime_num_threads')}"
    if framework == "torch":
        import torch

        return f"torch threads={torch.get_num_threads()}"
    return f"ORT intra-op threads={os.environ.get('IPT_ORT_THREADS', 'default (physical cores)')}"


def run_job(job: Job) -> Result:
    """Load the model, time the first call, then the warm calls (or one whole image)."""
    import numpy as np

    from ipt_ms.inference import restore_array
    from ipt_ms.levers import Levers
    from ipt_ms.predictors import create_predictor

    result = Result(job)
    name, mode, _ = FRAMEWORKS[job.framework]
    start = time.perf_counter()
    predictor, spec = create_predictor(name, job.weights, job.task, batch_size=job.batch, device=job.device,
                                       mode=mode or "graph", levers=Levers(**job.levers) if job.levers else None)
    result.load_s = time.perf_counter() - start
    if getattr(predictor, "levers", None) is not None:
        result.levers = asdict(predictor.levers)
    result.rss_loaded_mib = memory_mib("VmRSS")
    result.threads = _thread_settings(job.framework)
    rng = np.random.default_rng(0)
    tiles = rng.uniform(0, spec.rgb_range, (job.batch, spec.n_colors, spec.patch_size, spec.patch_size))
    tiles = tiles.astype(np.float32)
    start = time.perf_counter()
    predictor(tiles)
    result.first_s = time.perf_counter() - start
    for _ in range(job.repeats):
        start = time.perf_counter()
        predictor(tiles)
        result.warm_s.append(time.perf_counter() - start)
    if job.image_runs:
        image = _photo(job.image_size)
        counted = {"tiles": 0}

        def counting(batch):
            counted["tiles"] += len(batch)
            return predictor(batch)

        for _ in range(job.image_runs):
            counted["tiles"] = 0
            start = time.perf_counter()
            restore_array(counting, image, scale=predictor.scale, patch=spec.patch_size, protocol="official")
            result.image_s.append(time.perf_counter() - start)
        result.tiles = counted["tiles"]
    result.peak_rss_mib = memory_mib("VmHWM")
    return result


def _photo(size: int):
    """A real photo (scikit-image's astronaut), centre crop resized to size x size, uint8 HWC."""
    import numpy as np

    from ipt_ms.eval.photos import sample_photo

    photo = sample_photo("astronaut")
    side = min(photo.shape[:2])
    crop = sample_photo("astronaut", side, side)
    index = (np.arange(size) * side / size).astype(int)
    return np.ascontiguousarray(crop[index][:, index])


def worker_main(payload: str) -> int:
    job = Job(**json.loads(payload))
    try:
        result = run_job(job)
    except Exception as err:  # reported by the parent next to the other results
        result = Result(job, error=f"{type(err).__name__}: {err}")
    data = asdict(result)
    print(RESULT_TAG + json.dumps(data), flush=True)
    return 0


# ------------------------------------------------------------------------------ parent side
def _job_id(job: Job) -> tuple:
    return job.framework, job.batch, job.cache_state


def merge_rounds(results: list[Result]) -> list[Result]:
    """One result per job of several rounds: every warm call counts, peaks and loads are the
    worst seen, first calls and whole images come from the first round."""
    merged: dict[tuple, Result] = {}
    for r in results:
        key = _job_id(r.job)
        if key not in merged:
            merged[key] = dataclasses.replace(r, warm_s=list(r.warm_s), image_s=list(r.image_s))
            continue
        m = merged[key]
        m.warm_s += r.warm_s
        m.image_s += r.image_s
        m.peak_rss_mib = max(m.peak_rss_mib, r.peak_rss_mib)
        m.others_cores = max(m.others_cores, r.others_cores)
        m.load_after = r.load_after
        m.error = m.error or r.error
    return list(merged.values())


def round_ratios(results: list[Result]) -> dict[tuple[str, int], list[float]]:
    """Per round, each framework's patches/s over PyTorch's at the same batch (the spread that
    the merged medians hide)."""
    seen: dict[tuple, int] = {}
    by_round: dict[tuple[int, str, int], float] = {}
    for r in results:
        if r.job.cache_state == "cold" or r.error or not r.warm_s:
            continue
        key = _job_id(r.job)
        index = seen.get(key, 0)
        seen[key] = index + 1
        by_round[(index, r.job.framework, r.job.batch)] = r.patches_per_s
    out: dict[tuple[str, int], list[float]] = {}
    for (index, framework, batch), rate in sorted(by_round.items()):
        base = by_round.get((index, "torch", batch))
        if framework != "torch" and base:
            out.setdefault((framework, batch), []).append(rate / base)
    return out


def _loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def spawn(job: Job, timeout: float) -> Result:
    """Run one job in a fresh interpreter; its peak RSS is its own.

    The load average counts the worker's own threads, so contention is measured directly:
    busy CPU time of the whole machine minus this process tree's, per second of the job.
    """
    before = _loadavg()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(asdict(job))]
    env = dict(os.environ)
    if job.compile_cache:
        env["IPT_MS_COMPILE_CACHE"] = job.compile_cache
    with OthersMeter() as meter:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=scratch_dir(), env=env)
        except subprocess.TimeoutExpired:
            proc = None
    stats = dict(load_before=before, load_after=_loadavg(), others_cores=meter.cores)
    if proc is None:
        return Result(job, error=f"timed out after {timeout:.0f} s", **stats)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return Result(job, error=f"worker exited {proc.returncode}: {tail[0]}", **stats)
    data = json.loads(lines[-1][len(RESULT_TAG):])
    data["job"] = Job(**data["job"])
    data.update(stats)
    return Result(**data)


def resolve_levers(spec, task: str, setting: str | None, device: str, frameworks: list[str]) -> dict[str, dict]:
    """The CPU levers of each MindSpore mode among `frameworks`, by the library's rule
    (`ipt_ms.levers.choose_levers`: `setting`, else `$IPT_MS_LEVERS`, else stored), as `Levers` fields.

    Resolved in this process, under this user's compile cache where `ipt-ms tune` stores its
    choices (a worker runs with a scratch one); ``trial`` measures here when nothing is stored."""
    modes = sorted({FRAMEWORKS[f][1] for f in frameworks if FRAMEWORKS[f][0] == "mindspore"})
    if not modes:
        return {}
    from ipt_ms.levers import Levers, choose_levers
    from ipt_ms.runtime import configure

    chosen = {}
    for mode in modes:
        if device.lower() != "cpu":
            chosen[mode] = asdict(Levers())  # the levers are a CPU matter
            continue
        configure("cpu", mode)
        chosen[mode] = asdict(choose_levers(spec, task, setting))
    return chosen


def _levers_setting(setting: str | None, chosen: dict[str, dict]) -> str:
    """The bench's levers setting and what it resolved to, per mode, in one line."""
    asked = f"--levers {setting}" if setting else "the library's rule ($IPT_MS_LEVERS, else stored)"
    if not chosen:
        return f"{asked}; no MindSpore job"
    return asked + "; " + ", ".join(f"{mode}: {levers_label(levers)}" for mode, levers in chosen.items())


def levers_label(levers: dict) -> str:
    """A row's levers in words ("-" where they do not apply): what ran, and where it came from."""
    if not levers:
        return "-"
    from ipt_ms.levers import Levers

    return f"{Levers(**levers).describe()} ({levers['origin']})"


def export_onnx_files(weights: str, task: str, folder: Path, frameworks: list[str], timeout: float) -> dict:
    """Export the ONNX files the ORT jobs need, each in its own process (not counted in their memory)."""
    files, seconds = {}, {}
    for key, source in (("onnxruntime", "mindspore"), ("onnxruntime-torch", "torch")):
        if key not in frameworks:
            continue
        path = folder / f"ipt_{source}.onnx"
        cmd = [sys.executable, "-m", "ipt_ms", "export", "--weights", weights, "--task", task, "--source", source,
               "--device", "cpu", "-o", str(path)]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=scratch_dir())
        if proc.returncode != 0:
            raise SystemExit(f"export for {key} failed: {proc.stderr.strip().splitlines()[-1:]}")
        files[key], seconds[key] = str(path), time.perf_counter() - start
    return {"files": files, "seconds": seconds}


def make_weights(spec, folder: Path) -> str:
    from ipt_ms.convert.weights import save_weights
    from ipt_ms.provenance import seeded
    from parity.seeded import seeded_state

    path = folder / "ipt_bench.pt"
    save_weights(path, seeded_state(spec, 0), spec, provenance=seeded(0))
    return str(path)


def machine_description() -> dict:
    from importlib import metadata

    info = {"python": platform.python_version(), "platform": platform.platform(), "cores": os.cpu_count()}
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Model name", "Hypervisor vendor"):
                info[key.strip().lower().replace(" ", "_")] = value.strip()
    except (OSError, subprocess.SubprocessError):
        info["model_name"] = platform.processor() or "unknown"
    try:
        kb = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                  if ln.startswith("MemTotal"))
        info["memory_gib"] = round(kb / 2**20, 1)
    except (OSError, StopIteration):
        pass
    for package in ("mindspore", "torch", "onnxruntime", "onnx", "numpy"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = "not installed"
    info["env"] = {k: os.environ.get(k, "") for k in ("ONEDNN_MAX_CPU_ISA", "OMP_NUM_THREADS", "IPT_ORT_THREADS")}
    from ipt_ms import machine

    info["isa"] = f"oneDNN ISA {machine.isa_in_effect()} (CPU's best {machine.best_isa()})"
    return info


# ------------------------------------------------------------------------------ report
def _fmt(value: float, digits: int = 3) -> str:
    if value != value:  # nan
        return "-"
    return f"{value:,.{digits}f}"


def render(results: list[Result], *, spec, task: str, flops: int, machine: dict, exports: dict, smoke: bool,
           started: float, finished: float, loads: tuple[float, float], pre_check: float = float("nan"),
           levers_setting: str = "the library's rule", rounds: int = 1,
           spread: dict[tuple[str, int], list[float]] | None = None) -> str:
    """The `## Inference` section (Markdown)."""
    from bench.flops import ipt_macs

    macs = ipt_macs(spec, task)
    cold = {(r.job.framework, r.job.batch): r for r in results if r.job.cache_state == "cold" and not r.error}
    patches = [r for r in results if r.job.cache_state != "cold"]
    images = [r for r in results if r.job.image_runs]
    ref = {r.job.batch: r for r in patches if r.job.framework == REFERENCE and not r.error}
    ref_image = next((r for r in images if r.job.framework == REFERENCE and not r.error), None)
    job_loads = [x for r in results for x in (r.load_before, r.load_after)]
    others = [r.others_cores for r in results if r.others_cores == r.others_cores]
    judged = verdict([r.others_cores for r in results] + [pre_check])
    lines = [section_title(), ""]
    if smoke:
        lines += ["**Smoke run (tiny model, 1 iteration): not a measurement.**", ""]
    if not judged.quiet:
        lines += [loaded_banner(judged), ""]
    lines += [
        "`bench/run.py` (run: `.venv/bin/python bench/run.py`; `--smoke` is the CI form) measures every framework "
        "side by side in one run, each (framework, measurement) in its own process so that peak memory (VmHWM) "
        f"is its own. Patches are {spec.patch_size}x{spec.patch_size} float32 inputs, seeded uniform noise "
        "(speed does not depend on values); "
        "'first call' includes Graph compilation / kernel creation, 'warm' is the median of the calls after it; "
        "MindSpore Graph runs twice per batch size, first with an empty persistent compile cache (`ipt_ms."
        "compile_cache`; 'first call, cold') and then in a new process that finds the graph there ('first call, "
        "warm'; the other columns are from this second process). "
        "Ratios are patches/s against PyTorch eager at the same batch. TFLOP/s counts 2 FLOP per MAC. "
        "MindSpore Graph on CPU feeds a batch to the compiled network at most 8 tiles per call by default "
        "(`CPU_GRAPH_CALL_TILES`: Graph mode keeps much of a call's intermediates allocated); a choice stored by "
        "`ipt-ms tune` may make it 1 and switch the convolutions (the 'levers' column).",
        "",
        f"- Model: IPT `{task}`, {spec.num_parameters():,} parameters "
        f"({spec.num_layers}+{spec.num_layers} layers, {spec.num_heads} heads, n_feats {spec.n_feats}, "
        f"patch {spec.patch_size}); per patch {macs['total'] / 1e9:.2f} GMAC = {flops / 1e9:.2f} GFLOP "
        f"(the paper's \"33 GFLOPs\" counts MACs; body {100 * (macs['body.encoder'] + macs['body.decoder'] + macs['body.linear']) / macs['total']:.1f}%, "  # noqa: E501
        f"head {100 * macs['head'] / macs['total']:.1f}%, tail {100 * macs['tail'] / macs['total']:.1f}%).",
        f"- Machine: {machine.get('model_name', '?')} ({machine.get('hypervisor_vendor', 'bare metal')} guest), "
        f"{machine.get('cores')} cores, {machine.get('memory_gib', '?')} GiB, {machine.get('isa', '?')}; "
        f"{machine.get('platform')}.",
        f"- Load: 1-min load average {loads[0]:.2f} before the suite ({loads[1]:.2f} after; "
        f"{min(job_loads, default=float('nan')):.2f}-{max(job_loads, default=float('nan')):.2f} around the "
        "jobs, which counts the benchmark's own threads). Other processes kept on average "
        f"{max(others, default=float('nan')):.2f} cores busy during the busiest job "
        f"(mean over jobs {sum(others) / max(len(others), 1):.2f}; column 'others'). "
        + (f"Quiet enough for timings ({judged.describe()})." if judged.quiet else
           "**The machine was not quiet: other jobs shared the cores, so treat the timings as rough.**"),
        f"- Versions: Python {machine['python']}, MindSpore {machine['mindspore']}, PyTorch {machine['torch']}, "
        f"ONNX Runtime {machine['onnxruntime']}, onnx {machine['onnx']}, numpy {machine['numpy']}; "
        f"env ONEDNN_MAX_CPU_ISA={machine['env'].get('ONEDNN_MAX_CPU_ISA') or 'unset'}.",
        f"- Run: {time.strftime('%Y-%m-%d %H:%M', time.localtime(started))}, {(finished - started) / 60:.1f} min.",
        f"- Levers (MindSpore, `ipt_ms.levers`): {levers_setting}; each row's are in its 'levers' column.",
        *([f"- Rounds: {rounds}, the warm jobs run once per round with the frameworks taking turns; 'warm "
           "median' and 'runs' pool every round's calls. Per-round throughput vs PyTorch: "
           + "; ".join(f"{FRAMEWORKS[fw][2]} batch {b}: " + ", ".join(f"{x:.2f}" for x in xs)
                       for (fw, b), xs in sorted((spread or {}).items())) + "."] if rounds > 1 else []),
        "",
        "| framework | batch | load (s) | first call, cold (s) | first call, warm (s) | warm median (s) | runs | "
        "patches/s | vs PyTorch | TFLOP/s | peak RSS (MiB) | RSS vs PyTorch | others | levers | threads |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in patches:
        label = FRAMEWORKS[r.job.framework][2]
        if r.error:
            lines.append(f"| {label} | {r.job.batch} | - | - | - | - | - | - | - | - | - | - | - | "
                         f"{levers_label(r.job.levers)} | error: {r.error} |")
            continue
        base = ref.get(r.job.batch)
        ratio = r.patches_per_s / base.patches_per_s if base and base.patches_per_s else float("nan")
        memory = r.peak_rss_mib / base.peak_rss_mib if base and base.peak_rss_mib else float("nan")
        first_cold = cold.get((r.job.framework, r.job.batch))
        cold_s, warm_s = (first_cold.first_s, r.first_s) if first_cold else (r.first_s, float("nan"))
        peak = f"{r.peak_rss_mib:,.0f}" + (f" ({first_cold.peak_rss_mib:,.0f} cold)" if first_cold else "")
        lines.append(
            f"| {label} | {r.job.batch} | {_fmt(r.load_s, 1)} | {_fmt(cold_s)} | {_fmt(warm_s)} | "
            f"{_fmt(r.warm_median)} | {len(r.warm_s)} | {_fmt(r.patches_per_s, 2)} | {_fmt(ratio, 2)} | "
            f"{_fmt(r.patches_per_s * flops / 1e12, 3)} | {peak} | {_fmt(memory, 2)} | "
            f"{_fmt(r.others_cores, 2)} | {levers_label(r.levers)} | {r.threads} |")
    if images:
        size = images[0].job.image_size
        lines += ["", f"Whole image: a {size}x{size} photo (scikit-image astronaut), official tiling "
                      f"(48-px tiles, stride 12), predictor batches of {images[0].job.batch}, "
                      f"x{spec.scale_of(task)} output; timed in the batch-{images[0].job.batch} process above, "
                      "so after its warm-up and warm calls (peak RSS there covers both).", "",
                  "| framework | tiles | image (s) | runs | tiles/s | vs PyTorch |",
                  "|---|---:|---:|---:|---:|---:|"]
        for r in images:
            label = FRAMEWORKS[r.job.framework][2]
            if r.error:
                lines.append(f"| {label} | - | - | - | - | error: {r.error} |")
                continue
            seconds = _median(r.image_s)
            ratio = _median(ref_image.image_s) / seconds if ref_image else float("nan")
            lines.append(f"| {label} | {r.tiles} | {_fmt(seconds, 2)} | {len(r.image_s)} | "
                         f"{_fmt(r.tiles / seconds, 2)} | {_fmt(ratio, 2)} |")
    if exports.get("seconds"):
        done = ", ".join(f"{FRAMEWORKS[k][2].split('(')[1].rstrip(')')}: {v:.0f} s"
                         for k, v in exports["seconds"].items())
        lines += ["", f"ONNX export time (whole `ipt-ms export` process, incl. loading): {done}."]
    return "\n".join(lines) + "\n"


def update_markdown(path: Path, section: str, title: str = SECTION) -> None:
    """Replace the `title` section (`## Inference`) of `path` (or append it), leaving every other section alone."""
    from ipt_ms.fileio import atomic_output

    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if ln.rstrip() == title), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        tail = "".join(lines[end:])
        new = "".join(lines[:start]) + section + ("\n" + tail if tail else "")
    with atomic_output(path, overwrite=True) as tmp:  # the benchmark's own report file
        tmp.write_text(new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help="tiny model, 1 iteration, small image (CI)")
    parser.add_argument("--out", default=None,
                        help="Markdown file whose '## Inference' section is written (default BENCHMARKS.md; "
                             "with --smoke nothing is written unless given)")
    parser.add_argument("--json", default=None, help="also write the raw results here")
    parser.add_argument("--frameworks", default=",".join(DEFAULT_FRAMEWORKS),
                        help=f"comma-separated subset of {', '.join(FRAMEWORKS)}")
    parser.add_argument("--image-frameworks", default=",".join(IMAGE_FRAMEWORKS),
                        help="frameworks timed on the whole image (default: Graph, PyTorch, ORT)")
    parser.add_argument("--batches", default="1,64", help="batch sizes (default 1,64)")
    parser.add_argument("--repeats", default="1:5,64:3",
                        help="warm calls per batch size, BATCH:N pairs (default 1:5,64:3)")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--image-runs", type=int, default=1, help="timed whole-image runs (default 1)")
    parser.add_argument("--task", default="sr_x2")
    parser.add_argument("--device", default="cpu", help="cpu (default) or gpu: every framework on the GPU")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per job (default 1800)")
    parser.add_argument("--levers", default=None, choices=("stored", "trial", "default"),
                        help="MindSpore CPU levers: stored (this machine's choice from `ipt-ms tune`, else the "
                             "built-in ones), trial (measure first if none is stored), default (the built-in ones); "
                             "default: what a user gets, $IPT_MS_LEVERS, else stored")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the warm jobs this many times, frameworks taking turns, and merge each one's "
                             "calls (a VM's speed drifts over minutes; default 1)")
    parser.add_argument("--allow-loaded", action="store_true",
                        help="write the section even when other processes used more than the limit of the CPU "
                             "(bench/loadmeter.py); it is then marked LOADED")
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args.worker)

    from bench.flops import ipt_flops
    from ipt_ms.spec import IPTSpec

    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    unknown = [f for f in frameworks if f not in FRAMEWORKS]
    if unknown:
        parser.error(f"unknown framework(s) {unknown}; choose from {', '.join(FRAMEWORKS)}")
    image_frameworks = [f for f in args.image_frameworks.split(",") if f.strip() in frameworks]
    batches = [int(b) for b in args.batches.split(",")]
    repeats = {int(k): int(v) for k, v in (pair.split(":") for pair in args.repeats.split(","))}
    if args.smoke:
        spec = IPTSpec.tiny(scales=(2,), task_names=(args.task,))
        batches, repeats, image_size, image_runs = [2], {}, 40, 1
        default_repeats = 1
    else:
        spec = IPTSpec.official(args.task)
        image_size, image_runs, default_repeats = args.image_size, args.image_runs, 3
    flops = ipt_flops(spec, args.task)
    out = Path(args.out) if args.out else (None if args.smoke else ROOT / "BENCHMARKS.md")

    started, load_start = time.time(), _loadavg()
    pre_check = sample_others(3.0)
    print(f"load average {load_start:.2f}, other processes {pre_check:.2f} cores; "
          f"{'smoke run' if args.smoke else 'full-size model'}", flush=True)
    if out is not None and not args.allow_loaded and not verdict([pre_check]).quiet:
        print(f"refusing to benchmark into {out}: {verdict([pre_check]).describe()} (before starting); "
              "wait for an idle machine or pass --allow-loaded", file=sys.stderr)
        return REFUSED_EXIT
    chosen = resolve_levers(spec, args.task, args.levers, args.device, frameworks)
    levers_setting = _levers_setting(args.levers, chosen)
    print(f"levers: {levers_setting}", flush=True)
    with tempfile.TemporaryDirectory(prefix="ipt-bench-") as tmp:
        folder = Path(tmp)
        weights = make_weights(spec, folder)
        exports = export_onnx_files(weights, args.task, folder, frameworks, args.timeout)
        cache = str(folder / "compile-cache")
        jobs = []
        for b in batches:
            for fw in frameworks:
                image = image_runs if b == max(batches) and fw in image_frameworks else 0
                job = Job(fw, b, repeats.get(b, default_repeats), exports["files"].get(fw, weights), args.task,
                          args.device, image_size, image, compile_cache="0", levers=chosen.get(FRAMEWORKS[fw][1], {}))
                if fw == "mindspore-graph":  # first call with an empty compile cache, then with the graph in it
                    jobs.append(Job(fw, b, 1, job.weights, args.task, args.device, image_size, 0, cache, "cold",
                                    levers=job.levers))
                    job.compile_cache, job.cache_state = cache, "warm"
                jobs.append(job)
        if args.rounds < 1:
            parser.error("--rounds must be >= 1")
        scheduled = jobs + [dataclasses.replace(job, image_runs=0) for _ in range(args.rounds - 1)
                            for job in jobs if job.cache_state != "cold"]
        results = []
        for job in scheduled:
            result = spawn(job, args.timeout)
            results.append(result)
            what = f"batch {job.batch}" + (f" ({job.cache_state})" if job.cache_state else "")
            status = result.error or (f"first {result.first_s:.3f} s, warm {result.warm_median:.3f} s, "
                                      f"{result.patches_per_s:.2f} patches/s"
                                      + (f", image {_median(result.image_s):.2f} s" if result.image_s else ""))
            print(f"{FRAMEWORKS[job.framework][2]:<42} {what:<14} {status}; peak {result.peak_rss_mib:,.0f} MiB; "
                  f"load {result.load_before:.2f}->{result.load_after:.2f}, others {result.others_cores:.2f} cores"
                  + (f"; levers: {levers_label(result.levers)}" if result.levers else ""), flush=True)
    finished = time.time()
    spread = round_ratios(results) if args.rounds > 1 else {}
    results = merge_rounds(results)
    section = render(results, spec=spec, task=args.task, flops=flops, machine=machine_description(),
                     exports=exports, smoke=args.smoke, started=started, finished=finished,
                     loads=(load_start, _loadavg()), pre_check=pre_check, levers_setting=levers_setting,
                     rounds=args.rounds, spread=spread)
    print(section)
    judged = verdict([r.others_cores for r in results] + [pre_check])
    if out is not None and not judged.quiet and not args.allow_loaded:
        print(f"refusing to write {out}: {judged.describe()}; re-run on an idle machine or pass --allow-loaded "
              "(the section is then marked LOADED)", file=sys.stderr)
        return REFUSED_EXIT
    if out is not None:
        update_markdown(out, section, section_title())
        print(f"wrote {out}")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
