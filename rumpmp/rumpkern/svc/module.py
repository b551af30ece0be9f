"""module(9), modctl(2) and rump's components (kern_module.c, rump.c).

A module is a ``modinfo_t``: a name, a class, ``modcmd(cmd, arg) -> errno`` and the
names of the modules it requires.  The host provides modules as entry points of the
group ``rumpmp.modules`` (found by the dl hypercall, as rumpuser_dl_bootstrap finds
them in loaded objects); ``module_init_class`` loads them at boot, ``modctl`` loads
and unloads them by name, ``rump_module_init`` adds one given in kernel code.

Which modules are loaded is kept in shared memory, so every CPU agrees: a module
loaded on one CPU is loaded for all (its ``MODULE_CMD_INIT`` ran once, where it was
loaded).  A module that cannot be found in a process through its entry point
travels as a pickle stored with its record.

A component (``rump_component``) is code of a given type run once at boot, in the
seed's order of types; ``rump_component_count(type)`` says how many ran.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hypercalls import dl, sync
from rumpmp.rumpkern.base import arena as _arena
from rumpmp.rumpkern.base.arena import Arena
from rumpmp.rumpkern.base.prf import kprintf
from rumpmp.rumpkern.cred import kauth
from rumpmp.rumpkern.mem.blob import blob_free, blob_get, blob_put
from rumpmp.sys import module as M

MODULES_GROUP, COMPONENTS_GROUP = "rumpmp.modules", "rumpmp.components"

#: The order in which component types run at boot (the seed's: the core, the
#: factions, the kernel's vfs parts, then system calls; modules load before POSTINIT).
COMPONENT_ORDER = (
    M.RUMP_COMPONENT_KERN,
    M.RUMP_COMPONENT_DEV,
    M.RUMP_COMPONENT_DEV_AFTERMAINBUS,
    M.RUMP_COMPONENT_NET,
    M.RUMP_COMPONENT_NET_ROUTE,
    M.RUMP_COMPONENT_NET_IF,
    M.RUMP_COMPONENT_NET_IFCFG,
    M.RUMP_COMPONENT_VFS,
    M.RUMP_COMPONENT_KERN_VFS,
    M.RUMP_COMPONENT_SYSCALL,
)


@dataclass(frozen=True)
class modinfo_t:
    """A kernel module (NetBSD's ``MODULE(class, name, required)``)."""

    name: str
    cls: int
    modcmd: Callable[[int, Any], int]
    required: tuple[str, ...] = ()

    def __post_init__(self) -> None:  # misuse is caught here, not at boot
        if not isinstance(self.name, str):
            raise TypeError(f"modinfo_t: name must be a str, not {type(self.name).__name__}")
        if not callable(self.modcmd):
            raise TypeError("modinfo_t: modcmd must be callable")
        if not isinstance(self.required, tuple | list) or not all(
            isinstance(r, str) for r in self.required
        ):
            raise TypeError("modinfo_t: required must be a tuple of module names")


@dataclass(frozen=True)
class rump_component:
    """Code run once at boot (``RUMP_COMPONENT(type)``)."""

    type: int
    init: Callable[[], None]
    name: str = ""


# -- the shared table ----------------------------------------------------------------------


def module_init(arena: Arena) -> None:
    """The table's lock (the host, at boot)."""
    arena.w[arena.region_word("module") + M.M_LOCK] = sync.Mutex(arena.pool, sync.MTX_SPIN).slot


class _Table:
    def __init__(self, arena: Arena) -> None:
        self.arena, self.w = arena, arena.w
        self.base = arena.region_word("module")
        self.lock = arena.spin_lock(self.base + M.M_LOCK)

    def rec(self, i: int) -> int:
        return self.base + M.M_WORDS + i * M.MR_WORDS

    def name(self, i: int) -> str:
        off = (self.rec(i) + M.MR_NAME) * 8
        return bytes(self.arena.buf[off : off + M.MODNAME_LEN]).rstrip(b"\0").decode()

    def find(self, name: str) -> int:
        for i in range(M.NMODULES):
            if self.w[self.rec(i) + M.MR_USED] and self.name(i) == name:
                return i
        return -1

    def add(self, mi: modinfo_t, pickled: bool) -> int:
        for i in range(M.NMODULES):
            r = self.rec(i)
            if not self.w[r + M.MR_USED]:
                self.w[r : r + M.MR_WORDS] = memoryview(bytes(M.MR_WORDS * 8)).cast("q")
                self.w[r + M.MR_CLASS] = mi.cls
                off = (r + M.MR_NAME) * 8
                self.arena.buf[off : off + M.MODNAME_LEN] = mi.name.encode().ljust(
                    M.MODNAME_LEN, b"\0"
                )
                if pickled:
                    blob_put(self.arena, mi, r + M.MR_BLOB)
                self.w[r + M.MR_USED] = 1
                return i
        raise OSError(errno.ENOMEM, f"module: all {M.NMODULES} module slots are in use")


def _table(arena: Arena) -> _Table:
    return arena.attached("module", lambda: _Table(arena))


def provided() -> bool:
    """Whether the host provides any module or component (a scan of its path, once)."""
    return bool(dl.entry_points(MODULES_GROUP) or dl.entry_points(COMPONENTS_GROUP))


def _available() -> dict[str, str]:
    """The modules the host provides: name -> entry point value."""
    return dict(dl.entry_points(MODULES_GROUP))


def _modinfo_of(t: _Table, i: int) -> modinfo_t:
    """The modinfo of loaded module ``i``, in this process."""
    r = t.rec(i)
    if t.w[r + M.MR_BLOB + 1]:
        return blob_get(t.arena, r + M.MR_BLOB, cache=True)
    return _from_entry_point(t.name(i))


def _from_entry_point(name: str) -> modinfo_t:
    value = _available().get(name)
    if value is None:
        raise FileNotFoundError(errno.ENOENT, f"module: no module named {name!r}")
    mi = dl.load(value)
    if not isinstance(mi, modinfo_t) or mi.name != name:
        raise OSError(
            errno.EINVAL, f"module: entry point {name!r} is not the modinfo_t of {name!r}"
        )
    return mi


# -- loading and unloading -----------------------------------------------------------------


def _load(arena: Arena, mi: modinfo_t, pickled: bool, chain: tuple[str, ...] = ()) -> None:
    """Load ``mi`` and, first, what it requires: EEXIST if it is loaded already."""
    t = _table(arena)
    if not isinstance(mi, modinfo_t):
        raise TypeError(f"module: a modinfo_t, not {type(mi).__name__}")
    if mi.name in chain:
        raise OSError(errno.EDEADLK, f"module: {' -> '.join((*chain, mi.name))} is a cycle")
    for need in mi.required:
        t.lock.enter_nowrap()
        loaded = t.find(need) >= 0
        t.lock.exit()
        if not loaded:
            _load(arena, _from_entry_point(need), False, (*chain, mi.name))
    t.lock.enter_nowrap()
    try:
        if t.find(mi.name) >= 0:
            raise FileExistsError(errno.EEXIST, f"module: {mi.name} is loaded already")
        i = t.add(mi, pickled)  # claimed: a second load now sees EEXIST
    finally:
        t.lock.exit()
    try:
        rc = mi.modcmd(M.MODULE_CMD_INIT, None)
    except BaseException:
        _drop(t, i)
        raise
    if rc:
        _drop(t, i)
        raise OSError(rc, f"module: {mi.name} failed to initialise")
    _count_requirements(t, mi, +1)


def _drop(t: _Table, i: int) -> None:
    if t.w[t.rec(i) + M.MR_BLOB + 1]:
        blob_free(t.arena, t.rec(i) + M.MR_BLOB)
    t.w[t.rec(i) + M.MR_USED] = 0


def _count_requirements(t: _Table, mi: modinfo_t, delta: int) -> None:
    t.lock.enter_nowrap()
    try:
        for need in mi.required:
            j = t.find(need)
            if j >= 0:
                t.w[t.rec(j) + M.MR_REFS] += delta
    finally:
        t.lock.exit()


def _unload(arena: Arena, name: str) -> None:
    t = _table(arena)
    t.lock.enter_nowrap()
    try:
        i = t.find(name)
        if i < 0:
            raise FileNotFoundError(errno.ENOENT, f"module: {name} is not loaded")
        if t.w[t.rec(i) + M.MR_REFS]:
            raise OSError(errno.EBUSY, f"module: {name} is required by another module")
    finally:
        t.lock.exit()
    mi = _modinfo_of(t, i)
    rc = mi.modcmd(M.MODULE_CMD_FINI, None)
    if rc:
        raise OSError(rc, f"module: {name} refused to unload")
    _count_requirements(t, mi, -1)
    _drop(t, i)


def module_init_class(cls: int) -> list[str]:
    """module_init_class(9): load every module the host provides of class ``cls``
    (MODULE_CLASS_ANY: all) that is not loaded yet; their names.  A module whose
    init returns an error is left out (dmesg says why); one that raises fails."""
    arena = _arena.current()
    loaded = []
    for name in _available():
        t = _table(arena)
        if t.find(name) >= 0:
            continue
        mi = _from_entry_point(name)
        if cls in (M.MODULE_CLASS_ANY, mi.cls):
            try:
                _load(arena, mi, False)
            except FileExistsError:
                continue  # loaded meanwhile as another one's requirement
            except OSError as e:  # its init said no: say so and go on, as NetBSD does
                kprintf(arena, f"module {name}: not loaded: {e.strerror or e}\n")
                continue
            loaded.append(name)
    return loaded


def rump_module_init(mi: modinfo_t) -> None:
    """rump_module_init(3): load a module given by kernel code (it travels to the
    other CPUs pickled).  EEXIST, ENOENT for a missing requirement, or its own error."""
    _load(_arena.current(), mi, True)


def rump_module_fini(mi: modinfo_t) -> None:
    """rump_module_fini(3): unload it; EBUSY while another module requires it."""
    _unload(_arena.current(), mi.name)


def rump_sys_modctl(cmd: int, arg: object = None) -> object:
    """modctl(2): MODCTL_LOAD and MODCTL_UNLOAD by name, MODCTL_STAT -> a list of
    (name, class, references).  Loading needs root (EPERM)."""
    arena = _arena.current()
    if cmd == M.MODCTL_STAT:
        t = _table(arena)
        t.lock.enter_nowrap()
        try:
            return [
                (t.name(i), t.w[t.rec(i) + M.MR_CLASS], t.w[t.rec(i) + M.MR_REFS])
                for i in range(M.NMODULES)
                if t.w[t.rec(i) + M.MR_USED]
            ]
        finally:
            t.lock.exit()
    if cmd not in (M.MODCTL_LOAD, M.MODCTL_UNLOAD) or not isinstance(arg, str):
        raise OSError(errno.EINVAL, f"modctl: bad command {cmd!r} or name {arg!r}")
    if kauth.kauth_cred_geteuid(kauth.kauth_cred_get()):
        raise PermissionError(errno.EPERM, "modctl: only root loads and unloads modules")
    if cmd == M.MODCTL_LOAD:
        _load(arena, _from_entry_point(arg), False)
    else:
        _unload(arena, arg)
    return None


# -- components ------------------------------------------------------------------------------


#: The component types that belong to the file system.
_VFS_TYPES = (M.RUMP_COMPONENT_VFS, M.RUMP_COMPONENT_KERN_VFS)


def components_init(extra: Iterable[rump_component] = ()) -> None:
    """At boot, in kernel code: every component the host provides and ``extra``, by
    type in COMPONENT_ORDER, then the modules (module_init_class), then POSTINIT.  A
    component that raises fails the boot, named."""
    arena = _arena.current()
    found = [(name, dl.load(value)) for name, value in dl.entry_points(COMPONENTS_GROUP)]
    comps = found + [(c.name or getattr(c.init, "__qualname__", "component"), c) for c in extra]
    for name, c in comps:
        if not isinstance(c, rump_component) or not 0 <= c.type < M.RUMP_COMPONENT_MAX:
            raise OSError(errno.EINVAL, f"component {name!r} is not a rump_component")
    for ctype in (*COMPONENT_ORDER, None, M.RUMP_COMPONENT_POSTINIT):
        if ctype is None:
            module_init_class(M.MODULE_CLASS_ANY)
            continue
        if ctype in _VFS_TYPES and not arena.w[_arena.H_VFS]:
            continue  # rump runs these from rump_vfs_init: not without the file system
        for name, c in comps:
            if c.type == ctype:
                _run_component(arena, name, c)


def _run_component(arena: Arena, name: str, c: rump_component) -> None:
    try:
        c.init()
    except Exception as e:
        raise OSError(errno.EINVAL, f"component {name} failed: {type(e).__name__}: {e}") from e
    arena.w[arena.region_word("module") + M.M_COMPONENTS + c.type] += 1
    if arena.w[_arena.H_VERBOSE]:
        kprintf(arena, f"component {name} initialised\n")


def rump_component_count(ctype: int) -> int:
    """rump_component_count(3): how many components of ``ctype`` ran."""
    if not 0 <= ctype < M.RUMP_COMPONENT_MAX:
        raise OSError(errno.EINVAL, f"rump_component_count: bad type {ctype!r}")
    arena = _arena.current()
    return arena.w[arena.region_word("module") + M.M_COMPONENTS + ctype]
