"""Motion-blur kernels and blurring, for synthetic deblurring data.

Two kernel families:

* :func:`trajectory_kernel` -- random camera-shake trajectories after Boracchi & Foi (2012)
  (the model DeblurGAN ports): a 2-D random walk with inertia, Gaussian jitter, occasional
  big shakes and a centripetal pull, rasterised with bilinear splatting over a random
  exposure fraction of the walk;
* :func:`linear_kernel` -- an anti-aliased straight line of a given length and angle, like
  MATLAB's ``fspecial('motion', L, theta)``.

Kernels are float64, non-negative, odd-sized, **sum to 1** and are centred on their
centre of mass (to within half a pixel), so blurring neither changes brightness nor shifts
the image (DeblurGAN instead min-max normalises kernel and image, which changes both).
:func:`blur_image` convolves with reflect (half-sample symmetric) padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ipt_ms.data.seeding import rng_from
from ipt_ms.errors import IPTError

__all__ = [
    "EXPOSURE_FRACTIONS",
    "BlurConfig",
    "blur_image",
    "blur_patch_valid",
    "centre_kernel",
    "linear_kernel",
    "random_kernel",
    "random_trajectory",
    "splat",
    "trajectory_kernel",
]

#: Exposure fractions of the trajectory from which one PSF is chosen at random.
EXPOSURE_FRACTIONS = (1 / 1000, 1 / 10, 1 / 2, 1.0)
_EXPL_CHOICES = (0.01, 0.009, 0.008, 0.007, 0.005, 0.003, 0.002, 0.001)


def random_trajectory(
    rng: np.random.Generator,
    canvas: int = 64,
    iters: int = 2000,
    max_len: float = 60.0,
    expl: float | None = None,
) -> np.ndarray:
    """A camera-shake trajectory: ``iters`` complex positions (x = real, y = imag).

    ``expl`` (exploration) defaults to one of 0.01 ... 0.001 chosen at random. All random
    numbers are drawn up front as arrays; the walk itself is a recurrence (each step
    depends on the previous velocity and position) and runs as a scalar loop over
    ``iters`` steps, about 2 ms.
    """
    if iters < 2:
        raise IPTError("random_trajectory: iters must be >= 2")
    if expl is None:
        expl = float(_EXPL_CHOICES[int(rng.integers(len(_EXPL_CHOICES)))])
    centripetal = 0.7 * rng.random()
    prob_big_shake = 0.2 * rng.random()
    gaussian_shake = 10.0 * rng.random()
    phi = math.radians(360.0 * rng.random())
    n = iters - 1
    shake_u = rng.random(n)
    shake_angle = rng.random(n) - 0.5
    jitter = rng.standard_normal((n, 2))
    step = max_len / (iters - 1)

    big = (shake_u < prob_big_shake * expl).tolist()
    rot = np.exp(1j * (np.pi + shake_angle)).tolist()
    jit = (gaussian_shake * (jitter[:, 0] + 1j * jitter[:, 1])).tolist()

    v = complex(math.cos(phi), math.sin(phi)) * (expl if expl > 0 else step)
    x = 0j
    out = [0j] * iters
    for t in range(n):
        dv = expl * (jit[t] - centripetal * x) * step
        if big[t]:
            dv += 2.0 * v * rot[t]
        v += dv
        mag = abs(v)
        v = v * (step / mag) if mag > 0 else complex(step, 0.0)
        x += v
        out[t + 1] = x
    traj = np.asarray(out, dtype=np.complex128)
    # Centre the bounding box on the canvas.
    lo = complex(traj.real.min(), traj.imag.min())
    hi = complex(traj.real.max(), traj.imag.max())
    centre = (lo + hi) / 2
    return traj - centre + complex((canvas - 1) / 2, (canvas - 1) / 2)


def splat(points_x: np.ndarray, points_y: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Bilinear splatting of weighted points onto a size x size grid (triangle kernel)."""
    grid = np.zeros((size, size), dtype=np.float64)
    x0 = np.floor(points_x).astype(np.int64)
    y0 = np.floor(points_y).astype(np.int64)
    fx = points_x - x0
    fy = points_y - y0
    for dy, wy in ((0, 1.0 - fy), (1, fy)):
        for dx, wx in ((0, 1.0 - fx), (1, fx)):
            yy, xx = y0 + dy, x0 + dx
            inside = (yy >= 0) & (yy < size) & (xx >= 0) & (xx < size)
            np.add.at(grid, (yy[inside], xx[inside]), (weights * wy * wx)[inside])
    return grid


