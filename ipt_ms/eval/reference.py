"""Published IPT results (Y-channel PSNR in dB), shown next to measured numbers.

Sources: the IPT paper (CVPR 2021, Tables 1-3) and the huawei-noah/Pretrained-IPT readme,
as collected in ipt-conventions.md sections 5.3, 7 and 9. These are reference targets,
never used as results.
"""

from __future__ import annotations

__all__ = ["PAPER_PSNR", "PAPER_SSIM", "paper_value", "set_alias"]

#: task name -> benchmark set -> PSNR (dB, Y channel)
PAPER_PSNR: dict[str, dict[str, float]] = {
    "sr_x2": {"Set5": 38.37, "Set14": 34.43, "B100": 32.48, "Urban100": 33.76},
    "sr_x3": {"Set5": 34.81, "Set14": 30.85, "B100": 29.38, "Urban100": 29.49},
    "sr_x4": {"Set5": 32.64, "Set14": 29.01, "B100": 27.82, "Urban100": 27.26},
    "denoise_30": {"CBSD68": 32.32, "Urban100": 33.75},
    "denoise_50": {"CBSD68": 29.88, "Urban100": 31.12},
    "derain": {"Rain100L": 41.62},
    "deblur": {"GoPro": 32.58},
}

#: task name -> benchmark set -> SSIM (only deraining is reported with SSIM)
PAPER_SSIM: dict[str, dict[str, float]] = {"derain": {"Rain100L": 0.9880}}

_ALIASES = {"bsd100": "B100", "b100": "B100", "bsd68": "CBSD68", "cbsd68": "CBSD68", "set5": "Set5",
            "set14": "Set14", "urban100": "Urban100", "rain100l": "Rain100L", "gopro": "GoPro",
            "gopro_large": "GoPro"}


def set_alias(name: str) -> str:
    """Canonical spelling of a benchmark set name (BSD100 -> B100, ...)."""
    return _ALIASES.get(name.lower(), name)


def paper_value(task: str, set_name: str, metric: str = "psnr") -> float | None:
    """The published number for (task, set), or None when the paper has none."""
    table = PAPER_PSNR if metric == "psnr" else PAPER_SSIM if metric == "ssim" else {}
    return table.get(task, {}).get(set_alias(set_name))
