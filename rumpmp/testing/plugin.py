"""The pytest plugin (entry point ``pytest11``: installing rumpmp is enough).

Fixtures:

- ``rump_kernel``: a fresh kernel for the test, halted after it.  Its parameters come
  from the marker ``@pytest.mark.rump(ncpu=8, lockdebug=True, hz=100, perturb=SEED)``,
  else from ``--rump-ncpu`` / ``--rump-lockdebug`` / ``--rump-perturb`` (or the ini
  keys ``rump_ncpu``, ``rump_lockdebug``, ``rump_perturb``), else from RUMP_* and the
  host.  ``perturb`` turns on the stress suite's seeded perturbation on every CPU.
- ``rump_boot``: a function that boots kernels for the test, each halted after it.
- ``rump_kernel_session``: one kernel for the whole session.
- ``rump_torture``: a function that runs a torture type (``torture.run``'s
  arguments) and fails the test with the run's report and replay command if the
  run fails.

After every test, every kernel the test booted must be halted with nothing of it
left in /dev/shm: a leak fails the test with the names, and the kernel is halted so
the next test starts clean.  A failing test's report has a ``rumpmp`` section with
the kernel's dmesg, its panic and the perturbation seed.  Under pytest-xdist the
object names carry the worker id (RUMP_NAMETAG).
"""

from __future__ import annotations

import contextlib
import os  # host side: the xdist worker id goes into RUMP_NAMETAG
import time  # host side: waits, bounded, for a new kernel to settle
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

from hypercalls import shm
from rumpmp.host import kernel as kernel_
from rumpmp.host.kernel import Kernel
from rumpmp.rumpkern.base.prf import RumpPanic

PARAMS = ("ncpu", "lockdebug", "hz", "perturb")
SETTLE_SECONDS = 30.0
_KERNELS = pytest.StashKey[list[Kernel]]()
_MARK = pytest.StashKey[int]()
_seeds: dict[str, int] = {}  # perturbation seed by kernel prefix


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rumpmp", "rump kernels for tests (rumpmp)")
    group.addoption(
        "--rump-ncpu",
        type=int,
        help="CPUs of each test's kernel (default: RUMP_NCPU, else the host's)",
    )
    group.addoption(
        "--rump-lockdebug",
        action="store_true",
        default=None,
        help="boot the kernels with LOCKDEBUG",
    )
    group.addoption(
        "--rump-perturb", type=int, metavar="SEED", help="seeded perturbation on the kernels' CPUs"
    )
    parser.addini("rump_ncpu", "CPUs of each test's kernel")
    parser.addini("rump_lockdebug", "boot the kernels with LOCKDEBUG", type="bool", default=None)
    parser.addini("rump_perturb", "seeded perturbation on the kernels' CPUs (a seed)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "rump(ncpu=None, lockdebug=None, hz=None, perturb=None): the rump_kernel's parameters",
    )
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        os.environ["RUMP_NAMETAG"] = worker


def _defaults(config: pytest.Config) -> dict[str, Any]:
    """The session's parameters: options first, then ini keys."""
    out: dict[str, Any] = {}
    for name in ("ncpu", "lockdebug", "perturb"):
        value = config.getoption(f"rump_{name}")
        if value is None:
            value = config.getini(f"rump_{name}")
            if value in ("", None):
                continue
            if name != "lockdebug":
                value = int(value)
        out[name] = value
    return out


def pytest_report_header(config: pytest.Config) -> str:
    d = _defaults(config)
    ncpu = d.get("ncpu", os.environ.get("RUMP_NCPU", "host"))
    lockdebug = d.get("lockdebug", os.environ.get("RUMP_LOCKDEBUG") == "1")
    line = f"rumpmp: ncpu={ncpu} lockdebug={'on' if lockdebug else 'off'}"
    return line + (f" perturb={d['perturb']}" if "perturb" in d else "")


def _params(request: pytest.FixtureRequest) -> dict[str, Any]:
    params = _defaults(request.config)
    marker = request.node.get_closest_marker("rump")
    if marker is not None:
        if marker.args:
            raise pytest.UsageError("@pytest.mark.rump takes keyword arguments only")
        unknown = set(marker.kwargs) - set(PARAMS)
        if unknown:
            raise pytest.UsageError(f"@pytest.mark.rump: unknown parameters {sorted(unknown)}")
        params.update(marker.kwargs)
    return params