def centre_kernel(psf: np.ndarray) -> np.ndarray:
    """Crop a PSF to an odd square centred on its centre of mass, normalised to sum 1."""
    psf = np.asarray(psf, dtype=np.float64)
    total = psf.sum()
    if not np.isfinite(total) or total <= 0:
        raise IPTError("blur kernel is empty")
    ys, xs = np.nonzero(psf > 0)
    cy = int(round(float((psf.sum(axis=1) * np.arange(psf.shape[0])).sum() / total)))
    cx = int(round(float((psf.sum(axis=0) * np.arange(psf.shape[1])).sum() / total)))
    r = int(max(cy - ys.min(), ys.max() - cy, cx - xs.min(), xs.max() - cx))
    out = np.zeros((2 * r + 1, 2 * r + 1), dtype=np.float64)
    y_lo, y_hi = max(cy - r, 0), min(cy + r + 1, psf.shape[0])
    x_lo, x_hi = max(cx - r, 0), min(cx + r + 1, psf.shape[1])
    out[y_lo - (cy - r) : y_hi - (cy - r), x_lo - (cx - r) : x_hi - (cx - r)] = psf[y_lo:y_hi, x_lo:x_hi]
    return out / out.sum()


def trajectory_kernel(
    rng: np.random.Generator,
    canvas: int = 64,
    iters: int = 2000,
    max_len: float = 60.0,
    expl: float | None = None,
    fraction: float | None = None,
) -> np.ndarray:
    """A random camera-shake blur kernel (sum 1, odd size <= canvas + 1, centred).

    The PSF accumulates the trajectory from its start over an exposure ``fraction`` of the
    walk, chosen at random from :data:`EXPOSURE_FRACTIONS` if not given (the official
    generator accumulates its four PSFs without resetting, so PSF j integrates the walk up
    to fraction j; short fractions give nearly sharp kernels).
    """
    traj = random_trajectory(rng, canvas=canvas, iters=iters, max_len=max_len, expl=expl)
    if fraction is None:
        fraction = EXPOSURE_FRACTIONS[int(rng.integers(len(EXPOSURE_FRACTIONS)))]
    if not 0 < fraction <= 1:
        raise IPTError(f"trajectory_kernel: fraction must be in (0, 1], got {fraction}")
    end = fraction * (iters - 1)
    t = np.arange(iters, dtype=np.float64)
    # Full weight for samples inside the exposure, the fractional remainder for the sample
    # straddling its end.
    weights = np.clip(end - t + 1.0, 0.0, 1.0)
    keep = weights > 0
    psf = splat(traj.real[keep], traj.imag[keep], weights[keep], canvas + 1)
    return centre_kernel(psf)


def linear_kernel(length: float, angle: float) -> np.ndarray:
    """Anti-aliased straight-line kernel of ``length`` pixels at ``angle`` degrees
    (counter-clockwise from the +x axis, as MATLAB's ``fspecial('motion')``), sum 1.

    Each pixel's weight is its coverage across the line, ``max(0, 1 - distance)``, times its
    coverage along it, the overlap of the pixel with the segment of length ``length``. An
    axis-aligned line of integer length is therefore ``length`` equal taps, as in MATLAB.
    """
    if length <= 0:
        raise IPTError(f"linear_kernel: length must be positive, got {length}")
    half = float(length) / 2.0
    theta = math.radians(angle)
    c, s = math.cos(theta), math.sin(theta)
    r = int(math.ceil(half)) + 1
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float64)
    along = xx * c - yy * s  # image rows grow downwards, so +angle points up
    across = np.abs(xx * s + yy * c)
    weight = np.clip(1.0 - across, 0.0, None) * np.clip(half + 0.5 - np.abs(along), 0.0, 1.0)
    if weight.sum() <= 0:
        weight[r, r] = 1.0
    return centre_kernel(weight)


