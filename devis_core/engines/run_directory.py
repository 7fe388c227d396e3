"""One run per output directory: a lock for the run's lifetime, and a record of its state.

Every command that writes a run directory (``devis run``, ``train``, ``eval``, ``ablate``)
enters :func:`run_directory` before writing anything there, so that:

- two runs never interleave their files: the directory's ``run.lock`` is held (``flock``) for
  the run's lifetime and records who holds it (pid, host, command, start time); a second run is
  refused with a message naming the holder, and a lock left by a process that died on this host
  is taken over with a warning;
- files of an unrelated earlier run never sit beside the new run's: a non-empty directory is
  refused unless it holds a run this one resumes (the command says which) or ``--overwrite``
  clears it first;
- an unfinished run is never mistaken for a finished one: ``run.json`` says ``running``,
  ``finished`` or ``failed`` (with the reason), written atomically.

``docs/cli.md`` ("Run directories") documents the files for users.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import logging
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from devis_core.config import differing_sections
from devis_core.errors import UsageError
from devis_core.toolkit.files import atomic_write_text

LOCK_FILE = "run.lock"
STATE_FILE = "run.json"
BOOKKEEPING = (LOCK_FILE, STATE_FILE)
"""Files of this module: a directory that holds nothing else counts as empty."""

Reusable = Callable[[Path], "str | None"]
"""Says why a non-empty directory is *not* a run this one resumes (None: it is)."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a run directory's lock."""

    pid: int
    host: str
    command: str
    started: str

    @classmethod
    def current(cls, command: str) -> Holder:
        return cls(os.getpid(), socket.gethostname(), command, _now())

    def describe(self) -> str:
        return f"`devis {self.command}` (pid {self.pid} on {self.host}, since {self.started})"


class DirectoryLock:
    """An exclusive lock on a directory, held through an open ``flock``'ed ``run.lock``.

    ``flock`` makes acquiring atomic and vanishes with its process; the JSON record inside says
    who holds it, for the refusal message and for detecting stale locks where ``flock`` is not
    shared (a lock file written by hand, another host on a network filesystem).
    """

    def __init__(self, directory: Path, command: str):
        self.path = Path(directory) / LOCK_FILE
        self.holder = Holder.current(command)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`UsageError` naming the run that holds it."""
        fd = self._locked_descriptor()
        try:
            previous = _parse_holder(os.pread(fd, 1 << 16, 0))
            if previous is not None:
                self._check_stale(previous)
            data = (json.dumps(asdict(self.holder)) + "\n").encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file and let go of the lock (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if _same_file(fd, self.path):
                self.path.unlink(missing_ok=True)
        finally:
            os.close(fd)  # closing the last descriptor releases the flock

    def _locked_descriptor(self) -> int:
        """A descriptor of ``run.lock`` holding its ``flock``; the file is still at its path."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                os.close(fd)
                if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                raise UsageError(self._busy(_read_holder(self.path))) from None
            if _same_file(fd, self.path):
                return fd
            os.close(fd)  # the holder removed it while we waited: lock the new file

    def _check_stale(self, previous: Holder) -> None:
        """Refuse a holder that may be alive; warn when taking over a dead one's lock."""
        if previous.host != self.holder.host:
            raise UsageError(
                self._busy(previous)
                + f"; if that run is no longer running, delete {self.path} and start again"
            )
        if _alive(previous.pid):
            raise UsageError(self._busy(previous))
        logger.warning(
            "%s: taking over the lock of %s, which is no longer running (its run did not finish)",
            self.path.parent,
            previous.describe(),
        )

    def _busy(self, holder: Holder | None) -> str:
        who = holder.describe() if holder else "another process (its record is not written yet)"
        return (
            f"{self.path.parent} is in use by {who}: wait for it to end, or choose another output"
        )


