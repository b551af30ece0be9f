"""Named shared-memory segments and the bookkeeping of named host objects.

Every named object a kernel creates (segments here, semaphores in ``sync``) carries
that kernel's prefix, so that one ``unlink_prefix`` call removes all of them at halt,
at panic, when the host dies, or from ``python -m rumpmp cleanup``.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import time

import posix_ipc

SHM_DIR = "/dev/shm"
_SEM_FILE_PREFIX = "sem."

_attached: dict[str, Segment] = {}


class Segment:
    """A POSIX shared-memory segment mapped into this process.

    ``buf`` is a writable memoryview over the whole segment.  A segment is attached
    at most once per process (``attach`` returns the cached mapping), so every
    handle into it in this process shares one mapping.
    """

    def __init__(self, name: str, size: int, create: bool, reserve: bool = False) -> None:
        flags = posix_ipc.O_CREX if create else 0
        shm = posix_ipc.SharedMemory("/" + name, flags, size=size if create else 0)
        try:
            self.name = name
            self.size = shm.size
            if reserve:  # claim the pages now: writing a page tmpfs cannot supply is SIGBUS
                os.posix_fallocate(shm.fd, 0, size)
            self._map: mmap.mmap | None = mmap.mmap(shm.fd, shm.size)
        except OSError as e:
            if create:  # a segment that could not be set up must not outlive the call
                shm.unlink()
            raise OSError(
                errno.ENOMEM, f"shared segment {name} of {size} bytes: {e.strerror or e}"
            ) from e
        finally:
            shm.close_fd()
        self.buf = memoryview(self._map)

    @classmethod
    def create(cls, name: str, size: int) -> Segment:
        """Create and map a new zero-filled segment; EEXIST if the name is taken."""
        try:
            seg = cls(name, size, create=True)
        except posix_ipc.ExistentialError as e:
            raise FileExistsError(errno.EEXIST, f"shared segment {name} exists") from e
        _attached[name] = seg
        return seg

    @classmethod
    def attach(cls, name: str) -> Segment:
        """Map an existing segment (once per process); ENOENT if it is gone."""
        seg = _attached.get(name)
        if seg is None:
            try:
                seg = cls(name, 0, create=False)
            except posix_ipc.ExistentialError as e:
                raise FileNotFoundError(errno.ENOENT, f"no shared segment {name}") from e
            _attached[name] = seg
        return seg

    def close(self) -> None:
        """Unmap the segment in this process, unless views into it are still alive:
        then it is unmapped when the last of them goes (never under a live view)."""
        _attached.pop(self.name, None)
        mapping, self._map = self._map, None
        self.buf = memoryview(b"")
        if mapping is not None:
            with contextlib.suppress(BufferError):
                mapping.close()


def new_segment(name: str, size: int) -> Segment:
    """Create segment ``name`` of ``size`` bytes with its pages claimed (ENOMEM if the
    host's shared memory cannot hold it), mapped but not cached: close it when done."""
    return Segment(name, max(size, 1), create=True, reserve=True)


def read_segment(name: str, size: int) -> bytes:
    """The first ``size`` bytes of segment ``name``, without keeping it mapped."""
    try:
        seg = Segment(name, 0, create=False)
    except posix_ipc.ExistentialError as e:
        raise FileNotFoundError(errno.ENOENT, f"no shared segment {name}") from e
    data = bytes(seg.buf[:size])
    seg.close()
    return data


def unlink(name: str) -> None:
    """Remove segment ``name`` (already gone is fine)."""
    with contextlib.suppress(posix_ipc.ExistentialError):
        posix_ipc.unlink_shared_memory("/" + name)


def capacity() -> int:
    """Bytes the host's shared memory (the tmpfs behind /dev/shm) can hold in all."""
    st = os.statvfs(SHM_DIR)
    return st.f_blocks * st.f_frsize


def forget_prefix(prefix: str) -> None:
    """Drop this process's cached mappings of a prefix (after its kernel halted).

    The mappings themselves are not closed: memoryviews handed out may still be
    referenced, and closing under them would crash the interpreter.
    """
    for name in [n for n in _attached if n.startswith(prefix)]:
        del _attached[name]


def list_prefix(prefix: str) -> list[str]:
    """Names of the live segments and semaphores whose name starts with ``prefix``.

    Semaphores are reported as ``sem.<name>``, the way Linux shows them in /dev/shm.
    """
    try:
        entries = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return []
    return sorted(e for e in entries if e.startswith((prefix, _SEM_FILE_PREFIX + prefix)))


#: How old a half-made semaphore file must be before it counts as abandoned.
STALE_AFTER = 60.0


def unlink_stale_sem_temps() -> list[str]:
    """Unlink semaphore files that sem_open never finished.

    glibc makes a named semaphore by writing a temporary ``sem.XXXXXX`` file and
    linking it to its name; a process killed in between (a vCPU or a host SIGKILLed
    while it creates a lock) leaves the temporary behind.  It has no name anyone
    can open, so nobody else removes it.  Ones older than STALE_AFTER seconds are
    abandoned for sure: sem_open holds its temporary for microseconds.
    """
    removed = []
    now = time.time()
    for entry in os.listdir(SHM_DIR) if os.path.isdir(SHM_DIR) else []:
        name = entry[len(_SEM_FILE_PREFIX) :]
        if not entry.startswith(_SEM_FILE_PREFIX) or len(name) != 6 or not name.isalnum():
            continue
        path = os.path.join(SHM_DIR, entry)
        try:
            if now - os.stat(path).st_mtime > STALE_AFTER:
                os.unlink(path)
                removed.append(entry)
        except OSError:
            pass  # gone meanwhile, or not ours to remove
    return removed


def unlink_prefix(prefix: str) -> list[str]:
    """Unlink every segment and semaphore whose name starts with ``prefix``."""
    if not prefix:
        raise ValueError("refusing to unlink an empty prefix")
    removed = []
    for entry in list_prefix(prefix):
        try:
            if entry.startswith(_SEM_FILE_PREFIX):
                posix_ipc.unlink_semaphore("/" + entry[len(_SEM_FILE_PREFIX) :])
            else:
                posix_ipc.unlink_shared_memory("/" + entry)
            removed.append(entry)
        except posix_ipc.ExistentialError:
            pass
    return removed
