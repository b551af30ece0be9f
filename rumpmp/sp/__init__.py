"""The sysproxy server (rump_sp(7)): a kernel's system calls for other programs.

``wire`` is the protocol (frames, banner, values), shared with the client library;
``server`` the host side (accepting, the handshake, handing connections to the
CPUs); ``spserve`` the CPUs' side (the lwps that read and run a client's calls);
``spkern`` what serving a client asks of the kernel."""
