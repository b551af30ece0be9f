"""The shape of the code (ARCHITECTURE.md section 1, issue 9): the host boundary, the
layers, no import cycle, and the public surface."""

from __future__ import annotations

import ast
import pathlib

import rumpmp
import rumpmp.kern
from rumpmp.rumpkern import LAYERS

ROOT = pathlib.Path(__file__).resolve().parent.parent
HOST_MODULES = {
    "os",
    "threading",
    "time",
    "signal",
    "socket",
    "mmap",
    "posix_ipc",
    "multiprocess",
    "multiprocessing",
    "subprocess",
    "_multiprocess",
    "_thread",
    "select",
    "sys",
    "ctypes",
    "_signal",
}

#: Host-side modules, which run in the host rather than on a CPU, may touch the host
#: directly; each says what for.
ALLOWED = {
    "rumpmp/__main__.py": {"sys"},  # the entry point exits with main()'s status
    # waits for SIGINT/SIGTERM, writes to stdio, points it at /dev/null once unread
    "rumpmp/host/cli.py": {"os", "signal", "sys"},
    "rumpmp/host/lockstat.py": {"sys"},  # the lockstat tool writes to stdio
    "rumpmp/host/top.py": {"sys", "time"},  # the top tool writes to stdio, once a second
    "rumpmp/host/kernel.py": {"threading"},  # one host lock guards stopping a kernel
    "rumpmp/host/hostlwp.py": {"threading"},  # each host thread keeps its own lwps
    "rumpmp/rumpkern/mem/kmem.py": {"ctypes"},  # KBufs are ctypes arrays over the arena
    # the torture driver runs in the host: it moves, stops and continues CPU processes
    "rumpmp/torture/driver.py": {"os", "signal", "time"},
    "rumpmp/torture/campaign.py": {"os", "subprocess", "sys"},  # runs seeds as children
    "rumpmp/torture/cli.py": {"sys"},  # writes the report to stdio
    # the Executor's workers are host threads; it times queue waits
    "rumpmp/futures/executor.py": {"threading", "time"},
    "rumpmp/futures/joblib_backend.py": {"os"},  # the host's CPUs, for n_jobs=-1
    "rumpmp/testing/plugin.py": {"os", "time"},
    "rumpmp/host/daemon.py": {
        "os"
    },  # forks; the parent exits with the child's word  # xdist worker id; waits for a new kernel
    # the sysproxy server's host side: an accepting thread, a thread per handshake
    "rumpmp/sp/server.py": {"threading"},
    # the server command waits for signals; the tools write to stdio
    "rumpmp/host/spcli.py": {"os", "signal", "sys", "threading", "time"},
    # the client library is a host program's: it forks, execs, raises signals in
    # itself, names its program, waits for replies and between reconnections
    "rumpmp/rumpclient/__init__.py": {
        "os",
        "select",
        "signal",
        "_signal",
        "sys",
        "threading",
        "time",
    },
}


def python_files(package: str) -> list[pathlib.Path]:
    return sorted((ROOT / package).rglob("*.py"))


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: pathlib.Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in the file, function-level ones included,
    with relative imports made absolute."""
    out = []
    package = module_name(path).split(".") if path.is_relative_to(ROOT) else []
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            out.append((module, [a.name for a in node.names]))
    return out


def imported_top_levels(path: pathlib.Path) -> set[str]:
    return {module.split(".")[0] for module, _ in imports(path)}


# -- the boundary --------------------------------------------------------------------


def test_kernel_imports_no_host_module():
    files = python_files("rumpmp")
    assert len(files) > 30  # the walk reaches the subpackages
    offenders = {}
    for f in files:
        name = str(f.relative_to(ROOT))
        bad = (imported_top_levels(f) & HOST_MODULES) - ALLOWED.get(name, set())
        if bad:
            offenders[name] = sorted(bad)
    assert offenders == {}


def test_the_boundary_check_catches_a_host_import(tmp_path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("import os\ndef f():\n    from time import sleep\n")
    assert imported_top_levels(sneaky) & HOST_MODULES == {"os", "time"}


# -- layers and cycles ----------------------------------------------------------------


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, function-level imports included."""
    modules = {module_name(f): f for pkg in ("rumpmp", "hypercalls") for f in python_files(pkg)}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for module, names in imports(path):
            for target in [f"{module}.{n}" for n in names] or [module]:
                while target and target not in modules:  # a name in a module: the module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    deps.add(target)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_function_level_imports_included():
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_layouts_import_nothing_of_the_kernel():
    graph = import_graph()
    for name, deps in graph.items():
        if name.startswith("rumpmp.sys"):
            assert all(d.startswith("rumpmp.sys") for d in deps), (name, deps)


