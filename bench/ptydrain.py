#!/usr/bin/env python3
"""Runs a command with a PTY as its terminal and discards what it prints, as fast as it can read.

Used by bench/record.sh so that ddcoterm, script(1) and asciinema all relay to a real terminal whose reader is
never the bottleneck. Exits with the command's status.
"""
import os
import pty
import sys

pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
while True:
    try:
        if not os.read(fd, 1 << 16):
            break
    except OSError:
        break
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
