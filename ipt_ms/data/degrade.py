"""Degradations per task: bicubic downscaling, Gaussian noise, rain, motion blur.

One entry point, :class:`Degrader`, maps a task name (``ipt_ms.tasks``) to the function
clean -> (degraded, target) used by the benchmark loaders, the fine-tuning dataset and
``ipt-ms synth``:

=========== ===================================== ====================== =================
kind        degraded                              target                 degraded dtype
=========== ===================================== ====================== =================
sr          ``imresize(modcrop(x, s), 1/s)``      ``modcrop(x, s)``      uint8 (MATLAB)
denoise     ``clip(x + sigma * N(0, 1), 0, 255)`` x                      float32
derain      ``clip(x + S, 0, 255)``               x                      float32
deblur      ``x * k`` (reflect padding)           x                      float32
=========== ===================================== ====================== =================

Noise, rain and blur are float and **not rounded**, as the IPT test code feeds them; write
them with :func:`ipt_ms.data.imageio.write_image` to get the (rounded) PNG. For whole
images the random draws come from :func:`ipt_ms.data.seeding.image_rng` (seed, image name),
so any subset or order reproduces the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ipt_ms.data.blur import BlurConfig, blur_image, random_kernel
from ipt_ms.data.imresize import imresize, modcrop
from ipt_ms.data.rain import ProceduralStreakBank, StreakLayers, add_rain, procedural_streaks
from ipt_ms.data.seeding import image_rng
from ipt_ms.errors import IPTError
from ipt_ms.tasks import Task, parse_task

__all__ = ["Degrader", "add_gaussian_noise", "noisy_image", "SUPPORTED_KINDS"]

SUPPORTED_KINDS = ("sr", "denoise", "derain", "deblur")


def add_gaussian_noise(
    img: np.ndarray, sigma: float, rng: np.random.Generator, clip: bool = True
) -> np.ndarray:
    """``img + sigma * N(0, 1)`` as float32 on the [0, 255] scale.

    ``clip=True`` (default) clips to [0, 255] like the IPT test code; ``clip=False`` keeps
    the full Gaussian, as DnCNN / SwinIR evaluate. The two give different PSNRs near black
    and white, so report which one was used.
    """
    noise = rng.standard_normal(img.shape, dtype=np.float32)
    out = img.astype(np.float32) + np.float32(sigma) * noise
    if clip:
        np.clip(out, 0.0, 255.0, out=out)
    return out


def noisy_image(img: np.ndarray, sigma: float, seed: int, name: str, clip: bool = True) -> np.ndarray:
    """Noise for a whole benchmark image, seeded by (seed, name): subset-independent."""
    return add_gaussian_noise(img, sigma, image_rng(seed, name, "denoise"), clip=clip)


@dataclass
class Degrader:
    """Clean image -> (degraded, target) for one task.

    ``rain``: a :class:`StreakLayers` (real RainTrainL layers) or a preset name ("light" /
    "heavy") for procedural streaks. ``blur``: how kernels are drawn. ``clip`` applies to
    noise only (rain is always clipped, blur cannot leave the range).
    """

    task: Task | str
    clip: bool = True
    rain: StreakLayers | ProceduralStreakBank | str = "light"
    blur: BlurConfig = field(default_factory=BlurConfig)

    def __post_init__(self):
        if isinstance(self.task, str):
            self.task = parse_task(self.task)
        if self.task.kind not in SUPPORTED_KINDS:
            raise IPTError(
                f"task {self.task.name!r} has no synthetic degradation (supported: sr_x<s>, "
                "denoise_<sigma>, derain, deblur)"
            )

    @property
    def scale(self) -> int:
        return self.task.scale

    def target(self, clean: np.ndarray) -> np.ndarray:
        """The ground truth for ``clean`` (modcropped for SR)."""
        return modcrop(clean, self.task.scale) if self.task.kind == "sr" else clean

    def degrade(self, target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Degrade an already-cropped target with draws from ``rng``."""
        kind = self.task.kind
        if kind == "sr":
            s = self.task.scale
            if target.shape[0] % s or target.shape[1] % s:
                raise IPTError(f"{self.task.name}: target size {target.shape[:2]} is not a multiple of {s}")
            return imresize(target, 1.0 / s)
        if kind == "denoise":
            return add_gaussian_noise(target, self.task.sigma, rng, clip=self.clip)
        if kind == "derain":
            h, w = target.shape[:2]
            if isinstance(self.rain, str):
                streak = procedural_streaks(h, w, rng, self.rain)
            else:
                streak = self.rain.sample(h, w, rng)
            return add_rain(target, streak)
        kernel = random_kernel(rng, self.blur)
        return blur_image(target, kernel)

    def kernel_for(self, seed: int, name: str) -> np.ndarray:
        """The blur kernel ``__call__`` uses for image ``name`` (deblur only)."""
        if self.task.kind != "deblur":
            raise IPTError(f"task {self.task.name} has no blur kernel")
        return random_kernel(image_rng(seed, name, self.task.kind), self.blur)

    def __call__(self, clean: np.ndarray, seed: int, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(degraded, target) for a whole image, random draws seeded by (seed, name)."""
        target = self.target(clean)
        rng = image_rng(seed, name, self.task.kind)
        return self.degrade(target, rng), target
