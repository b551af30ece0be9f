"""The file system under true parallelism (issue 14): kernel threads on 8 CPUs
create, link, rename and remove files in shared directories for a few seconds;
afterwards every name resolves, every link count is right and no file is lost
or left over.  The short version runs by default, the long one with -m soak."""

from __future__ import annotations

import pickle
import random

import pytest

from rumpmp.kern import O_RDONLY, S_IFDIR, S_IFMT
from tests.helpers import assert_no_leak

SHARED = [f"/s{i}" for i in range(4)]


def _worker(arg):
    """One kernel thread's share: its own files (named after it) in the shared
    directories.  Returns its model: file -> (its names, its contents)."""
    from rumpmp.kern import (
        O_CREAT,
        O_EXCL,
        O_WRONLY,
        getticks,
        rump_sys_close,
        rump_sys_link,
        rump_sys_mkdir,
        rump_sys_open,
        rump_sys_rename,
        rump_sys_rmdir,
        rump_sys_unlink,
        rump_sys_write,
    )

    me, seed, until = arg
    rnd = random.Random(seed)
    files: dict[int, tuple[list[str], bytes]] = {}
    subdir = None
    n = 0
    while getticks() < until:
        op = rnd.random()
        if op < 0.35 or not files:
            n += 1
            path = f"{rnd.choice(SHARED)}/w{me}_{n}"
            data = f"{me}:{n}:".encode() * rnd.randint(1, 50)
            fd = rump_sys_open(path, O_CREAT | O_EXCL | O_WRONLY, 0o644)
            rump_sys_write(fd, data)
            rump_sys_close(fd)
            files[n] = ([path], data)
        elif op < 0.6:  # rename one of its names into another shared directory
            k = rnd.choice(list(files))
            names, data = files[k]
            i = rnd.randrange(len(names))
            new = f"{rnd.choice(SHARED)}/w{me}_{k}_{rnd.randint(0, 9)}"
            if new in names:
                continue
            rump_sys_rename(names[i], new)
            names[i] = new
        elif op < 0.7:  # rename over another of its files: that one goes
            a, b = rnd.sample(list(files), 2) if len(files) > 1 else (None, None)
            if a is None or len(files[b][0]) > 1:
                continue
            rump_sys_rename(files[a][0][0], files[b][0][0])
            files[a][0][0] = files[b][0][0]
            del files[b]
        elif op < 0.8:
            k = rnd.choice(list(files))
            new = f"{rnd.choice(SHARED)}/w{me}_{k}_l{rnd.randint(0, 9)}"
            if new in files[k][0]:
                continue
            rump_sys_link(files[k][0][0], new)
            files[k][0].append(new)
        elif op < 0.95:
            k = rnd.choice(list(files))
            rump_sys_unlink(files[k][0].pop())
            if not files[k][0]:
                del files[k]
        elif subdir is None:
            subdir = f"{rnd.choice(SHARED)}/dir{me}"
            rump_sys_mkdir(subdir)
        else:
            rump_sys_rmdir(subdir)
            subdir = None
    fd = rump_sys_open(f"/models/{me}", O_CREAT | O_WRONLY, 0o644)  # a kthread returns nothing
    rump_sys_write(fd, pickle.dumps((files, subdir)))
    rump_sys_close(fd)


def run_workers(nworkers, ncpu, seconds, seed):
    from rumpmp.kern import (
        KTHREAD_MPSAFE,
        KTHREAD_MUSTJOIN,
        PRI_KTHREAD,
        getticks,
        hz,
        kthread_create,
        kthread_join,
        rump_sys_mkdir,
    )

    for d in [*SHARED, "/models"]:
        rump_sys_mkdir(d)
    until = getticks() + int(seconds * hz())
    lids = [
        kthread_create(
            PRI_KTHREAD,
            KTHREAD_MUSTJOIN | KTHREAD_MPSAFE,
            i % ncpu,
            _worker,
            (i, seed * 1000 + i, until),
            f"fs{i}",
        )
        for i in range(nworkers)
    ]
    for lid in lids:
        kthread_join(lid)


def check_tree(k, models):
    """Every name resolves, link counts match the names, contents are intact,
    nothing is missing and nothing is left over."""
    s = k.sys
    expected: dict[str, tuple[int, bytes]] = {}  # path -> (file key, data)
    subdirs = set()
    for me, (files, subdir) in enumerate(models):
        for key, (names, data) in files.items():
            for name in names:
                expected[name] = ((me, key), data)
        if subdir:
            subdirs.add(subdir)
    found: dict[str, object] = {}
    for d in SHARED:
        st = s.stat(d)
        mine = {f"{d}/{n}" for n in s.listdir(d)}
        assert st.st_nlink == 2 + len(mine & subdirs), d
        for path in sorted(mine):
            found[path] = s.lstat(path)
    assert set(found) == set(expected) | subdirs, "lost or extra names"
    names_of: dict[tuple, int] = {}
    for key, _ in expected.values():
        names_of[key] = names_of.get(key, 0) + 1
    by_file: dict[tuple, set[int]] = {}
    for path, (key, data) in expected.items():
        st = found[path]
        by_file.setdefault(key, set()).add(st.st_ino)
        assert st.st_nlink == names_of[key], path
        fd = s.open(path, O_RDONLY)
        assert s.read(fd, len(data) + 10) == data, path
        s.close(fd)
    assert all(len(inos) == 1 for inos in by_file.values())  # one node per file
    for d in subdirs:
        assert found[d].st_mode & S_IFMT == S_IFDIR


def _stress(rump_boot, seconds, seed):
    k = rump_boot(8)
    nworkers = 16
    k.run(run_workers, nworkers, 8, seconds, seed, timeout=seconds + 60)
    models = []
    for me in range(nworkers):
        fd = k.sys.open(f"/models/{me}", O_RDONLY)
        models.append(pickle.loads(k.sys.read(fd, 1 << 24)))
    assert sum(len(f) for f, _ in models) > 16  # every worker got going
    check_tree(k, models)
    k.halt()
    assert_no_leak(k.prefix)  # halting with thousands of files leaves nothing in /dev/shm
    return sum(len(f) for f, _ in models)


@pytest.mark.timeout(120)
def test_eight_cpus_churning_shared_directories_leave_a_consistent_tree(rump_boot):
    _stress(rump_boot, 3, seed=1)


@pytest.mark.soak
@pytest.mark.timeout(300)
def test_soak_eight_cpus_churning_shared_directories(rump_boot):
    _stress(rump_boot, 60, seed=2)
