"""The base of every kernel object handle (a lock, a callout, a softint, a counter).

A handle is a small object naming a record in shared memory.  It pickles by
reference, by the arguments it was built from, so a handle made on one CPU names
the same object in every process that unpickles it; and it prints as
``<class what>``.  Subclasses say which arguments (``_args``) and what (``_what``).
"""

from __future__ import annotations


class Handle:
    __slots__ = ()

    def _args(self) -> tuple:
        """The constructor's arguments that rebuild this handle in another process."""
        raise NotImplementedError

    def _what(self) -> str:
        """What to show after the class name."""
        raise NotImplementedError

    def __reduce__(self) -> tuple:
        return (type(self), self._args())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._what()}>"
