"""Training-pair throughput of the data pipeline, per task and through mindspore.dataset.

Usage:  .venv/bin/python bench/data_throughput.py [--images 64] [--seconds 2] [--rounds 3] [--batch 16]

Builds a temporary folder of ImageNet-like JPEGs (about 500x375, quality 90, cut from
scikit-image's bundled photos), then measures, all in one run:

1. decode only (PIL JPEG -> RGB array), images/s;
2. for every task, 48x48 training pairs/s produced by one process
   (``PretrainSource.get_batch``; BLAS / OpenCV limited to one thread, so this is per core),
   and for the 6-task pre-training mix;
3. the mix through ``create_mindspore_dataset`` with 1 and 2 worker processes (pairs/s
   after the first batch, so start-up is excluded).

The measurements are interleaved over several rounds and the best and median rates are
reported, because the machines this runs on are shared. Prints a Markdown table for
BENCHMARKS.md.
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


def timed(fn, seconds: float) -> float:
    """Call fn (returning a count) until ``seconds`` have passed; count per second."""
    done, start = 0, time.perf_counter()
    while True:
        done += fn()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def mindspore_rate(source: PretrainSource, workers: int, pairs: int) -> float:
    """pairs/s through create_mindspore_dataset, excluding start-up and the first batch."""
    ds = create_mindspore_dataset(source, num_epochs=1, num_parallel_workers=workers)
    iterator = ds.create_tuple_iterator(num_epochs=1, output_numpy=True)
    next(iterator)
    start, count = time.perf_counter(), 0
    for lr, _hr, _idx in iterator:
        count += lr.shape[0]
        if count >= pairs:
            break
    rate = count / (time.perf_counter() - start)
    del iterator, ds
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions (best is reported)")
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()

    import cv2

    cv2.setNumThreads(1)
    load_before = os.getloadavg()
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "imagenet"
        make_images(folder, args.images)
        files = sorted(folder.rglob("*.JPEG"))
        counter = iter(range(10**9))

        def decode() -> int:
            read_image(files[next(counter) % len(files)], writable=False)
            return 1

        measurements = [("decode only (JPEG ~460x365 -> RGB array)", "images/s", decode)]
        sources = {}
        for task in [*TASKS, "mix"]:
            src = PretrainSource(folder, tasks=PRETRAIN_TASKS if task == "mix" else [task],
                                 batch_size=args.batch, seed=0, samples_per_epoch=10**7, validate=False)
            src.warm_up()  # streak / kernel banks (built once per run, shipped to workers)
            src.get_batch(0, 0)  # imresize weight tables
            sources[task] = src
            steps = iter(range(1, 10**9))
            name = "6-task pre-training mix (1 process)" if task == "mix" else f"`{task}` (1 process)"
            measurements.append(
                (name, "pairs/s", lambda s=src, st=steps: s.get_batch(0, next(st))[0].shape[0])
            )
        for _ in range(args.rounds):
            for name, _unit, fn in measurements:
                results.setdefault(name, []).append(timed(fn, args.seconds))
            mix_rate = max(results["6-task pre-training mix (1 process)"])
            for workers in (1, 2):
                name = f"6-task mix via mindspore.dataset, {workers} worker process(es)"
                pairs = int(mix_rate * workers * args.seconds * 1.5)
                results.setdefault(name, []).append(mindspore_rate(sources["mix"], workers, pairs))
    units = {name: unit for name, unit, _ in measurements}
    load_after = os.getloadavg()

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"Machine: {cpu}, {os.cpu_count()} cores (load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after); Python {platform.python_version()}, numpy {np.__version__}, "
          f"OpenCV {cv2.__version__}; batch {args.batch}, {args.images} JPEGs; {args.rounds} interleaved "
          f"rounds of {args.seconds:g} s per measurement\n")
    print("| measurement | best | median | unit |")
    print("|---|---:|---:|---|")
    for name, rates in results.items():
        unit = units.get(name, "pairs/s")
        print(f"| {name} | {max(rates):,.0f} | {float(np.median(rates)):,.0f} | {unit} |")


if __name__ == "__main__":
    main()
