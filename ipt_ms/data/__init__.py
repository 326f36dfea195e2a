"""Data synthesis and datasets for IPT (framework-free: numpy, OpenCV, Pillow).

Conventions: images in memory are HxWx3 RGB numpy arrays on [0, 255] (uint8, or float32 for
synthetic noise / rain / blur, which are not rounded); training batches are NCHW float32 on
[0, 255]. Everything random is seeded from (seed, image name) or (seed, epoch, batch index)
with fixed hashes, so results do not depend on machine, subset, order or worker count.

Modules
-------
imresize   MATLAB-exact bicubic ``imresize`` (benchmark LR images)
imageio    ``read_image`` / ``write_image`` / ``list_images`` (conversion rules, errors)
seeding    stable random streams
degrade    Gaussian noise and the per-task ``Degrader``
rain       real RainTrainL streak layers and procedural light / heavy rain
blur       random-trajectory and linear motion-blur kernels, reflect-padded blurring
folders    benchmark / fine-tuning loaders (EDSR, DIV2K, CBSD68, Rain100L, RainTrainL, GoPro)
pretrain   training batch sources (pre-training mix, fine-tuning), sharding, resume
pipeline   ``mindspore.dataset`` wrapper and the identical plain-Python iterator
store      decoded-image memory / .npy cache for training
synth      library behind ``ipt-ms synth``
"""

from ipt_ms.data.blur import BlurConfig, blur_image, linear_kernel, trajectory_kernel
from ipt_ms.data.degrade import Degrader, add_gaussian_noise, noisy_image
from ipt_ms.data.folders import (
    Pair,
    PairDataset,
    benchmark,
    denoise_benchmark,
    div2k,
    gopro,
    rain_pairs,
    sr_benchmark,
    synthetic_pairs,
)
from ipt_ms.data.imageio import ImageReadError, list_images, read_image, write_image
from ipt_ms.data.imresize import imresize, modcrop
from ipt_ms.data.pipeline import EpochSpan, create_mindspore_dataset, iterate_batches
from ipt_ms.data.pretrain import BatchSource, PairedPatchSource, PretrainSource, finetune_source
from ipt_ms.data.rain import ProceduralStreakBank, StreakLayers, add_rain, procedural_streaks
from ipt_ms.data.store import ImageStore

__all__ = [
    "BatchSource",
    "BlurConfig",
    "Degrader",
    "EpochSpan",
    "ImageReadError",
    "ImageStore",
    "Pair",
    "PairDataset",
    "PairedPatchSource",
    "PretrainSource",
    "ProceduralStreakBank",
    "StreakLayers",
    "add_gaussian_noise",
    "add_rain",
    "benchmark",
    "blur_image",
    "create_mindspore_dataset",
    "denoise_benchmark",
    "div2k",
    "finetune_source",
    "gopro",
    "imresize",
    "iterate_batches",
    "linear_kernel",
    "list_images",
    "modcrop",
    "noisy_image",
    "procedural_streaks",
    "rain_pairs",
    "read_image",
    "sr_benchmark",
    "synthetic_pairs",
    "trajectory_kernel",
    "write_image",
]
