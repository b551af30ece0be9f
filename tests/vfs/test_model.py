"""The memory file system against a model (issue 14): hypothesis drives mkdir,
create, write, link, unlink, rmdir and rename on a small namespace, each step on a
CPU it picks, and checks every result (value or errno) and the whole tree against
a dict tree after every step."""

from __future__ import annotations

import errno
import itertools

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import rumpmp

NCPU = 4
NAMES = st.sampled_from(["a", "b", "c"])
PATHS = st.lists(NAMES, min_size=1, max_size=3).map("/".join)
_roots = itertools.count()


class File:
    def __init__(self, data: bytes = b"") -> None:
        self.data = data


Tree = dict  # name -> Tree | File


def _call(name, *args):
    """A system call in kernel code: its result, or ("errno", n)."""
    from rumpmp.rumpkern.syscall import sysent

    try:
        return sysent.rump_syscall(sysent.BY_NAME[name].num, args)
    except OSError as e:
        return ("errno", e.errno)


def _create(path, data):
    from rumpmp.kern import O_CREAT, O_EXCL, O_WRONLY, rump_sys_close, rump_sys_open, rump_sys_write

    try:
        fd = rump_sys_open(path, O_CREAT | O_EXCL | O_WRONLY, 0o644)
    except OSError as e:
        return ("errno", e.errno)
    rump_sys_write(fd, data)
    rump_sys_close(fd)
    return None


def _snapshot(root):
    """The tree under ``root`` as the kernel sees it: dirs as dicts, files as
    (inode, nlink, data)."""
    from rumpmp.kern import (
        O_RDONLY,
        S_IFDIR,
        S_IFMT,
        rump_sys_close,
        rump_sys_listdir,
        rump_sys_lstat,
        rump_sys_open,
        rump_sys_read,
    )

    out = {}
    for name in rump_sys_listdir(root):
        path = f"{root}/{name}"
        st_ = rump_sys_lstat(path)
        if st_.st_mode & S_IFMT == S_IFDIR:
            out[name] = (_snapshot(path), st_.st_nlink)
        else:
            fd = rump_sys_open(path, O_RDONLY)
            out[name] = (st_.st_ino, st_.st_nlink, rump_sys_read(fd, 1 << 16))
            rump_sys_close(fd)
    return out