@contextlib.contextmanager
def run_directory(
    directory: Path,
    *,
    command: str,
    overwrite: bool = False,
    reusable: Reusable | None = None,
    main: bool = True,
) -> Iterator[Path]:
    """Hold ``directory`` for one run of ``command``; record its state in ``run.json``.

    A non-empty directory is refused unless ``reusable`` says it holds a run this one resumes,
    or ``overwrite`` is set (its contents are deleted first). ``main=False`` (the other
    processes of a ``torchrun`` job) does nothing: the main process holds the directory.
    """
    directory = Path(directory)
    if not main:
        yield directory
        return
    check_output(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lock = DirectoryLock(directory, command)
    lock.acquire()
    try:
        _prepare(directory, overwrite=overwrite, reusable=reusable)
        state = RunState(directory, lock.holder)
        state.write("running")
        try:
            yield directory
        except BaseException as error:
            state.write("failed", reason=one_line(error), error=type(error).__name__)
            raise
        state.write("finished")
    finally:
        lock.release()


class RunState:
    """``run.json``: the state of the run in its directory, rewritten atomically."""

    def __init__(self, directory: Path, holder: Holder):
        self.path = Path(directory) / STATE_FILE
        self.holder = holder

    def write(self, state: str, **details: Any) -> None:
        record = {
            "state": state,
            "reason": details.pop("reason", None),
            **details,
            "command": self.holder.command,
            "pid": self.holder.pid,
            "host": self.holder.host,
            "started": self.holder.started,
            "ended": None if state == "running" else _now(),
        }
        atomic_write_text(self.path, json.dumps(record, indent=2) + "\n")


def read_state(directory: Path) -> dict[str, Any] | None:
    """The ``run.json`` of a directory, or None when it has none (or an unreadable one)."""
    try:
        data = json.loads((Path(directory) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_output(path: Path) -> None:
    """Refuse an output path that cannot be a directory, before any work starts."""
    path = Path(path)
    for candidate in (path, *path.parents):
        if candidate.exists():
            if not candidate.is_dir():
                where = "" if candidate == path else f" ({candidate} is a file)"
                raise UsageError(
                    f"output {path} is an existing file, not a directory{where}: "
                    "choose another output"
                )
            if not os.access(candidate, os.W_OK | os.X_OK):
                raise UsageError(
                    f"output {path}: {candidate} is not writable (choose another output or "
                    "fix its permissions)"
                )
            return


def same_config(
    resolved: dict[str, Any], *, command: str, ignored: tuple[str, ...] = ()
) -> Reusable:
    """A :data:`Reusable` for a run of ``command`` that resumes a run of the same config.

    The directory must hold ``config.yaml`` equal to ``resolved`` except for the keys in
    ``ignored`` (``name``, ``output`` and the like), and no ``run.json`` of another command.
    """

    def check(directory: Path) -> str | None:
        state = read_state(directory)
        if state is not None and state.get("command") not in (None, command):
            return f"it holds a `devis {state['command']}` run"
        changed = config_differences(directory / "config.yaml", resolved, ignored)
        if changed is None:
            return "it holds no config.yaml of a DEVIS run"
        if changed:
            return f"it holds a run of another config (it differs in: {', '.join(changed)})"
        return None

    return check


def config_differences(
    path: Path, resolved: dict[str, Any], ignored: tuple[str, ...] = ()
) -> list[str] | None:
    """Top-level keys where the config saved at ``path`` differs; None when there is none."""
    try:
        previous = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    if not isinstance(previous, dict):
        return None
    return differing_sections(previous, resolved, ignored)


def one_line(error: BaseException) -> str:
    """An exception's message on one line (its lines joined), for ``run.json``."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    text = text or type(error).__name__
    return text if len(text) <= 1000 else text[:997] + "..."


def _prepare(directory: Path, *, overwrite: bool, reusable: Reusable | None) -> None:
    """Clear (``overwrite``) or check a directory that holds more than bookkeeping files."""
    if not [p for p in directory.iterdir() if p.name not in BOOKKEEPING]:
        return
    if overwrite:
        _clear(directory)
        return
    reason = "it is not a run this command resumes" if reusable is None else reusable(directory)
    if reason is not None:
        raise UsageError(
            f"{directory} is not empty and {reason}: pass --overwrite to clear it first, or "
            "choose another output"
        )


def _clear(directory: Path) -> None:
    """Delete everything in ``directory`` but its lock; never a folder above the working one."""
    resolved = directory.resolve()
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve():
        raise UsageError(f"--overwrite will not clear {directory}: choose a dedicated output")
    if Path.cwd().resolve().is_relative_to(resolved):
        raise UsageError(
            f"--overwrite will not clear {directory}: it holds the current directory; choose a "
            "dedicated output"
        )
    for entry in directory.iterdir():
        if entry.name == LOCK_FILE:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _read_holder(path: Path) -> Holder | None:
    try:
        return _parse_holder(path.read_bytes())
    except OSError:
        return None


def _parse_holder(data: bytes) -> Holder | None:
    try:
        record = json.loads(data.decode())
        return Holder(
            int(record["pid"]), str(record["host"]), str(record["command"]), str(record["started"])
        )
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by another user
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
