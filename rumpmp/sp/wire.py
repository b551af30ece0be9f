"""The sysproxy protocol (rump_sp(7)), as rumpmp speaks it: frames, the banner and
the encoding of values.  Both the server (``rumpmp.sp.server``) and the client
library (``rumpmp.rumpclient``) use this module; it boots nothing.

Where rump's protocol is the host ABI (raw ``size_t``, pointers), every field here
has a fixed width and byte order, every length is checked before anything is
allocated for it, and values travel in a small tagged encoding of plain data
(never pickle: a server must not run what a client sends).

A frame is a 24-byte header and a body::

    offset  size  field
    0       8     total length, header included (little-endian, at most MAX_FRAME)
    8       8     request number (the client's; a response carries it back)
    16      2     class: REQ 0, RESP 1, ERROR 2
    18      2     type: HANDSHAKE 0, SYSCALL 1, ... (below)
    20      4     a union: the system call number (SYSCALL), the errno (ERROR),
                  the handshake kind (HANDSHAKE) or the signal (RAISE)
"""

from __future__ import annotations

import hashlib
import hmac
import math
import struct
from typing import Any, Protocol

from rumpmp.sys.vnode import Stat, Statvfs

HEADER = struct.Struct("<QQHHI")
HEADER_SIZE = HEADER.size  # 24
#: No frame may be longer: a longer length closes the connection, unread.
MAX_FRAME = 8 << 20

REQ, RESP, ERROR = 0, 1, 2
CLASSES = (REQ, RESP, ERROR)
HANDSHAKE, SYSCALL, COPYIN, COPYINSTR, COPYOUT, COPYOUTSTR, ANONMMAP, PREFORK, RAISE = range(9)
TYPES = range(9)
TYPE_NAMES = (
    "HANDSHAKE",
    "SYSCALL",
    "COPYIN",
    "COPYINSTR",
    "COPYOUT",
    "COPYOUTSTR",
    "ANONMMAP",
    "PREFORK",
    "RAISE",
)
# handshake kinds
HANDSHAKE_GUEST, HANDSHAKE_FORK, HANDSHAKE_EXEC = 0, 2, 3

PROTO_MAJOR, PROTO_MINOR = 1, 0
MAX_BANNER = 256
NONCE_BYTES = 16  # the banner's challenge, for clients that hold a token
COOKIE_BYTES = 16  # a fork cookie: 128 random bits


#: What a frame is sent as: bytes, or a view of a long value.
Part = bytes | memoryview


class WireError(ValueError):
    """A malformed frame, banner or value: whoever sent it loses the connection."""


# -- frames -------------------------------------------------------------------------------


def frame(
    cls: int, ftype: int, reqno: int, union: int = 0, body: bytes | list[Part] = b""
) -> list[Part]:
    """One frame, ready to send: its header and its body, or the body's parts
    (``encode_parts``), sent together, not joined: a body may be megabytes."""
    parts = body if isinstance(body, list) else [body]
    size = sum(len(p) for p in parts)
    return [HEADER.pack(HEADER_SIZE + size, reqno, cls, ftype, union & 0xFFFFFFFF), *parts]


def parse_header(raw: bytes | bytearray) -> tuple[int, int, int, int, int]:
    """(body length, request number, class, type, union) of a header; WireError for
    a length out of bounds or an unknown class or type."""
    length, reqno, cls, ftype, union = HEADER.unpack(raw)
    if not HEADER_SIZE <= length <= MAX_FRAME:
        raise WireError(f"frame length {length} out of bounds")
    if cls not in CLASSES or ftype not in TYPES:
        raise WireError(f"unknown frame class {cls} or type {ftype}")
    return length - HEADER_SIZE, reqno, cls, ftype, union


class _Conn(Protocol):
    def recv_exact(self, n: int) -> bytearray: ...


def read_frame(conn: _Conn) -> tuple[int, int, int, int, bytearray]:
    """(request number, class, type, union, body) of the next frame on ``conn``."""
    body_len, reqno, cls, ftype, union = parse_header(conn.recv_exact(HEADER_SIZE))
    return reqno, cls, ftype, union, conn.recv_exact(body_len)


def proof(secret: bytes, nonce: bytes, kind: int) -> bytes:
    """What a client holding the token ``secret`` answers the banner's ``nonce``
    with, for a handshake of ``kind`` (the token itself never travels)."""
    return hmac.new(secret, nonce + bytes([kind]), hashlib.sha256).digest()


# -- the banner ------------------------------------------------------------------------------


def banner(ostype: str, osrelease: str, machine: str, nonce: bytes) -> bytes:
    """``RUMPSP-<major>.<minor>-<ostype>-<osrelease>/<machine> <nonce>``: what the
    server says first.  A client holding a token answers the nonce."""
    text = f"RUMPSP-{PROTO_MAJOR}.{PROTO_MINOR}-{ostype}-{osrelease}/{machine} {nonce.hex()}\n"
    return text.encode()


def parse_banner(raw: bytes) -> tuple[int, int, str, bytes]:
    """(major, minor, "<ostype>-<osrelease>/<machine>", nonce) of a banner line;
    WireError if it is not one, or speaks another major version."""
    try:
        text = raw.decode("ascii").rstrip("\n")
        head, nonce_hex = text.split(" ")
        magic, version, system = head.split("-", 2)
        major, minor = (int(x) for x in version.split("."))
        nonce = bytes.fromhex(nonce_hex)
    except (UnicodeDecodeError, ValueError) as e:
        raise WireError(f"not a rumpmp sysproxy banner: {raw[:60]!r}") from e
    if magic != "RUMPSP" or len(nonce) != NONCE_BYTES:
        raise WireError(f"not a rumpmp sysproxy banner: {raw[:60]!r}")
    if major != PROTO_MAJOR:
        raise WireError(
            f"the server speaks protocol {major}.{minor}, this client {PROTO_MAJOR}.{PROTO_MINOR}"
        )
    return major, minor, system, nonce


