"""Host files (rumpuser_open, rumpuser_iovread, rumpuser_iovwrite,
rumpuser_getfileinfo): what a file of the kernel's namespace mapped to a host file
(etfs) reads and writes through.  Each process opens a host file once, by path."""

from __future__ import annotations

import os

_fds: dict[str, int] = {}


def _fd(path: str) -> int:
    fd = _fds.get(path)
    if fd is None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except PermissionError:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        _fds[path] = fd
    return fd


def getfileinfo(path: str) -> tuple[int, bool]:
    """(size, is a regular file) of host file ``path``; OSError if it is not there."""
    st = os.stat(path)
    return st.st_size, os.path.isfile(path)


def pread(path: str, size: int, offset: int) -> bytes:
    return os.pread(_fd(path), size, offset)


def pwrite(path: str, data: bytes | memoryview, offset: int) -> int:
    return os.pwrite(_fd(path), data, offset)


def truncate(path: str, size: int) -> None:
    os.ftruncate(_fd(path), size)


def forget(path: str) -> None:
    """Close this process's descriptor of ``path`` (its etfs mapping has gone)."""
    fd = _fds.pop(path, None)
    if fd is not None:
        os.close(fd)
