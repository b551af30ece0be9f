"""The kernel reaches the host only through hypercalls (ARCHITECTURE.md section 1)."""

from __future__ import annotations

import ast
import pathlib

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
}

#: Modules that may touch the host directly, and what for.
ALLOWED = {
    "__main__.py": {"signal", "sys"},  # the CLI waits for SIGINT/SIGTERM and writes to stdio
    "client.py": {"threading"},  # the client library guards stopping a kernel with a lock
}

KERNEL = pathlib.Path(__file__).resolve().parent.parent / "rumpmp"


def imported_modules(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_kernel_imports_no_host_module():
    files = sorted(KERNEL.glob("*.py"))
    assert len(files) > 5
    offenders = {}
    for f in files:
        bad = (imported_modules(f) & HOST_MODULES) - ALLOWED.get(f.name, set())
        if bad:
            offenders[f.name] = sorted(bad)
    assert offenders == {}


def test_the_check_catches_a_host_import(tmp_path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("import os\nfrom time import sleep\n")
    assert imported_modules(sneaky) & HOST_MODULES == {"os", "time"}
