"""copy(9) and uiomove(9) (issue 13): NetBSD's t_copy.c cases, as they map: the
caller's buffers are the user space; outside them is EFAULT, a string without its
NUL within the limit ENAMETOOLONG."""

from __future__ import annotations

import errno

import pytest

from rumpmp.kern import (
    UIO_READ,
    UIO_WRITE,
    copyin,
    copyinstr,
    copyout,
    copyoutstr,
    rump_uio_free,
    rump_uio_getoff,
    rump_uio_getresid,
    rump_uio_setup,
    uiomove,
)
from rumpmp.rumpkern.svc.copy import USER_BASE, user_space


def errno_of(fn, *args):
    try:
        fn(*args)
    except OSError as e:
        return errno.errorcode[e.errno]
    return "ok"


def copy_cases():
    out = {}
    src, dst = b"hello\0world", bytearray(16)
    with user_space(src, dst) as (s, d):
        out["in"] = copyin(s, 5)
        out["instr"] = copyinstr(s, 64)
        out["instr_exact"] = copyinstr(s, 6)  # five bytes and the NUL
        out["instr_short"] = errno_of(copyinstr, s, 5)  # t_copy: copyinstr with too small a limit
        out["instr_offend"] = errno_of(copyinstr, s + 6, 64)  # "world" has no NUL in its buffer
        out["null"] = errno_of(copyin, 0, 1)  # t_copy: a NULL address faults
        out["past"] = errno_of(copyin, s, len(src) + 1)
        out["between"] = errno_of(copyin, s + len(src) + 8, 1)
        out["to_readonly"] = errno_of(copyout, b"x", s)
        copyout(b"abc", d + 2)
        out["outstr"] = copyoutstr("hi", d + 8, 3)
        out["outstr_short"] = errno_of(copyoutstr, "long", d, 4)  # t_copy: copyoutstr
        out["outstr_past"] = errno_of(copyoutstr, "x" * 20, d, 64)
        out["bad_type"] = errno_of(copyin, "0x10000", 1)
    out["dst"] = bytes(dst)
    out["no_window"] = errno_of(copyin, USER_BASE, 1)
    return out


def test_copy_cases_of_t_copy(rump_kernel):
    out = rump_kernel.run(copy_cases)
    assert out["in"] == b"hello"
    assert out["instr"] == out["instr_exact"] == "hello"
    assert out["instr_short"] == "ENAMETOOLONG"
    assert out["instr_offend"] == "EFAULT"
    assert out["null"] == out["past"] == out["between"] == out["to_readonly"] == "EFAULT"
    assert (
        out["outstr"] == 3
        and out["outstr_short"] == "ENAMETOOLONG"
        and out["outstr_past"] == "EFAULT"
    )
    assert out["dst"] == b"\0\0abc\0\0\0hi\0\0\0\0\0\0"
    assert out["bad_type"] == "EFAULT"
    assert out["no_window"] == "EFAULT"  # no system call, no user space


def uio_cases():
    file = bytearray(b"0123456789")
    read = rump_uio_setup(4, 3, UIO_READ)  # the kernel fills a 4-byte buffer from offset 3
    uiomove(file[3:], 10, read)
    write = rump_uio_setup(bytearray(b"ab"), 0, UIO_WRITE)
    target = bytearray(5)
    uiomove(target, 5, write)
    return (
        bytes(read.buf),
        rump_uio_getresid(read),
        rump_uio_getoff(read),
        rump_uio_free(read),
        bytes(target),
        rump_uio_getoff(write),
    )


def test_uiomove_moves_in_the_uios_direction(rump_kernel):
    # rump_uio_free returns the residue (rump's accessors.c), 0 here: all 4 moved.
    assert rump_kernel.run(uio_cases) == (b"3456", 0, 7, 0, b"ab\0\0\0", 2)


TESTSTR = "jippii, lisaa puuroa"


def dotest(which):
    """t_copy.c dotest: a larger buffer, one just large enough, one too small."""
    from rumpmp.kern import copyinstr, copyoutstr, copystr

    size = len(TESTSTR) + 2  # sizeof(TESTSTR) + 1: the string, its NUL and one more
    out = []
    for limit in (size, size - 1, size - 2):
        buf = bytearray(b"\xaa" * size)
        with user_space(TESTSTR.encode() + b"\0", buf) as (src, dst):
            try:
                if which == "copystr":
                    n, got = copystr(TESTSTR, buf, limit), bytes(buf).split(b"\0")[0].decode()
                elif which == "copyinstr":
                    got = copyinstr(src, limit)
                    n = len(got) + 1
                else:
                    n, got = copyoutstr(TESTSTR.encode(), dst, limit), None
                    got = bytes(buf).split(b"\0")[0].decode()
                out.append((n, got))
            except OSError as e:
                out.append(errno.errorcode[e.errno])
    return out


@pytest.mark.parametrize("which", ["copystr", "copyinstr", "copyoutstr"])
def test_t_copy_string_copies(rump_kernel, which):
    """t_copy.c copystr, copyinstr, copyoutstr."""
    done = len(TESTSTR) + 1
    assert rump_kernel.run(dotest, which) == [
        (done, TESTSTR),
        (done, TESTSTR),
        "ENAMETOOLONG",
    ]


def efaults():
    from rumpmp.kern import copyin, copyinstr, copyout, copyoutstr

    buf = bytearray(1024)
    with user_space(bytes(16), bytearray(16)):
        return [
            errno_of(copyin, 0, len(buf)),
            errno_of(copyout, buf, 0),
            errno_of(copyinstr, 0, len(buf)),
            errno_of(copyoutstr, b"x", 0, len(buf)),
        ]


def test_t_copy_copy_efault(rump_kernel):
    """t_copy.c copy_efault: a NULL user address faults, for each copy function."""
    assert rump_kernel.run(efaults) == ["EFAULT"] * 4


def copyoutstr_takes_bytes():
    from rumpmp.kern import copyinstr, copyoutstr

    out = []
    dst = bytearray(16)
    with user_space(dst) as (d,):
        for text in (b"bytes", 3.5):
            try:
                out.append(copyoutstr(text, d, 16))
            except TypeError as e:
                out.append(str(e).split(":")[1].split()[0])
        try:
            copyinstr(d, "16")
        except TypeError as e:
            out.append(str(e).split(":")[1].split()[0])
    return out, bytes(dst[:6])


def test_copyoutstr_takes_bytes_and_rejects_other_types(rump_kernel):
    assert rump_kernel.run(copyoutstr_takes_bytes) == ([6, "text", "maxlen"], b"bytes\0")
