"""Ctrl-C and SIGTERM that stop a command cleanly, despite MindSpore's own signal handler.

Once a MindSpore operation has run, its backend installs a C-level SIGINT handler that
sends the process SIGTERM, so Python never sees KeyboardInterrupt and the process dies
with status -15 (docs/training.md, "Stopping a run"). The commands therefore take the
two signals away from every thread and wait for them in a thread of their own:

* `install()` (called by `ipt-ms` first thing, before NumPy or MindSpore start any
  thread) blocks SIGINT and SIGTERM in the calling thread, which every thread started
  later inherits, and starts a watcher thread that receives them with
  `signal.sigwaitinfo`, so MindSpore's handler is never invoked and the signal number
  (2 or 15) is known exactly. (Should a thread that predates `install()` still take a
  SIGINT, MindSpore's handler answers it by sending the process SIGTERM; a SIGTERM the
  process sent itself is therefore read as the SIGINT it stands for.) Forked children
  (data-loading processes) get the signals unblocked and their default handlers back.
* Normally the first signal interrupts the main thread: `Interrupted` (a
  KeyboardInterrupt) is raised at the next Python instruction, so `restore` and `eval`
  stop between tiles or images, their atomic writers discard temporary files, and the
  CLI prints one line and exits with 128 + signal number (130, 143).
* Inside `deferred()` (the training loop), the first signal only sets `requested`; the
  loop finishes its step, writes a checkpoint and stops.
* A second signal aborts at once (`os._exit`), as users expect from a second Ctrl-C
  (with `install()` only).

Without `install()` (the library called from a notebook or test), `deferred()` falls back
to Python-level handlers, which the training loop re-installs after each call into
MindSpore (`rearm`); a signal that lands while MindSpore's handler is in place then
arrives as SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

__all__ = ["STOP_SIGNALS", "Interrupted", "SignalWatcher", "add_detail", "compiling", "exit_code", "install",
           "signal_name", "uninstall", "watcher"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_code(signum: int) -> int:
    """What a shell reports for a process stopped by `signum`: 128 + signum (130, 143)."""
    return 128 + int(signum)


class Interrupted(KeyboardInterrupt):
    """A command was stopped by SIGINT or SIGTERM; `detail` says what was kept."""

    def __init__(self, signum: int = signal.SIGINT, detail: str = ""):
        super().__init__(signal_name(signum))
        self.signum = int(signum)
        self.detail = detail


def add_detail(err: BaseException, detail: str) -> None:
    """Attach what an interrupted command kept (printed after "interrupted by SIGINT: ")."""
    if isinstance(err, Interrupted) and not err.detail:
        err.detail = detail
    elif not isinstance(err, Interrupted):
        err.ipt_detail = detail  # a plain KeyboardInterrupt (raised by Python itself)


class SignalWatcher:
    """Receives SIGINT/SIGTERM and turns them into an exception or a stop request."""

    def __init__(self, blocking: bool):
        self.blocking = blocking
        self.requested: int | None = None  # the first signal received
        self._count = 0
        self._deferred = 0
        self._raise_pending: int | None = None
        self._lock = threading.Lock()
        self._previous: dict[int, object] = {}
        self._retired = False

    # ---------------------------------------------------------------- receiving
    def _receive(self, signum: int, in_main_thread: bool) -> None:
        with self._lock:
            self._count += 1
            first = self._count == 1
            if first:
                self.requested = signum
        if not first:
            if not self.blocking:  # library use: one Ctrl-C can arrive twice (MindSpore re-sends it)
                return
            self._abort(signum)
        if self._deferred:
            return
        if in_main_thread:
            raise Interrupted(signum)
        self._raise_pending = signum
        import _thread

        _thread.interrupt_main(signum)  # runs `_python_handler` in the main thread

    def _abort(self, signum: int) -> None:
        try:
            sys.stderr.write(f"ipt-ms: second {signal_name(signum)}: stopping now, without a checkpoint\n")
            sys.stderr.flush()
        finally:
            os._exit(exit_code(signum))

    def _python_handler(self, signum: int, frame) -> None:
        pending, self._raise_pending = self._raise_pending, None
        if pending is not None:
            raise Interrupted(pending)
        self._receive(signum, in_main_thread=True)

    def _wait_loop(self) -> None:
        me = os.getpid()
        while True:
            info = signal.sigwaitinfo(set(STOP_SIGNALS))
            signum = info.si_signo
            if self._retired:  # `uninstall()`: hand the signal to the main thread's own handling
                signal.pthread_kill(threading.main_thread().ident, signum)
                continue
            if signum == signal.SIGTERM and info.si_pid == me:
                # MindSpore unblocks SIGINT in some of its threads; its handler answers a
                # SIGINT by sending this process SIGTERM. A SIGTERM from ourselves is that.
                signum = signal.SIGINT
            self._receive(signum, in_main_thread=False)

    # ---------------------------------------------------------------- set-up
    def rearm(self) -> None:
        """Re-install the Python-level handlers (MindSpore replaces SIGINT's during its calls)."""
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                signal.signal(signum, self._python_handler)

    def _start(self) -> None:
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.getsignal(signum)
        self.rearm()
        if self.blocking:
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            os.register_at_fork(after_in_child=_child_defaults)
            threading.Thread(target=self._wait_loop, name="ipt-ms-signals", daemon=True).start()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[SignalWatcher]:
        """Within the block a (first) signal only sets `requested`; the caller stops when it sees it.

        A new outermost block starts with no request (a process may train twice)."""
        with self._lock:
            if self._deferred == 0:
                self.requested, self._count = None, 0
            self._deferred += 1
        try:
            yield self
        finally:
            with self._lock:
                self._deferred -= 1


@contextlib.contextmanager
def compiling() -> Iterator[None]:
    """Hold a first SIGINT/SIGTERM until the block (a Graph-mode compilation) has ended, then
    raise `Interrupted`: interrupted inside MindSpore's compiler, which calls back into
    Python, the exception surfaces through MindSpore as dozens of ``[ERROR]`` lines and a
    C++ stack. A second signal still stops at once. Without `install()` this does nothing."""
    current = _WATCHER
    if current is None or not current.blocking:
        yield
        return
    with current._lock:
        outermost = current._deferred == 0
    with current.deferred():
        yield
    if outermost and current.requested is not None:
        raise Interrupted(current.requested)


def _child_defaults() -> None:
    """In a forked child (data workers): default handlers and unblocked signals again."""
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with contextlib.suppress(OSError):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    global _WATCHER
    _WATCHER = None


_WATCHER: SignalWatcher | None = None


def install() -> SignalWatcher:
    """Take SIGINT/SIGTERM for this process (see the module docstring); idempotent.

    Call it from the main thread before MindSpore starts its threads (the CLI commands do
    it first thing); from another thread it does nothing and returns a passive watcher.
    """
    global _WATCHER
    if _WATCHER is not None and _WATCHER.blocking:
        return _WATCHER
    if threading.current_thread() is not threading.main_thread():
        return SignalWatcher(blocking=False)
    _WATCHER = SignalWatcher(blocking=True)
    _WATCHER._start()
    return _WATCHER


def uninstall() -> None:
    """Undo `install()`: handlers restored, signals unblocked (for processes that go on
    to start children which must receive signals normally, e.g. a test runner)."""
    global _WATCHER
    if _WATCHER is None or threading.current_thread() is not threading.main_thread():
        return
    retired, _WATCHER = _WATCHER, None
    retired._retired = True
    retired._restore()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


@contextlib.contextmanager
def watcher() -> Iterator[SignalWatcher]:
    """The installed watcher, or (library use) Python-level handlers for the block's duration."""
    if _WATCHER is not None:
        yield _WATCHER
        return
    local = SignalWatcher(blocking=False)
    main = threading.current_thread() is threading.main_thread()
    if main:
        local._start()
    try:
        yield local
    finally:
        if main:
            local._restore()
