"""Training-pair throughput of the data pipeline, per task and through mindspore.dataset.

Usage:  .venv/bin/python bench/data_throughput.py [--images 64] [--seconds 4] [--batch 16]

Builds a temporary folder of ImageNet-like JPEGs (about 500x375, quality 90, cut from
scikit-image's bundled photos), then measures, all in one run:

1. decode only (PIL JPEG -> RGB array), images/s;
2. for every task, 48x48 training pairs/s produced by one process
   (``PretrainSource.get_batch``; BLAS / OpenCV limited to one thread, so this is per core);
3. the 6-task pre-training mix through ``create_mindspore_dataset`` with 1 and 2 worker
   processes (pairs/s after the first batch, so start-up is excluded).

Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import os

# One thread per process for an honest per-core number (set before numpy / cv2 load).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import ipt_ms  # noqa: E402,F401  (environment defaults before MindSpore)
from ipt_ms.data.imageio import read_image, write_image  # noqa: E402
from ipt_ms.data.pipeline import create_mindspore_dataset  # noqa: E402
from ipt_ms.data.pretrain import PretrainSource  # noqa: E402
from ipt_ms.tasks import PRETRAIN_TASKS  # noqa: E402

TASKS = [*PRETRAIN_TASKS, "deblur"]


def make_images(folder: Path, count: int) -> None:
    import cv2
    import skimage.data as skd

    photos = [skd.astronaut(), skd.chelsea(), skd.coffee(), skd.rocket(), skd.immunohistochemistry(),
              skd.hubble_deep_field()]
    rng = np.random.default_rng(0)
    for i in range(count):
        src = photos[i % len(photos)]
        w = int(rng.integers(400, 520))
        h = int(rng.integers(330, 400))
        img = cv2.resize(src, (w, h), interpolation=cv2.INTER_AREA)
        if rng.random() < 0.5:
            img = img[:, ::-1]
        write_image(folder / f"n{i % 8:02d}" / f"img_{i:05d}.JPEG", img, quality=90)


def timed(fn, seconds: float) -> tuple[int, float]:
    """Call fn (returning a count) until ``seconds`` have passed; (count, elapsed)."""
    done, start = 0, time.perf_counter()
    while True:
        done += fn()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=4.0, help="per measurement")
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()

    import cv2

    cv2.setNumThreads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "imagenet"
        make_images(folder, args.images)
        files = sorted(folder.rglob("*.JPEG"))
        it = iter(range(10**9))
        n, t = timed(lambda: (read_image(files[next(it) % len(files)]), 1)[1], args.seconds)
        rows.append(("decode only (PIL JPEG ~460x365)", n / t, "images/s"))

        for task in TASKS:
            src = PretrainSource(folder, tasks=[task], batch_size=args.batch, seed=0,
                                 samples_per_epoch=10**6, validate=False)
            src.warm_up()  # streak / kernel banks (built once per run, shipped to workers)
            src.get_batch(0, 0)  # imresize weight tables
            step = iter(range(1, 10**9))
            n, t = timed(lambda s=src, st=step: s.get_batch(0, next(st))[0].shape[0], args.seconds)
            rows.append((f"`{task}` (1 process)", n / t, "pairs/s"))

        mix = PretrainSource(folder, tasks=PRETRAIN_TASKS, batch_size=args.batch, seed=0,
                             samples_per_epoch=10**6, validate=False)
        mix.warm_up()
        step = iter(range(1, 10**9))
        n, t = timed(lambda: mix.get_batch(0, next(step))[0].shape[0], args.seconds)
        rows.append(("6-task mix (1 process, no MindSpore)", n / t, "pairs/s"))

        for workers in (1, 2):
            batches = max(8, int(rows[-1][1] * workers * args.seconds / args.batch))
            ds = create_mindspore_dataset(mix, num_epochs=1, num_parallel_workers=workers)
            iterator = ds.create_tuple_iterator(num_epochs=1, output_numpy=True)
            next(iterator)  # start-up (worker processes, first batch) excluded
            start, count = time.perf_counter(), 0
            for k, (lr, _hr, _idx) in enumerate(iterator):
                count += lr.shape[0]
                if k + 2 >= batches:
                    break
            elapsed = time.perf_counter() - start
            rows.append((f"6-task mix, mindspore.dataset, {workers} worker(s)", count / elapsed, "pairs/s"))
            del iterator, ds

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"Machine: {cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, "
          f"numpy {np.__version__}, OpenCV {cv2.__version__}; batch {args.batch}, "
          f"{args.images} JPEGs, {args.seconds:g} s per measurement\n")
    print("| measurement | rate | unit |")
    print("|---|---:|---|")
    for name, rate, unit in rows:
        print(f"| {name} | {rate:,.0f} | {unit} |")


if __name__ == "__main__":
    main()
