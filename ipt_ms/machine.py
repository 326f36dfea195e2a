"""What CPU this is, in the words every figure needs: model, vendor, and the ISA oneDNN uses.

Rounding and speed depend on the kernels oneDNN picks, and it picks by instruction set:
AVX-512 (with bf16/AMX on recent Xeons and on AMD Zen 4) or AVX2, unless
`ONEDNN_MAX_CPU_ISA` caps it. Benchmarks, parity reports and `ipt-ms doctor` name both
(BENCHMARKS.md keeps one table per CPU kind).
"""

from __future__ import annotations

import functools
import os
import platform

#: oneDNN's ISA names, best first, with the CPU flags each needs (x86-64 only)
_ISAS = (
    ("AVX512_CORE_AMX", ("avx512f", "avx512bw", "avx512vl", "avx512dq", "amx_tile")),
    ("AVX512_CORE_BF16", ("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16")),
    ("AVX512_CORE_VNNI", ("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni")),
    ("AVX512_CORE", ("avx512f", "avx512bw", "avx512vl", "avx512dq")),
    ("AVX2", ("avx2", "fma")),
    ("AVX", ("avx",)),
    ("SSE41", ("sse4_1",)),
)
_ORDER = [name for name, _ in _ISAS]
ISA_ENV = "ONEDNN_MAX_CPU_ISA"


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, str, frozenset[str]]:
    model, vendor, flags = platform.processor() or platform.machine(), "", frozenset()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.processor(), platform.machine()):
                    model = value.strip()
                elif key == "vendor_id" and not vendor:
                    vendor = value.strip()
                elif key == "flags" and not flags:
                    flags = frozenset(value.split())
                if model and vendor and flags:
                    break
    except OSError:
        pass
    return model, vendor, flags


def best_isa() -> str | None:
    """The best oneDNN ISA this CPU offers (None when /proc/cpuinfo tells nothing)."""
    flags = _cpuinfo()[2]
    return next((name for name, needs in _ISAS if all(f in flags for f in needs)), None)


def isa_in_effect() -> str:
    """The ISA oneDNN may use here: the CPU's best, lowered by `ONEDNN_MAX_CPU_ISA` if set."""
    best = best_isa()
    cap = os.environ.get(ISA_ENV, "").strip().upper()
    if best is None:
        return cap or "unknown"
    if cap in _ORDER and _ORDER.index(cap) > _ORDER.index(best):
        return cap
    return best


def cpu_kind() -> str:
    """'Intel', 'AMD' or the vendor string: BENCHMARKS.md keeps a table per kind."""
    vendor = _cpuinfo()[1]
    return {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}.get(vendor, vendor or platform.machine())


def describe() -> dict[str, str]:
    """Model, kind, cores, the CPU's best ISA and the one in effect, the cap if any."""
    return {"cpu": _cpuinfo()[0], "cpu_kind": cpu_kind(), "cores": str(os.cpu_count()),
            "best_isa": best_isa() or "unknown", "onednn_isa": isa_in_effect(),
            ISA_ENV: os.environ.get(ISA_ENV, "") or "unset"}


def one_line() -> str:
    """E.g. 'AMD EPYC (AMD), 2 cores, oneDNN ISA AVX2 (CPU's best AVX2)'."""
    d = describe()
    cap = "" if d[ISA_ENV] == "unset" else f", capped by {ISA_ENV}={d[ISA_ENV]}"
    return (f"{d['cpu']} ({d['cpu_kind']}), {d['cores']} cores, oneDNN ISA {d['onednn_isa']} "
            f"(CPU's best {d['best_isa']}{cap})")


def heading() -> str:
    """The CPU part of a BENCHMARKS.md section title: one section per CPU model and ISA."""
    d = describe()
    return f"{d['cpu']}, oneDNN {d['onednn_isa']}"
