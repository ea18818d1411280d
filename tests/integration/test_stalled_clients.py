"""Clients that send RETR for a big message and stop reading cost the host's
TCP memory (issue 8, item 16): through popgate each one held about 5.7 MiB
of kernel socket memory (8 MiB on this test's kernel: the client's send
queue plus the backend's receive queue, both autotuned).  With
server.forward_socket_buffer popgate bounds what both sockets may queue once
forwarding starts: 50 stalled sessions must stay under a generous bound per
session, read from `ss -tm` for popgate's own sockets."""

import re
import shutil
import socket
import subprocess
import time
import unittest

import harness

PW = "Stalled-Pw"
SESSIONS = 50
BUFFER = 524288
# Per session: about BUFFER unsent bytes in the client's send queue
# (TCP_NOTSENT_LOWAT) plus the backend socket's receive buffer (SO_RCVBUF,
# doubled by the kernel): 1.5 MiB measured.  Autotuned: 7-8 MiB.
BOUND = 3 * 1024 * 1024

SKMEM = re.compile(r"skmem:\(r(\d+),rb\d+,t\d+,tb\d+,f(\d+),w(\d+)")


def socket_memory(pid: int) -> tuple[int, int]:
    """(bytes, sockets): receive + send queue + forward allocation of every
    TCP socket of process `pid`."""
    out = subprocess.run(["ss", "-tmnp"], capture_output=True, text=True,
                         timeout=20).stdout.splitlines()
    total = sockets = 0
    for i, line in enumerate(out):
        if f"pid={pid}," not in line:
            continue
        m = SKMEM.search(line) or (SKMEM.search(out[i + 1]) if i + 1 < len(out) else None)
        if m:
            r, f, w = map(int, m.groups())
            total += r + f + w
            sockets += 1
    return total, sockets


@unittest.skipUnless(shutil.which("ss"), "ss (iproute2) not installed")
class StalledClients(harness.IntegrationTestCase):

    def test_stalled_sessions_hold_bounded_socket_memory(self):
        users = {f"s{i}@stall.example": PW for i in range(SESSIONS)}
        synth = self.start_synth(users, sizes=["32m"])
        p = self.start_popgate(
            [harness.Tenant("stall", ["stall.example"], [synth.address], users=users)],
            server={"forward_socket_buffer": BUFFER})
        clients = []
        for user in users:
            c = self.raw(p.port, timeout=30)
            # A small window: the client's own buffer is not what is measured.
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            self.assertTrue(c.login(user, PW).startswith(b"+OK"))
            c.send(b"RETR 1\r\n")
            clients.append(c)
        # Wait until the buffers have filled (the figure stops moving).
        last, stable, deadline = -1, 0, time.monotonic() + 30
        while stable < 4 and time.monotonic() < deadline:
            time.sleep(0.5)
            total, sockets = socket_memory(p.proc.pid)
            stable = stable + 1 if total == last else 0
            last = total
        self.assertGreaterEqual(sockets, 2 * SESSIONS, "popgate's sockets not found")
        per_session = total / SESSIONS
        print(f"\n{SESSIONS} stalled sessions: {total / 2**20:.1f} MiB of socket memory "
              f"in popgate, {per_session / 2**20:.2f} MiB per session")
        self.assertGreater(total, SESSIONS * 256 * 1024, "the sessions did not stall")
        self.assertLess(per_session, BOUND,
                        f"{per_session / 2**20:.2f} MiB of kernel socket memory per "
                        f"stalled session")
        # They are still sessions: reading resumes the transfer.
        c = clients[0]
        c.sock.settimeout(30)
        got = c.sock.recv(65536)
        self.assertTrue(got.startswith(b"+OK"), got[:40])
        for c in clients:
            c.close()


if __name__ == "__main__":
    unittest.main()
