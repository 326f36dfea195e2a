"""What `ipt-ms doctor` was asked (`DoctorOptions`) and what it found: one `Check` per line, written as
doctor.md / doctor.json (`DoctorReport`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ipt_ms.errors import IPTError

STATUSES = ("pass", "fail", "skip", "info")
SKIPPABLE = ("parity", "training", "amp", "speed")


@dataclass
class Check:
    name: str
    status: str
    summary: str
    seconds: float = 0.0
    details: dict = field(default_factory=dict)

    def line(self) -> str:
        return f"[{self.status.upper():4}] {self.name}: {self.summary} ({self.seconds:.1f} s)"


@dataclass
class DoctorOptions:
    device: str = "auto"
    mode: str = "graph"
    out: str = "doctor-report"
    amp: str = "O2"  # O2, O3 or off
    speed: str = "full"  # full, tiny or off
    msrun: bool = False
    stage_tol: float = 1e-5
    output_tol: float = 1e-4
    floor_factor: float = 4.0
    train_steps: int = 3
    msrun_timeout: float = 300.0
    skip: tuple[str, ...] = ()  # any of SKIPPABLE


    def check(self) -> None:
        from ipt_ms.runtime import DEVICE_SPELLINGS, MODES

        if str(self.device).lower() not in {d.lower() for d in DEVICE_SPELLINGS}:
            raise IPTError(f"unknown device {self.device!r}; choose one of CPU, GPU, Ascend, auto")
        if self.mode not in MODES:
            raise IPTError(f"unknown mode {self.mode!r}; choose graph or pynative")
        if self.amp not in ("O2", "O3", "off"):
            raise IPTError(f"--amp must be O2, O3 or off, got {self.amp!r}")
        if self.speed not in ("full", "tiny", "off"):
            raise IPTError(f"--speed must be full, tiny or off, got {self.speed!r}")
        for name in ("stage_tol", "output_tol", "floor_factor"):
            if not getattr(self, name) >= 0:
                raise IPTError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.train_steps < 1:
            raise IPTError(f"--train-steps must be >= 1, got {self.train_steps}")
        unknown = sorted(set(self.skip) - set(SKIPPABLE))
        if unknown:
            raise IPTError(f"--skip takes {', '.join(SKIPPABLE)}; unknown: {', '.join(unknown)}")


@dataclass
class DoctorReport:
    options: dict
    environment: dict
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return not any(c.status == "fail" for c in self.checks)

    def verdict(self) -> str:
        failed = [c.name for c in self.checks if c.status == "fail"]
        skipped = [c.name for c in self.checks if c.status == "skip"]
        device = self.environment.get("device", {}).get("resolved") or self.options.get("device")
        ms_version = self.environment.get("packages", {}).get("mindspore")
        head = (f"**{'PASS' if self.ok else 'FAIL'}.** ipt-ms doctor on {device} (MindSpore {ms_version}, "
                f"{self.options.get('mode')} mode): ")
        ran = [c for c in self.checks if c.status in ("pass", "fail")]
        if failed:
            text = f"{len(failed)} of {len(ran)} checks failed: {', '.join(failed)}."
        else:
            text = f"all {len(ran)} checks that ran passed."
        if skipped:
            text += f" Skipped: {', '.join(skipped)} (reasons below)."
        return head + text

    def to_dict(self) -> dict:
        return {"ok": self.ok, "verdict": self.verdict(), "options": self.options, "environment": self.environment,
                "checks": [asdict(c) for c in self.checks]}

    def to_markdown(self) -> str:
        env = self.environment
        rows = ["| check | result | time | summary |", "|---|---|---:|---|"]
        rows += [f"| {c.name} | {'**FAIL**' if c.status == 'fail' else c.status} | {c.seconds:.1f} s | "
                 f"{c.summary.replace('|', '/')} |" for c in self.checks]
        lines = [f"# ipt-ms doctor: {'PASS' if self.ok else 'FAIL'}", "", self.verdict(), "", "## Checks", "",
                 *rows, "", "## Environment", ""]
        for section, values in env.items():
            if isinstance(values, dict):
                shown = ", ".join(f"{k} {v}" for k, v in values.items() if v not in (None, "", [], {})) or "none found"
                lines.append(f"- {section}: {shown}")
            else:
                lines.append(f"- {section}: {values}")
        lines += ["", "## Details", ""]
        for c in self.checks:
            if c.details:
                lines += [f"### {c.name}", "", "```", json.dumps(c.details, indent=2, default=str), "```", ""]
        return "\n".join(lines)

    def write(self, directory: str | os.PathLike) -> list[Path]:
        from ipt_ms.fileio import atomic_output, ensure_writable_dir

        directory = ensure_writable_dir(directory, "doctor report directory")
        written = []
        for name, text in (("doctor.json", json.dumps(self.to_dict(), indent=2, default=str)),
                           ("doctor.md", self.to_markdown())):
            with atomic_output(directory / name, overwrite=True) as tmp:  # its own report, rewritten each run
                tmp.write_text(text + "\n")
            written.append(directory / name)
        return written
