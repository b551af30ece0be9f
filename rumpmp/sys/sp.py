"""The sysproxy server's shared state: fork cookies, and what the host tells a CPU
when it hands a connection over."""

import struct

#: Fork cookies waiting for their FORK handshake, at most (rump keeps a list per
#: client; one table serves every client here, guarded by proc_lock).
NCOOKIE = 128
# cookie record words
C_PID = 0  # the process the child's connection is forked from (0: a free record)
C_EXPIRES = 1  # monotonic ns after which the cookie is refused
C_COOKIE = 2  # 2 words: the cookie's 16 bytes
COOKIE_WORDS = 4

REGIONS = [("spcookie", NCOOKIE * COOKIE_WORDS * 8)]

#: A connection handed to a CPU: its process (pid, and the lwp context that keeps
#: the process until the connection's first lwp runs in it), the server it came
#: from, that server's limits per client (calls in flight, bytes of requests) and how
#: long its fork cookies live (ns).
HANDOVER = struct.Struct("<qqqqqq")
#: Sent alone: the server with this number has closed; its connections end.
CLOSE = struct.Struct("<q")