# -- values ------------------------------------------------------------------------------------

MAX_DEPTH = 8
MAX_ITEMS = 1 << 16
_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")
_U32 = struct.Struct("<I")
_STRUCTS: dict[bytes, type[Stat] | type[Statvfs]] = {b"S": Stat, b"V": Statvfs}
_TAG_OF = {cls: tag for tag, cls in _STRUCTS.items()}


def encode(value: Any) -> bytes:
    """The encoding of plain data: None, bool, int, float, str, bytes-like, and
    lists and tuples of them (and the Stat and Statvfs results); TypeError for
    anything else."""
    out: list[Part] = []
    _encode(value, out, 0)
    return b"".join(out)


#: A bytes-like value at least this long travels as a part of its own, not copied.
BIG = 1 << 16


def encode_parts(value: Any) -> list[Part]:
    """``encode(value)`` as parts to send one after another: a long bytes-like
    value is a part of its own (a view of it, not a copy), the rest joined."""
    out: list[Part] = []
    _encode(value, out, 0)
    parts: list[Part] = []
    small: list[Part] = []
    for part in out:
        if len(part) < BIG:
            small.append(part)
            continue
        if small:
            parts.append(b"".join(small))
            small = []
        parts.append(part)
    if small:
        parts.append(b"".join(small))
    return parts


def _encode(v: Any, out: list[Part], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise TypeError("value nested too deep")
    if v is None:
        out.append(b"N")
    elif v is True or v is False:
        out.append(b"T" if v else b"F")
    elif isinstance(v, int):
        if -(1 << 63) <= v < 1 << 63:
            out += (b"i", _I64.pack(v))
        else:
            raw = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
            out += (b"I", _U32.pack(len(raw)), raw)
    elif isinstance(v, float):
        out += (b"f", _F64.pack(v))
    elif isinstance(v, str):
        raw = v.encode("utf-8", "surrogatepass")
        out += (b"s", _U32.pack(len(raw)), raw)
    elif isinstance(v, bytes | bytearray | memoryview):
        view = memoryview(v).cast("B")
        out += (b"b", _U32.pack(len(view)), view)  # joined once, not copied here
    elif type(v) in _TAG_OF:
        out.append(_TAG_OF[type(v)])
        _encode(tuple(v), out, depth + 1)
    elif isinstance(v, list | tuple):
        out += ((b"l" if isinstance(v, list) else b"t"), _U32.pack(len(v)))
        for item in v:
            _encode(item, out, depth + 1)
    else:
        raise TypeError(f"cannot send a {type(v).__name__} to or from a rump kernel")


def decode(raw: bytes | bytearray | memoryview) -> Any:
    """The value ``encode`` made; WireError for anything malformed, truncated, too
    deep or followed by more bytes."""
    value, end = _decode(memoryview(raw), 0, 0)
    if end != len(raw):
        raise WireError("trailing bytes after a value")
    return value


def _need(buf: memoryview, at: int, n: int) -> None:
    if n < 0 or at + n > len(buf):
        raise WireError("value truncated")


def _decode(buf: memoryview, at: int, depth: int) -> tuple[Any, int]:
    if depth > MAX_DEPTH:
        raise WireError("value nested too deep")
    _need(buf, at, 1)
    tag = bytes(buf[at : at + 1])
    at += 1
    if tag == b"N":
        return None, at
    if tag in (b"T", b"F"):
        return tag == b"T", at
    if tag == b"i":
        _need(buf, at, 8)
        return _I64.unpack_from(buf, at)[0], at + 8
    if tag == b"f":
        _need(buf, at, 8)
        value = _F64.unpack_from(buf, at)[0]
        return value, at + 8
    if tag in (b"I", b"s", b"b"):
        _need(buf, at, 4)
        n = _U32.unpack_from(buf, at)[0]
        at += 4
        _need(buf, at, n)
        raw = bytes(buf[at : at + n])
        at += n
        if tag == b"b":
            return raw, at
        if tag == b"I":
            if n > 64:
                raise WireError("integer too long")
            return int.from_bytes(raw, "little", signed=True), at
        try:
            return raw.decode("utf-8", "surrogatepass"), at
        except UnicodeDecodeError as e:
            raise WireError("a string is not UTF-8") from e
    if tag in (b"l", b"t"):
        _need(buf, at, 4)
        n = _U32.unpack_from(buf, at)[0]
        at += 4
        if n > MAX_ITEMS or n > len(buf) - at:  # every item takes at least a byte
            raise WireError("too many items")
        items = []
        for _ in range(n):
            item, at = _decode(buf, at, depth + 1)
            items.append(item)
        return (items if tag == b"l" else tuple(items)), at
    if tag in _STRUCTS:
        fields, at = _decode(buf, at, depth + 1)
        cls = _STRUCTS[tag]
        if not isinstance(fields, tuple) or len(fields) != len(cls._fields):
            raise WireError(f"a {cls.__name__} with the wrong fields")
        if not all(isinstance(f, int | float) and not isinstance(f, bool) for f in fields):
            raise WireError(f"a {cls.__name__} field is not a number")
        if any(isinstance(f, float) and not math.isfinite(f) for f in fields):
            raise WireError(f"a {cls.__name__} field is not finite")
        return cls(*fields), at
    raise WireError(f"unknown value tag {tag!r}")
