"""Embedding: a concurrent.futures Executor on a kernel's CPUs, and a joblib backend.

``KernelExecutor`` runs tasks on the CPUs of a rump kernel; ``CPUDied`` is what a task
gets when its CPU dies; ``register_joblib()`` makes ``"rumpmp"`` a joblib backend.
"""

from rumpmp.futures.executor import CPUDied, KernelExecutor


def register_joblib() -> None:
    """Register the ``"rumpmp"`` joblib backend (joblib is an optional extra).  Its
    kernels outlive a ``Parallel`` call, for the next one, until ``shutdown_joblib()``
    or the host's exit."""
    from rumpmp.futures.joblib_backend import register  # noqa: PLC0415 - joblib is optional

    register()


def shutdown_joblib() -> None:
    """Halt the kernels the joblib backend keeps (it boots new ones when used again)."""
    from rumpmp.futures.joblib_backend import shutdown_all  # noqa: PLC0415 - joblib is optional

    shutdown_all()


__all__ = ["CPUDied", "KernelExecutor", "register_joblib", "shutdown_joblib"]