class FileSystemModel(RuleBasedStateMachine):
    kernel: rumpmp.Kernel

    @initialize()
    def fresh_root(self):
        self.root = f"/m{next(_roots)}"
        assert self.kernel.run(_call, "mkdir", self.root, 0o755) is None
        self.tree: Tree = {}

    # -- the model ---------------------------------------------------------------------

    def _lookup(self, path: str):
        """(parent dir or None, name, node or None, errno of the parent walk)."""
        parts = path.split("/")
        d = self.tree
        for part in parts[:-1]:
            node = d.get(part)
            if node is None:
                return None, parts[-1], None, errno.ENOENT
            if isinstance(node, File):
                return None, parts[-1], None, errno.ENOTDIR
            d = node
        return d, parts[-1], d.get(parts[-1]), 0

    def _run(self, cpu: int, name: str, *args):
        return self.kernel.run(_call, name, *args, cpu=cpu)

    def _full(self, path: str) -> str:
        return f"{self.root}/{path}"

    # -- rules --------------------------------------------------------------------------

    @rule(path=PATHS, cpu=st.integers(0, NCPU - 1))
    def mkdir(self, path, cpu):
        d, name, node, err = self._lookup(path)
        want = ("errno", err) if err else ("errno", errno.EEXIST) if node is not None else None
        assert self._run(cpu, "mkdir", self._full(path), 0o755) == want
        if want is None:
            d[name] = {}

    @rule(path=PATHS, data=st.binary(max_size=64), cpu=st.integers(0, NCPU - 1))
    def create(self, path, data, cpu):
        d, name, node, err = self._lookup(path)
        want = ("errno", err) if err else ("errno", errno.EEXIST) if node is not None else None
        assert self.kernel.run(_create, self._full(path), data, cpu=cpu) == want
        if want is None:
            d[name] = File(data)

    @rule(path=PATHS, cpu=st.integers(0, NCPU - 1))
    def unlink(self, path, cpu):
        d, name, node, err = self._lookup(path)
        if err or node is None:
            want = ("errno", err or errno.ENOENT)
        elif not isinstance(node, File):
            want = ("errno", errno.EPERM)
        else:
            want = None
        assert self._run(cpu, "unlink", self._full(path)) == want
        if want is None:
            del d[name]

    @rule(path=PATHS, cpu=st.integers(0, NCPU - 1))
    def rmdir(self, path, cpu):
        d, name, node, err = self._lookup(path)
        if err or node is None:
            want = ("errno", err or errno.ENOENT)
        elif isinstance(node, File):
            want = ("errno", errno.ENOTDIR)
        elif node:
            want = ("errno", errno.ENOTEMPTY)
        else:
            want = None
        assert self._run(cpu, "rmdir", self._full(path)) == want
        if want is None:
            del d[name]

    @rule(src=PATHS, dst=PATHS, cpu=st.integers(0, NCPU - 1))
    def link(self, src, dst, cpu):
        _, _, snode, serr = self._lookup(src)
        dd, dname, dnode, derr = self._lookup(dst)
        if serr or snode is None:
            want = ("errno", serr or errno.ENOENT)
        elif derr:
            want = ("errno", derr)
        elif not isinstance(snode, File):
            want = ("errno", errno.EPERM)
        elif dnode is not None:
            want = ("errno", errno.EEXIST)
        else:
            want = None
        assert self._run(cpu, "link", self._full(src), self._full(dst)) == want
        if want is None:
            dd[dname] = snode

    @rule(src=PATHS, dst=PATHS, cpu=st.integers(0, NCPU - 1))
    def rename(self, src, dst, cpu):
        want = self._rename_outcome(src, dst)
        assert self._run(cpu, "rename", self._full(src), self._full(dst)) == want
        if want is None:
            sd, sname, snode, _ = self._lookup(src)
            dd, dname, dnode, _ = self._lookup(dst)
            if snode is not dnode:
                del sd[sname]
                dd[dname] = snode

    def _rename_outcome(self, src, dst):
        _, _, snode, serr = self._lookup(src)
        _, _, dnode, derr = self._lookup(dst)
        if serr or derr:
            return ("errno", serr or derr)
        if snode is None:
            return ("errno", errno.ENOENT)
        if snode is dnode:
            return None
        src_dir = not isinstance(snode, File)
        if dnode is not None:
            if src_dir and isinstance(dnode, File):
                return ("errno", errno.ENOTDIR)
            if not src_dir and not isinstance(dnode, File):
                return ("errno", errno.EISDIR)
            if src_dir and dnode:
                return ("errno", errno.ENOTEMPTY)
        if src_dir and (dst + "/").startswith(src + "/"):
            return ("errno", errno.EINVAL)
        return None

    @rule(path=PATHS, data=st.binary(max_size=64), cpu=st.integers(0, NCPU - 1))
    def append(self, path, data, cpu):
        from rumpmp.kern import O_APPEND, O_WRONLY

        _, _, node, err = self._lookup(path)
        got = self.kernel.run(_append, self._full(path), data, O_WRONLY | O_APPEND, cpu=cpu)
        if err or node is None:
            assert got == ("errno", err or errno.ENOENT)
        elif not isinstance(node, File):
            assert got == ("errno", errno.EISDIR)
        else:
            assert got == len(data)
            node.data += data

    # -- the check ----------------------------------------------------------------------------

    @invariant()
    def the_kernel_agrees(self):
        if not hasattr(self, "root"):
            return
        got = self.kernel.run(_snapshot, self.root)
        assert _shape(got) == _model_shape(self.tree, _link_counts(self.tree))
        inodes: dict[int, int] = {}
        _same_file_same_inode(got, self.tree, inodes, {})


def _append(path, data, flags):
    from rumpmp.kern import rump_sys_close, rump_sys_open, rump_sys_write

    try:
        fd = rump_sys_open(path, flags)
    except OSError as e:
        return ("errno", e.errno)
    try:
        return rump_sys_write(fd, data)
    finally:
        rump_sys_close(fd)


def _link_counts(tree, counts=None):
    counts = {} if counts is None else counts
    for node in tree.values():
        if isinstance(node, File):
            counts[id(node)] = counts.get(id(node), 0) + 1
        else:
            _link_counts(node, counts)
    return counts


def _model_shape(tree, counts):
    out = {}
    for name, node in tree.items():
        if isinstance(node, File):
            out[name] = (counts[id(node)], node.data)
        else:
            subdirs = sum(not isinstance(n, File) for n in node.values())
            out[name] = (_model_shape(node, counts), 2 + subdirs)
    return out


def _shape(got):
    return {name: (v[1], v[2]) if len(v) == 3 else (_shape(v[0]), v[1]) for name, v in got.items()}


def _same_file_same_inode(got, tree, by_ino, by_id):
    for name, node in tree.items():
        if isinstance(node, File):
            ino = got[name][0]
            assert by_ino.setdefault(ino, id(node)) == id(node)
            assert by_id.setdefault(id(node), ino) == ino
        else:
            _same_file_same_inode(got[name][0], node, by_ino, by_id)


@pytest.mark.timeout(300)
def test_the_file_system_behaves_like_its_model(rump_boot):
    FileSystemModel.kernel = rump_boot(NCPU)
    run = FileSystemModel.TestCase
    run.settings = settings(
        max_examples=40,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    run().runTest()
