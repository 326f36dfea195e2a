"""Options shared by several sub-commands."""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

from ipt_ms.errors import IPTError, sanitize


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit code 2, like every other input error.

    (argparse's default prints the whole usage block first; `--help` still shows it.)
    """

    def error(self, message: str):
        text = sanitize(" ".join(str(message).split()))
        self.exit(2, f"{self.prog}: error: {text} (see {self.prog} --help)\n")


def _number(text: str, kind, what: str, ok) -> int | float:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if (kind is float and not math.isfinite(value)) or not ok(value):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _number(text, int, "an integer >= 1", lambda v: v >= 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _number(text, int, "an integer >= 0", lambda v: v >= 0)


def seed_int(text: str) -> int:
    """argparse type: a seed, 0 .. 2**32 - 1 (`ipt_ms.data.seeding.SEED_MAX`)."""
    from ipt_ms.data.seeding import SEED_MAX

    return _number(text, int, f"an integer from 0 to {SEED_MAX}", lambda v: 0 <= v <= SEED_MAX)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (NaN and inf refused)."""
    return _number(text, float, "a finite number > 0", lambda v: v > 0)


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0 (NaN and inf refused)."""
    return _number(text, float, "a finite number >= 0", lambda v: v >= 0)


def add_runtime_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="CPU, GPU, Ascend or auto (default: what is there)")
    parser.add_argument("--mode", default="graph", choices=("graph", "pynative"),
                        help="MindSpore execution mode (default: graph, the fast one)")
    add_compile_cache_arg(parser)


def add_compile_cache_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compile-cache", default=None, metavar="DIR|off",
                        help="where compiled Graph-mode networks are kept between runs, or off (default: "
                             "$IPT_MS_COMPILE_CACHE, else ~/.cache/ipt-ms/compile)")


def add_levers_arg(parser: argparse.ArgumentParser) -> None:
    from ipt_ms.levers import POLICIES

    parser.add_argument("--levers", default=None, choices=POLICIES,
                        help="CPU speed levers (im2col convolutions, tiles per call): stored = this machine's "
                             "choice from `ipt-ms tune` if there is one (default), trial = measure it now if none "
                             "is stored, default = the built-in ones (default: $IPT_MS_LEVERS, else stored)")


def add_architecture_overrides(parser: argparse.ArgumentParser) -> None:
    """Options for what weights cannot record (used when no architecture is embedded)."""
    parser.add_argument("--num-heads", type=positive_int, default=None,
                        help="attention heads (not inferable from weights; default 12)")
    parser.add_argument("--tasks", default=None,
                        help="comma-separated task names, one per head, e.g. sr_x2,denoise_30")
    parser.add_argument("--pos-every", action="store_true", default=None,
                        help="the model adds position embeddings in every layer (official --pos_every)")
    parser.add_argument("--weights-variant", choices=("ema", "raw"), default=None,
                        help="for an ipt-ms training checkpoint of a run with train.ema_decay: its moving "
                             "averages (ema, the default when present: what validation and the exported "
                             "model.ckpt use) or the raw weights the optimizer stepped (raw)")


def architecture_overrides(args: argparse.Namespace) -> dict:
    overrides = {}
    if getattr(args, "num_heads", None) is not None:
        overrides["num_heads"] = args.num_heads
    if getattr(args, "tasks", None):
        overrides["task_names"] = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if getattr(args, "pos_every", None):
        overrides["pos_every"] = True
    if getattr(args, "weights_variant", None):
        overrides["weights_variant"] = args.weights_variant
    return overrides


def add_weights_source(parser: argparse.ArgumentParser, formats: str) -> None:
    """--weights FILE or --model NAME (weights that ship with the package), exactly one."""
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--weights", help=formats)
    group.add_argument("--model", metavar="NAME",
                       help="a registered model whose weights ship with ipt-ms, e.g. ipt_small "
                            "(trained by this project; docs/model_card_small.md)")


def weights_source(args: argparse.Namespace) -> str:
    """The weights file that --weights or --model names."""
    if args.weights is not None:
        return args.weights
    from ipt_ms.registry import pretrained_weights

    return str(pretrained_weights(args.model))


def add_quiet_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


class SanitizingFormatter(logging.Formatter):
    """Console log lines with control characters escaped (`ipt_ms.errors.sanitize`): a warning
    that names a file or key the user supplied stays one plain line."""

    def format(self, record: logging.LogRecord) -> str:
        return sanitize(super().format(record))


def setup_logging(quiet: bool = False) -> None:
    """Warnings from the library (image conversions, skipped files) go to stderr, one line each.

    -q raises the level of the console handler only, not of the library's loggers, so a
    training run's train.log still gets every line; handlers that others attached (a test
    runner's) are left alone."""
    logging.getLogger("ipt_ms").setLevel(logging.INFO)
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="ipt-ms: %(message)s")
        root.handlers[0].ipt_console = True
        root.handlers[0].setFormatter(SanitizingFormatter("ipt-ms: %(message)s"))
    for handler in root.handlers:
        if getattr(handler, "ipt_console", False):
            handler.setLevel(logging.ERROR if quiet else logging.INFO)


def existing_file(path: str, what: str = "file") -> Path:
    p = Path(path)
    if not p.is_file():
        raise IPTError(f"{what} not found: {path!r}")
    return p
