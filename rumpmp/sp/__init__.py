"""The sysproxy server (rump_sp(7)): a kernel's system calls for other programs.

``wire`` is the protocol (frames, banner, values), shared with the client library;
``server`` the server, which runs in the kernel's host process; ``spkern`` what it
asks of the kernel for a client."""