@dataclass(frozen=True)
class BlurConfig:
    """How synthetic motion blur is drawn: ``kind`` "trajectory" or "linear"."""

    kind: str = "trajectory"
    canvas: int = 64
    max_len: float = 60.0
    iters: int = 2000
    length_range: tuple[float, float] = (5.0, 25.0)  # linear kernels only

    def __post_init__(self):
        if self.kind not in ("trajectory", "linear"):
            raise IPTError(f"blur kind must be 'trajectory' or 'linear', got {self.kind!r}")


def random_kernel(rng: np.random.Generator, config: BlurConfig | None = None) -> np.ndarray:
    """Draw one kernel according to ``config`` (default: random trajectory)."""
    config = config or BlurConfig()
    if config.kind == "linear":
        lo, hi = config.length_range
        return linear_kernel(lo + (hi - lo) * rng.random(), 180.0 * rng.random())
    return trajectory_kernel(rng, canvas=config.canvas, iters=config.iters, max_len=config.max_len)


def _filter(img: np.ndarray, kernel: np.ndarray, border: int) -> np.ndarray:
    import cv2

    src = np.ascontiguousarray(img, dtype=np.float32)
    # filter2D correlates; flipping the kernel makes it a true convolution.
    k = np.ascontiguousarray(kernel[::-1, ::-1], dtype=np.float32)
    out = cv2.filter2D(src, -1, k, borderType=border)
    if out.ndim == 2 and src.ndim == 3:
        out = out[:, :, None]
    return out


def blur_image(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve an HxW[xC] image with ``kernel`` ('same' size, reflect padding): float32.

    Reflect here is half-sample symmetric (``d c b a | a b c d``, MATLAB 'symmetric',
    OpenCV BORDER_REFLECT). The kernel sums to 1 and is non-negative, so values stay in the
    input range.
    """
    import cv2

    kernel = np.asarray(kernel)
    if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
        raise IPTError(f"blur kernel must be 2-D with odd sides, got shape {kernel.shape}")
    return _filter(img, kernel, cv2.BORDER_REFLECT)


def blur_patch_valid(padded: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Blur a patch cropped with a margin of ``kernel.shape[0] // 2`` pixels on each side
    and return the centre, so training patches have real image content under the whole
    kernel instead of padding."""
    r = kernel.shape[0] // 2
    out = blur_image(padded, kernel)
    return out[r : out.shape[0] - r, r : out.shape[1] - r]


class KernelBank:
    """``count`` blur kernels drawn lazily from (seed, index): the same in every worker.

    A trajectory kernel costs ~2 ms to draw, more than the rest of a training sample, so
    patches pick from a fixed bank instead.
    """

    def __init__(self, config: BlurConfig | None = None, seed: int = 0, count: int = 256):
        self.config = config or BlurConfig()
        self.seed = int(seed)
        self.count = int(count)
        self._cache: dict[int, np.ndarray] = {}

    def warm_up(self) -> None:
        """Draw every kernel now (~0.5 s for 256) instead of lazily during training."""
        for i in range(self.count):
            self.kernel(i)

    def kernel(self, i: int) -> np.ndarray:
        if i not in self._cache:
            self._cache[i] = random_kernel(rng_from(self.seed, "kernel-bank", i), self.config)
        return self._cache[i]

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.kernel(int(rng.integers(self.count)))