def _boot(node: pytest.Item | pytest.Session, params: dict[str, Any]) -> Kernel:
    perturb = params.pop("perturb", None)
    k = kernel_.boot(**params)
    node.stash.setdefault(_KERNELS, []).append(k)
    _settle(k)
    if perturb is not None:
        _seeds[k.prefix] = perturb
        from rumpmp.torture.lwps import perturb_on  # noqa: PLC0415 - only when asked for

        k.xc_broadcast(0, perturb_on, perturb)
    return k


def _settle(k: Kernel, bound: float = SETTLE_SECONDS) -> None:
    """Wait until the kernel threads started at boot have run up to their first sleep
    (no CPU has an lwp waiting to start, every CPU is idle), so that a test starts
    from a quiet kernel whose heap counts hold still."""
    deadline = time.monotonic() + bound
    while any(s["unstarted"] or s["curlwp"] for s in k.sched_stats()):
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"rumpmp: the boot threads of {k.prefix} did not settle in {bound} s"
            )
        time.sleep(0.002)


@pytest.fixture
def rump_boot(request: pytest.FixtureRequest) -> Iterator[Callable[..., Kernel]]:
    """``rump_boot(ncpu=None, **boot_args)``: boot kernels for this test; each is
    halted after it and checked for leaks."""

    def boot(ncpu: int | None = None, **kwargs: Any) -> Kernel:
        params = {**_params(request), **kwargs}
        if ncpu is not None:
            params["ncpu"] = ncpu
        return _boot(request.node, params)

    yield boot
    _halt_all(request.node)


@pytest.fixture
def rump_kernel(request: pytest.FixtureRequest) -> Iterator[Kernel]:
    """A fresh kernel for this test (parameters: the ``rump`` marker, the options)."""
    k = _boot(request.node, _params(request))
    yield k
    _halt_all(request.node)


@pytest.fixture
def rump_torture() -> Callable[..., Any]:
    """``rump_torture(type, **params)``: run a torture type (a TortureType subclass or
    a name) as ``torture.run`` does; a failing run fails the test with its report and
    the command that replays it.  Returns the Result."""

    def run(type_: Any, **params: Any) -> Any:
        from rumpmp import torture  # noqa: PLC0415 - the suite loads when a test uses it

        result = torture.run(type_, **params)
        if not result.success:
            pytest.fail("\n".join(result.lines()), pytrace=False)
        return result

    return run


@pytest.fixture(scope="session")
def rump_kernel_session(request: pytest.FixtureRequest) -> Iterator[Kernel]:
    """One kernel for the whole session (parameters from the options only)."""
    k = _boot(request.session, _defaults(request.config))
    yield k
    _halt_all(request.session)


def _halt_all(node: pytest.Item | pytest.Session) -> None:
    for k in node.stash.get(_KERNELS, []):
        with contextlib.suppress(RumpPanic):
            k.halt()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    item.stash[_MARK] = kernel_.boot_count()  # kernels the test body boots from here
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, None, None]:
    """After the fixtures are gone: the kernels of the plugin's fixtures and those the
    test body booted are halted and gone (a fixture of the user's that boots a kernel
    answers for it itself)."""
    result = yield
    leaks = []
    body = kernel_.booted_kernels(item.stash.get(_MARK, kernel_.boot_count()))
    for k in {k.prefix: k for k in [*item.stash.get(_KERNELS, []), *body]}.values():
        running = k.state == "running"
        with contextlib.suppress(Exception):
            k.halt()  # a panicked kernel's: waits for the release its watcher has begun
        if running:
            leaks.append(f"kernel {k.prefix} was left running (halted now)")
        left = shm.list_prefix(k.prefix)
        if left:
            shm.unlink_prefix(k.prefix)
            leaks.append(f"kernel {k.prefix} left {', '.join(left)}")
    if leaks:
        pytest.fail("rumpmp: leak after the test:\n  " + "\n  ".join(leaks), pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing test's report gets each of its kernels' dmesg, panic and seed."""
    report: pytest.TestReport = yield
    if report.failed and call.when == "call":
        for k in item.stash.get(_KERNELS, []):
            report.sections.append((f"rumpmp kernel {k.prefix}", _describe(k)))
    return report


def _describe(k: Kernel) -> str:
    lines = [f"state: {k.state}, {k.ncpu} CPUs"]
    seed = _seeds.get(k.prefix)
    if seed is not None:
        lines.append(f"perturbation seed: {seed} (replay with --rump-perturb {seed})")
    panic = k.panic
    if panic is not None:
        lines.append(f"panic: cpu{panic.cpu}: {panic.cause}")
    lines += ["dmesg:", k.dmesg().rstrip()]
    return "\n".join(lines)
