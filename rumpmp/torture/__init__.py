"""The torture suite (``python -m rumpmp stress``): locktorture for a rump kernel.

``run(type, ncpu=..., duration=..., seed=...)`` boots a fresh kernel, hammers one kind
of lock or kernel service from writer and reader lwps on every CPU, checks each
acquisition for a violation, and returns a ``Result``; ``self_check()`` runs the
deliberately broken lock, which must fail.
"""

from rumpmp.torture.driver import TYPES, Counts, Failure, Params, Result, Snapshot, run, self_check

__all__ = ["TYPES", "Counts", "Failure", "Params", "Result", "Snapshot", "run", "self_check"]
