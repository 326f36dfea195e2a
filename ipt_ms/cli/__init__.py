"""`ipt-ms` command line: a thin layer that parses options and calls library functions.

Each sub-command lives in its own module under `ipt_ms.cli` and exposes
`register(subparsers)`, which adds its parser and sets `func`. Modules import
MindSpore / PyTorch lazily inside their handlers so `ipt-ms --help` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys

from ipt_ms.cli._common import OneLineParser
from ipt_ms.errors import IPTError, sanitize

# Sub-command modules, in the order `ipt-ms --help` lists them.
COMMAND_MODULES = [
    "restore",
    "convert",
    "parity",
    "compare",
    "info",
    "pretrain",
    "finetune",
    "train",
    "make_weights",
    "synth",
    "eval",
    "parity_bench",
    "export",
    "doctor",
    "tune",
]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="ipt-ms",
        description="Image Processing Transformer (IPT) in MindSpore, with PyTorch parity tools.",
    )
    from ipt_ms import __version__

    parser.add_argument("--version", action="version", version=f"ipt-ms {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"ipt_ms.cli.{name}").register(subparsers)
    return parser


#: MindSpore's log-level variables and the levels its import accepts (it raises ValueError otherwise)
_MINDSPORE_LOG_LEVELS = ("GLOG_v", "GLOG_stderrthreshold")


def _unencodable_output_escaped() -> None:
    """A name the terminal's encoding cannot show (PYTHONIOENCODING=ascii, a C locale) is printed
    with backslash escapes instead of ending the command in a UnicodeEncodeError after its work."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):  # a closed or detached stream
                reconfigure(errors="backslashreplace")


def check_environment() -> None:
    """Refuse, in one line, environment values that make MindSpore's import raise."""
    import os

    for name in _MINDSPORE_LOG_LEVELS:
        value = os.environ.get(name)
        if value is not None and value not in ("0", "1", "2", "3", "4"):
            raise IPTError(f"environment variable {name}={value!r} is not a MindSpore log level (0 DEBUG, 1 INFO, "
                           "2 WARNING, 3 ERROR, 4 CRITICAL); set one of them (ipt-ms uses 3) or unset it")
    console = os.environ.get("GLOG_logtostderr")  # noqa: SIM112 (MindSpore's own spelling)
    if console is not None and (console not in ("0", "1") or (console == "0" and not os.environ.get("GLOG_log_dir"))):  # noqa: SIM112
        raise IPTError(f"environment variable GLOG_logtostderr={console!r}: MindSpore takes 1 (log to the terminal) "
                       "or 0 together with GLOG_log_dir (log to that folder)")


def _short_path(name) -> str:
    text = str(name)
    return text if len(text) <= 160 else f"{text[:80]}...{text[-60:]} ({len(text):,} characters)"


def main(argv: list[str] | None = None) -> int:
    from ipt_ms import signals

    signals.install()  # first: before NumPy/MindSpore start threads (see ipt_ms.signals)
    _unencodable_output_escaped()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_environment()
    except IPTError as err:
        print(f"ipt-ms {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    if getattr(args, "compile_cache", None) is not None:
        from ipt_ms import compile_cache

        compile_cache.set_cache_dir(args.compile_cache)
    try:
        code = args.func(args)
    except IPTError as err:
        print(f"ipt-ms {args.command}: error: {sanitize(err)}", file=sys.stderr)
        return err.exit_code
    except OSError as err:  # what the system refused (a name over the length limit, ...) as one line
        import errno

        if err.errno not in (errno.ENAMETOOLONG, errno.ELOOP, errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        where = f": {_short_path(err.filename)}" if err.filename else ""
        print(f"ipt-ms {args.command}: error: {err.strerror or err}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # ipt_ms.signals.Interrupted for SIGINT/SIGTERM
        from ipt_ms.signals import exit_code, signal_name

        signum = getattr(err, "signum", 2)
        detail = getattr(err, "detail", "") or getattr(err, "ipt_detail", "")
        print(f"ipt-ms {args.command}: interrupted by {signal_name(signum)}" + (f": {sanitize(detail)}" if detail
                                                                               else ""), file=sys.stderr)
        return exit_code(signum)
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
