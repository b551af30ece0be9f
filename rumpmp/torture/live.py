"""The live view of a torture run on a terminal (rich): progress over the duration,
acquisitions per second on each CPU, and the violations so far."""

from __future__ import annotations

from types import TracebackType

from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from rumpmp.torture.driver import Params, Snapshot


class Display:
    """A rich Live display fed with a snapshot about twice a second."""

    def __init__(self, p: Params) -> None:
        self.p = p
        self.progress = Progress(
            TextColumn(f"{p.type}-torture, seed {p.seed}"), BarColumn(), TimeRemainingColumn()
        )
        self.task = self.progress.add_task("run", total=p.duration)
        self.last: Snapshot | None = None
        self.live = Live(self._render(None), refresh_per_second=4, transient=True)

    def __enter__(self) -> Display:
        self.live.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.live.__exit__(kind, value, tb)

    def update(self, snap: Snapshot) -> None:
        self.progress.update(self.task, completed=snap.elapsed)
        self.live.update(self._render(snap))
        self.last = snap

    def _render(self, snap: Snapshot | None) -> Group:
        table = Table("cpu", "acquisitions/s", title="per CPU")
        if snap is not None:
            before = self.last.per_cpu if self.last else [0] * len(snap.per_cpu)
            span = snap.elapsed - (self.last.elapsed if self.last else 0.0) or 1.0
            for cpu, (now, then) in enumerate(zip(snap.per_cpu, before, strict=True)):
                table.add_row(f"cpu{cpu}", f"{(now - then) / span:,.0f}")
            fails = snap.writes.fail + (snap.reads.fail if snap.reads else 0)
            table.caption = f"violations so far: {fails}" + (" !!!" if fails else "")
        return Group(self.progress, table)
