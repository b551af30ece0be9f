"""Layouts and constants only, as NetBSD's sys/*.h: what a record in shared memory
looks like and what its fields mean.  Nothing here imports the kernel, so any module
may take a constant from here without pulling in the code that uses it."""
