"""The tests get their kernels from rumpmp's own pytest plugin (rump_kernel, rump_boot:
halted and checked for leaks after each test); pyproject.toml sets rump_ncpu = 4."""

from __future__ import annotations

import os

# LOCKDEBUG is on in tests (each kernel reads it at boot); benchmarks leave it off.
os.environ.setdefault("RUMP_LOCKDEBUG", "1")