def test_the_host_layer_knows_nothing_of_the_kernel():
    graph = import_graph()
    for name, deps in graph.items():
        if name.startswith("hypercalls"):
            assert not any(d.startswith("rumpmp") for d in deps), (name, deps)


def core_level(module: str) -> int | None:
    """Where a module of rumpmp/rumpkern sits in LAYERS (init on top); None
    outside the core or for the package itself."""
    parts = module.split(".")
    if parts[:2] != ["rumpmp", "rumpkern"] or len(parts) == 2:
        return None
    if parts[2] == "init":
        return len(LAYERS)
    assert parts[2] in LAYERS, f"{module}: rumpkern/{parts[2]} is not in rumpkern.LAYERS"
    return LAYERS.index(parts[2])


def layer_violations(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) for every arrow from the core to a folder above the
    importer's own, or out of the core to the file system, the sysproxy server or
    the host side."""
    bad = []
    for name, deps in graph.items():
        level = core_level(name)
        if level is None:
            continue
        for d in deps:
            d_level = core_level(d)
            above = d_level is not None and d_level > level
            if above or d.startswith(("rumpmp.vfs", "rumpmp.sp", "rumpmp.host")):
                bad.append((name, d))
    return sorted(bad)


def test_rumpkern_folders_import_only_downwards():
    """Issue 22, point 3: each folder of rumpkern imports only its own and those
    below it in rumpkern.LAYERS; the core imports nothing above it (point 2: it
    reaches the file system only through the hooks rumpmp.vfs sets)."""
    graph = import_graph()
    folders = {p.name for p in (ROOT / "rumpmp/rumpkern").iterdir() if (p / "__init__.py").exists()}
    assert folders == set(LAYERS)
    assert not [
        f for f in (ROOT / "rumpmp/rumpkern").glob("*.py") if f.stem not in ("__init__", "init")
    ]
    assert layer_violations(graph) == []


def test_the_layer_check_catches_an_upward_import():
    graph = {
        "rumpmp.rumpkern.base.prf": {"rumpmp.rumpkern.sched.cpu"},  # up a folder
        "rumpmp.rumpkern.sched.cpu": {"rumpmp.rumpkern.base.prf"},  # down: fine
        "rumpmp.rumpkern.file.descrip": {"rumpmp.vfs.vnode"},  # out of the core
        "rumpmp.rumpkern.init": {"rumpmp.rumpkern.syscall.sysent"},  # init is on top
    }
    assert layer_violations(graph) == [
        ("rumpmp.rumpkern.base.prf", "rumpmp.rumpkern.sched.cpu"),
        ("rumpmp.rumpkern.file.descrip", "rumpmp.vfs.vnode"),
    ]


def test_the_client_library_reaches_no_kernel_code():
    """rumpclient boots nothing and needs no kernel: what it imports, all the way
    down, is the protocol, the layouts and the host layer."""
    graph = import_graph()
    seen, todo = set(), ["rumpmp.rumpclient"]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += graph.get(name, ())
    assert not [m for m in seen if m.startswith(("rumpmp.rumpkern", "rumpmp.host", "rumpmp.vfs"))]
    assert "rumpmp.sp.wire" in seen and "rumpmp.sp.server" not in seen


# -- the public surface ---------------------------------------------------------------

PUBLIC = [
    "EPROGMISMATCH",
    "RB_AUTOBOOT",
    "RB_DUMP",
    "RB_HALT",
    "RB_NOSYNC",
    "Kernel",
    "KernelCodeExit",
    "KernelHalted",
    "RumpPanic",
    "boot",
    "rump_daemonize_begin",
    "rump_daemonize_done",
    "rump_init",
]


def test_the_host_api_exports_what_it_always_has():
    assert sorted(rumpmp.__all__) == sorted(PUBLIC)
    assert all(hasattr(rumpmp, name) for name in PUBLIC)


def test_the_kernel_api_exports_its_section_9_names():
    exported = set(rumpmp.kern.__all__)
    assert exported == set(KERN_NAMES)
    assert all(hasattr(rumpmp.kern, name) for name in exported)


KERN_NAMES = [
    "vfs_attach",
    "vfs_detach",
    "copystr",
    "PRI_KERNEL_RT",
    "threadpool_t",
    "threadpool_percpu_t",
    "threadpool_job_t",
    "threadpool_get",
    "threadpool_put",
    "threadpool_percpu_get",
    "threadpool_percpu_put",
    "threadpool_percpu_ref",
    "threadpool_percpu_ref_remote",
    "threadpool_job_init",
    "threadpool_job_destroy",
    "threadpool_job_done",
    "threadpool_schedule_job",
    "threadpool_cancel_job",
    "threadpool_cancel_job_async",
    "vmem_t",
    "vmem_create",
    "vmem_add",
    "vmem_alloc",
    "vmem_xalloc",
    "vmem_free",
    "vmem_xfree",
    "vmem_size",
    "vmem_destroy",
    "VM_SLEEP",
    "VM_NOSLEEP",
    "VM_INSTANTFIT",
    "VM_BESTFIT",
    "VMEM_ADDR_MIN",
    "VMEM_ADDR_MAX",
    "VMEM_ALLOC",
    "VMEM_FREE",
    "localcount_t",
    "localcount_init",
    "localcount_acquire",
    "localcount_release",
    "localcount_drain",
    "localcount_fini",
    "psref_t",
    "psref_class_t",
    "psref_target_t",
    "psref_class_create",
    "psref_class_destroy",
    "psref_target_init",
    "psref_acquire",
    "psref_release",
    "psref_copy",
    "psref_target_destroy",
    "psref_held",
    "pserialize_t",
    "pserialize_create",
    "pserialize_destroy",
    "pserialize_read_enter",
    "pserialize_read_exit",
    "pserialize_perform",
    "pserialize_in_read_section",
    "CLOCK_REALTIME",
    "CLOCK_MONOTONIC",
    "TIMER_ABSTIME",
    "TIMER_RELTIME",
    "timespec",
    "timeval",
    "rump_sys_clock_gettime",
    "rump_sys_clock_getres",
    "rump_sys_gettimeofday",
    "rump_sys_nanosleep",
    "rump_sys_clock_nanosleep",
    "getmicrotime",
    "getmicrouptime",
    "getbintime",
    "getbinuptime",
    "getnanotime",
    "getnanouptime",
    "microtime",
    "microuptime",
    "bintime",
    "binuptime",
    "tc_setclock",
    "tc_getfrequency",
    "cprng_strong_t",
    "cprng_strong_create",
    "cprng_strong_destroy",
    "cprng_strong",
    "cprng_strong32",
    "cprng_strong64",
    "cprng_fast",
    "cprng_fast32",
    "cprng_fast64",
    "arc4random",
    "arc4random_buf",
    "kern_cprng",
    "kpreempt_disable",
    "kpreempt_enable",
    "kpreempt_disabled",
    "cpu_intr_p",
    "cpu_softintr_p",
    "curcpu_stable",
    "mutex_obj_alloc",
    "mutex_obj_hold",
    "mutex_obj_free",
    "mutex_obj_refcnt",
    "rw_obj_alloc",
    "rw_obj_hold",
    "rw_obj_free",
    "PR_WAITOK",
    "PR_NOWAIT",
    "PR_ZERO",
    "pool_t",
    "pool_init",
    "pool_get",
    "pool_put",
    "pool_destroy",
    "pool_sethardlimit",
    "pool_nout",
    "pool_cache_t",
    "pool_cache_init",
    "pool_cache_get",
    "pool_cache_put",
    "pool_cache_destroy",
    "pool_cache_invalidate",
    "pool_cache_stats",
    "atomic_add_32",
    "atomic_add_32_nv",
    "atomic_add_64",
    "atomic_add_64_nv",
    "atomic_add_uint",
    "atomic_add_uint_nv",
    "atomic_add_ulong",
    "atomic_add_ulong_nv",
    "atomic_and_32",
    "atomic_and_32_nv",
    "atomic_and_64",
    "atomic_and_64_nv",
    "atomic_and_uint",
    "atomic_and_uint_nv",
    "atomic_and_ulong",
    "atomic_and_ulong_nv",
    "atomic_cas_32",
    "atomic_cas_64",
    "atomic_cas_uint",
    "atomic_cas_ulong",
    "atomic_dec_32",
    "atomic_dec_32_nv",
    "atomic_dec_64",
    "atomic_dec_64_nv",
    "atomic_dec_uint",
    "atomic_dec_uint_nv",
    "atomic_dec_ulong",
    "atomic_dec_ulong_nv",
    "atomic_inc_32",
    "atomic_inc_32_nv",
    "atomic_inc_64",
    "atomic_inc_64_nv",
    "atomic_inc_uint",
    "atomic_inc_uint_nv",
    "atomic_inc_ulong",
    "atomic_inc_ulong_nv",
    "atomic_load_acquire",
    "atomic_load_relaxed",
    "atomic_or_32",
    "atomic_or_32_nv",
    "atomic_or_64",
    "atomic_or_64_nv",
    "atomic_or_uint",
    "atomic_or_uint_nv",
    "atomic_or_ulong",
    "atomic_or_ulong_nv",
    "atomic_store_relaxed",
    "atomic_store_release",
    "atomic_swap_32",
    "atomic_swap_64",
    "atomic_swap_uint",
    "atomic_swap_ulong",
    "membar_acquire",
    "membar_consumer",
    "membar_enter",
    "membar_exit",
    "membar_producer",
    "membar_release",
    "membar_sync",
    "RUMP_ETFS_REG",
    "rump_pub_etfs_register",
    "rump_pub_etfs_remove",
    "kmem_roundup_size",
    "O_RDONLY",
    "O_WRONLY",
    "O_RDWR",
    "O_ACCMODE",
    "O_NONBLOCK",
    "O_APPEND",
    "O_CREAT",
    "O_TRUNC",
    "O_EXCL",
    "O_NOFOLLOW",
    "O_CLOEXEC",
    "O_DIRECTORY",
    "F_DUPFD",
    "F_DUPFD_CLOEXEC",
    "F_GETFD",
    "F_SETFD",
    "F_GETFL",
    "F_SETFL",
    "FD_CLOEXEC",
    "FIONREAD",
    "FIONBIO",
    "SEEK_SET",
    "SEEK_CUR",
    "SEEK_END",
    "POLLIN",
    "POLLPRI",
    "POLLOUT",
    "POLLERR",
    "POLLHUP",
    "POLLNVAL",
    "POLLRDNORM",
    "POLLWRNORM",
    "PIPE_BUF",
    "EVFILT_READ",
    "EVFILT_WRITE",
    "EVFILT_TIMER",
    "EVFILT_VNODE",
    "rump_sys_mkfifo",
    "rump_sys_mknod",
    "EVFILT_PROC",
    "EVFILT_SIGNAL",
    "NOTE_ABSTIME",
    "NOTE_CHILD",
    "NOTE_EXEC",
    "NOTE_EXIT",
    "NOTE_FORK",
    "NOTE_TRACK",
    "NOTE_TRACKERR",
    "NOTE_ATTRIB",
    "NOTE_DELETE",
    "NOTE_EXTEND",
    "NOTE_LINK",
    "NOTE_RENAME",
    "NOTE_REVOKE",
    "NOTE_WRITE",
    "NOTE_MSECONDS",
    "NOTE_NSECONDS",
    "NOTE_SECONDS",
    "NOTE_USECONDS",
    "EV_ADD",
    "EV_DELETE",
    "EV_ENABLE",
    "EV_DISABLE",
    "EV_ONESHOT",
    "EV_CLEAR",
    "EV_EOF",
    "EV_ERROR",
    "S_IFMT",
    "S_IFDIR",
    "S_IFREG",
    "S_IFLNK",
    "S_IFIFO",
    "F_OK",
    "R_OK",
    "W_OK",
    "X_OK",
    "Stat",
    "Statvfs",
    "rump_sys_read",
    "rump_sys_pread",
    "rump_sys_write",
    "rump_sys_pwrite",
    "rump_sys_readv",
    "rump_sys_writev",
    "rump_sys_close",
    "rump_sys_dup",
    "rump_sys_dup2",
    "rump_sys_dup3",
    "rump_sys_fcntl",
    "rump_sys_fstat",
    "rump_sys_ioctl",
    "rump_sys_pipe",
    "rump_sys_pipe2",
    "rump_sys_kqueue",
    "rump_sys_kevent",
    "rump_sys_poll",
    "rump_sys_pollts",
    "rump_sys_select",
    "rump_sys_open",
    "rump_sys_mkdir",
    "rump_sys_symlink",
    "rump_sys_readlink",
    "rump_sys_unlink",
    "rump_sys_rmdir",
    "rump_sys_rename",
    "rump_sys_link",
    "rump_sys_stat",
    "rump_sys_lstat",
    "rump_sys_chmod",
    "rump_sys_fchmod",
    "rump_sys_chown",
    "rump_sys_lchown",
    "rump_sys_fchown",
    "rump_sys_utimes",
    "rump_sys_truncate",
    "rump_sys_ftruncate",
    "rump_sys_fsync",
    "rump_sys_lseek",
    "rump_sys_getdents",
    "rump_sys_listdir",
    "rump_sys_chdir",
    "rump_sys_fchdir",
    "rump_sys_getcwd",
    "rump_sys_access",
    "rump_sys_statvfs",
    "rump_sys_mount",
    "rump_sys_unmount",
    "ksyms_getval",
    "rump_kernelfsym_load",
    "rump_allbetsareoff_setid",
    "lwp_getspecific",
    "lwp_setspecific",
    "lwp_specific_key_create",
    "lwp_specific_key_delete",
    "RUMP_SIGMODEL_HOST",
    "RUMP_SIGMODEL_IGNORE",
    "RUMP_SIGMODEL_PANIC",
    "RUMP_SIGMODEL_RAISE",
    "RUMP_SIGMODEL_RECORD",
    "cv_wait_sig",
    "psignal",
    "rump_boot_setsigmodel",
    "rump_sys_kill",
    "sigclear",
    "sigpending",
    "KERNEL_LOCK",
    "KERNEL_LOCKED_P",
    "KERNEL_UNLOCK_ALL",
    "KERNEL_UNLOCK_ONE",
    "RUN_ONCE",
    "once_init",
    "once_t",
    "AB_VERBOSE",
    "rump_boot_gethowto",
    "rump_boot_sethowto",
    "rump_getversion",
    "rump_sys_reboot",
    "rump_sys_getrlimit",
    "rump_sys_setrlimit",
    "RLIM_INFINITY",
    "RLIMIT_NOFILE",
    "RLIMIT_NPROC",
    "UIO_READ",
    "UIO_WRITE",
    "copyin",
    "copyinstr",
    "copyout",
    "copyoutstr",
    "rump_uio_free",
    "rump_uio_getoff",
    "rump_uio_getresid",
    "rump_uio_setup",
    "uio_t",
    "uiomove",
    "modinfo_t",
    "module_init_class",
    "rump_component",
    "rump_component_count",
    "rump_module_fini",
    "rump_module_init",
    "rump_sys_modctl",
    "MODCTL_LOAD",
    "MODCTL_STAT",
    "MODCTL_UNLOAD",
    "MODULE_CLASS_ANY",
    "MODULE_CLASS_DRIVER",
    "MODULE_CLASS_MISC",
    "MODULE_CLASS_VFS",
    "MODULE_CMD_FINI",
    "MODULE_CMD_INIT",
    "MODULE_CMD_STAT",
    "RUMP_COMPONENT_DEV",
    "RUMP_COMPONENT_KERN",
    "RUMP_COMPONENT_KERN_VFS",
    "RUMP_COMPONENT_NET",
    "RUMP_COMPONENT_POSTINIT",
    "RUMP_COMPONENT_SYSCALL",
    "RUMP_COMPONENT_VFS",
    "rump_syscall",
    "rump_sys___sysctl",
    "sysctl_createv",
    "sysctl_destroyv",
    "sysctl_lookup",
    "sysctl_query",
    "CTL_CREATE",
    "CTLFLAG_ANYWRITE",
    "CTLFLAG_PERMANENT",
    "CTLFLAG_READONLY",
    "CTLFLAG_READWRITE",
    "CTLTYPE_BOOL",
    "CTLTYPE_INT",
    "CTLTYPE_NODE",
    "CTLTYPE_QUAD",
    "CTLTYPE_STRING",
    "CTLTYPE_STRUCT",
    "CALLOUT_MPSAFE",
    "DELAY",
    "EVCNT_TYPE_INTR",
    "EVCNT_TYPE_MISC",
    "EVCNT_TYPE_TRAP",
    "IPL_HIGH",
    "IPL_NONE",
    "IPL_SCHED",
    "IPL_SOFTBIO",
    "IPL_SOFTCLOCK",
    "IPL_SOFTNET",
    "IPL_SOFTSERIAL",
    "IPL_VM",
    "KBuf",
    "KM_NOSLEEP",
    "KM_SLEEP",
    "KTHREAD_IDLE",
    "KTHREAD_INTR",
    "KTHREAD_MPSAFE",
    "KTHREAD_MUSTJOIN",
    "KTHREAD_TS",
    "MUTEX_ADAPTIVE",
    "MUTEX_DEFAULT",
    "MUTEX_SPIN",
    "NGROUPS_MAX",
    "PCATCH",
    "PNORELOCK",
    "PRI_BIO",
    "PRI_KERNEL",
    "PRI_KTHREAD",
    "PRI_NONE",
    "PRI_PGDAEMON",
    "PRI_SOFTBIO",
    "PRI_SOFTCLOCK",
    "PRI_SOFTNET",
    "PRI_SOFTSERIAL",
    "PRI_USER",
    "PRI_XCALL",
    "RB_AUTOBOOT",
    "RB_DUMP",
    "RB_HALT",
    "RB_NOSYNC",
    "RUMP_RFCFDG",
    "RUMP_RFFDG",
    "RW_READER",
    "RW_WRITER",
    "SOFTINT_BIO",
    "SOFTINT_CLOCK",
    "SOFTINT_MPSAFE",
    "SOFTINT_NET",
    "SOFTINT_SERIAL",
    "WQ_MPSAFE",
    "WQ_PERCPU",
    "XC_HIGHPRI",
    "aiodoned",
    "callout_ack",
    "callout_active",
    "callout_bind",
    "callout_destroy",
    "callout_expired",
    "callout_halt",
    "callout_init",
    "callout_invoking",
    "callout_pending",
    "callout_reset",
    "callout_schedule",
    "callout_setfunc",
    "callout_stop",
    "callout_t",
    "cpu_index",
    "cpu_reboot",
    "cv_broadcast",
    "cv_destroy",
    "cv_has_waiters",
    "cv_init",
    "cv_signal",
    "cv_timedwait",
    "cv_wait",
    "evcnt_attach_dynamic",
    "evcnt_detach",
    "evcnt_inc",
    "evcnt_t",
    "getboottime",
    "getticks",
    "hz",
    "hztoms",
    "kauth_cred_dup",
    "kauth_cred_free",
    "kauth_cred_get",
    "kauth_cred_getegid",
    "kauth_cred_geteuid",
    "kauth_cred_getgid",
    "kauth_cred_getgroups",
    "kauth_cred_getrefcnt",
    "kauth_cred_getsvgid",
    "kauth_cred_getsvuid",
    "kauth_cred_getuid",
    "kauth_cred_hold",
    "kauth_cred_ismember_gid",
    "kauth_cred_ngroups",
    "kauth_cred_setegid",
    "kauth_cred_seteuid",
    "kauth_cred_setgid",
    "kauth_cred_setgroups",
    "kauth_cred_setsvgid",
    "kauth_cred_setsvuid",
    "kauth_cred_setuid",
    "kauth_cred_t",
    "kcondvar_t",
    "kmem_alloc",
    "kmem_free",
    "kmem_zalloc",
    "kmutex_t",
    "kpause",
    "krwlock_t",
    "kthread_create",
    "kthread_exit",
    "kthread_join",
    "mstohz",
    "mtsleep",
    "mutex_destroy",
    "mutex_enter",
    "mutex_exit",
    "mutex_init",
    "mutex_owned",
    "mutex_tryenter",
    "nanotime",
    "nanouptime",
    "panic",
    "percpu_alloc",
    "percpu_foreach",
    "percpu_foreach_xcall",
    "percpu_free",
    "percpu_getref",
    "percpu_putref",
    "percpu_t",
    "preempt",
    "printf",
    "rump_cred_create",
    "rump_cred_put",
    "rump_lwproc_curlwp",
    "rump_lwproc_newlwp",
    "rump_lwproc_newproc",
    "rump_lwproc_releaselwp",
    "rump_lwproc_rfork",
    "rump_lwproc_switch",
    "rump_printevcnts",
    "rump_sys_getegid",
    "rump_sys_geteuid",
    "rump_sys_getgid",
    "rump_sys_getgroups",
    "rump_sys_getpid",
    "rump_sys_getppid",
    "rump_sys_getuid",
    "rump_sys_setgid",
    "rump_sys_setgroups",
    "rump_sys_setuid",
    "rw_destroy",
    "rw_downgrade",
    "rw_enter",
    "rw_exit",
    "rw_init",
    "rw_lock_held",
    "rw_read_held",
    "rw_tryenter",
    "rw_tryupgrade",
    "rw_write_held",
    "softint_disestablish",
    "softint_establish",
    "softint_schedule",
    "softint_schedule_cpu",
    "softint_t",
    "tsleep",
    "wakeup",
    "workqueue_create",
    "workqueue_destroy",
    "workqueue_enqueue",
    "workqueue_t",
    "workqueue_wait",
    "xc_broadcast",
    "xc_unicast",
    "xc_wait",
    "yield_",
]
