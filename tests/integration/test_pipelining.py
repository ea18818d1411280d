"""Pipelining (RFC 2449): commands sent together are answered in order, and
whatever the client pipelined behind its PASS reaches the backend in order
after the backend login.  Includes 1000 commands sent before the greeting is
read, pre-login and post-login, against pop3-synth and a real Dovecot."""

import time
import unittest

import harness
from harness import RawClient, make_message

USER, PW = "alice@example.com", "Pipe-Pw-1"
DEL_USER = "deleter@example.com"
BIG_USER = "many@example.com"
DOVE_USER, DOVE_PW = "carol@dove.example", "Pipe-Dove-2"
DOVE_MSGS = [make_message(500 + i, s) for i, s in enumerate([400, 3000, 9000])]

res = harness.ModuleResources()
synth = dovecot = popgate = None


def setUpModule():
    global synth, dovecot, popgate
    try:
        synth = res.add(harness.Synth({USER: PW, DEL_USER: PW, BIG_USER: PW},
                                      sizes=[700, 1400, 2800]))
        dovecot = harness.Dovecot()
        dovecot.add_user(DOVE_USER, DOVE_PW, DOVE_MSGS)
        res.add(dovecot)
        popgate = res.add(harness.Popgate([
            harness.Tenant("example-com", ["example.com"], [synth.address],
                           users={USER: PW, DEL_USER: PW, BIG_USER: PW}),
            harness.Tenant("dove", ["dove.example"], [dovecot.address],
                           users={DOVE_USER: DOVE_PW}),
        ]))
    except Exception:
        res.close()
        raise


def tearDownModule():
    res.close()


def is_multiline(cmd: str) -> bool:
    parts = cmd.split()
    verb = parts[0].upper() if parts else ""
    return verb in ("CAPA", "RETR", "TOP") or (verb in ("LIST", "UIDL") and len(parts) == 1)


def read_responses(c: RawClient, cmds: list[str]) -> list[tuple[bytes, bytes | None]]:
    out = []
    for cmd in cmds:
        r = c.readline()
        body = c.read_multiline() if r.startswith(b"+OK") and is_multiline(cmd) else None
        out.append((r, body))
    return out


def direct_transcript(port: int, user: str, pw: str, cmds: list[str]):
    """The same commands one at a time, straight to the backend."""
    with RawClient(port) as c:
        out = [(c.cmd(f"USER {user}"), None)]
        for cmd in [f"PASS {pw}"] + cmds:
            c.send(cmd.encode() + b"\r\n")
            out += read_responses(c, [cmd])
        return out


class Pipelining(harness.IntegrationTestCase):
    CMDS = ["STAT", "LIST", "UIDL", "RETR 1", "TOP 2 0", "LIST 3", "UIDL 2", "NOOP", "CAPA",
            "RETR 3", "QUIT"]

    def _all_in_one(self, port_direct, user, pw, read_greeting_first):
        cmds = [f"USER {user}", f"PASS {pw}"] + self.CMDS
        c = self.raw(popgate.port, read_greeting=read_greeting_first, timeout=20)
        c.send("".join(x + "\r\n" for x in cmds).encode())
        if not read_greeting_first:
            self.assertEqual(c.readline(), b"+OK popgate ready.\r\n")
        got = read_responses(c, cmds)
        self.assertEqual(c.read_until_closed(5), b"", "connection must close after QUIT")
        want = direct_transcript(port_direct, user, pw, self.CMDS)
        self.assertTrue(got[0][0].startswith(b"+OK"), got[0])
        # From PASS on, everything is the backend's own answer, in order.
        for i, (g, w) in enumerate(zip(got[1:], want[1:]), 1):
            self.assertEqual(g, w, f"response to {cmds[i]!r}")
        return got

    def test_synth_all_in_one_send(self):
        got = self._all_in_one(synth.port, USER, PW, True)
        self.assertBytesEqual(got[5][1], synth.dump(USER, 1), "pipelined RETR 1")

    def test_synth_all_in_one_send_before_greeting(self):
        self._all_in_one(synth.port, USER, PW, False)

    def test_dovecot_all_in_one_send(self):
        got = self._all_in_one(dovecot.port, DOVE_USER, DOVE_PW, False)
        self.assertBytesEqual(got[5][1], DOVE_MSGS[0], "pipelined RETR 1 (Dovecot)")
        self.assertBytesEqual(got[11][1], DOVE_MSGS[2], "pipelined RETR 3 (Dovecot)")

    def test_pipeline_then_half_close(self):
        # Like `printf 'USER..PASS..RETR 1..QUIT' | nc -N`: the client sends
        # everything and its FIN before reading anything.  popgate must still
        # log in, deliver the commands and return every answer.
        import socket as _s
        cmds = [f"USER {USER}", f"PASS {PW}", "STAT", "RETR 1", "QUIT"]
        c = self.raw(popgate.port, read_greeting=False, timeout=20)
        c.send("".join(x + "\r\n" for x in cmds).encode())
        c.sock.shutdown(_s.SHUT_WR)
        self.assertTrue(c.readline().startswith(b"+OK popgate"))
        got = read_responses(c, cmds)
        self.assertEqual(got[2][0], b"+OK 3 4900\r\n")
        self.assertBytesEqual(got[3][1], synth.dump(USER, 1), "RETR after client FIN")
        self.assertTrue(got[4][0].startswith(b"+OK"), got[4])

    def test_capa_before_and_after_login(self):
        cmds = ["CAPA", f"USER {USER}", f"PASS {PW}", "CAPA", "QUIT"]
        c = self.raw(popgate.port)
        c.send("".join(x + "\r\n" for x in cmds).encode())
        got = read_responses(c, cmds)
        self.assertIn(b"IMPLEMENTATION popgate", got[0][1])
        self.assertIn(b"IMPLEMENTATION pop3-synth", got[3][1], "after login CAPA is the backend's")

    def test_failed_pass_then_retry_pipelined(self):
        cmds = [f"USER {USER}", "PASS wrong", "STAT", f"USER {USER}", f"PASS {PW}", "STAT", "QUIT"]
        c = self.raw(popgate.port)
        c.send("".join(x + "\r\n" for x in cmds).encode())
        got = read_responses(c, cmds)
        self.assertTrue(got[1][0].startswith(b"-ERR [AUTH]"), got[1])
        self.assertTrue(got[2][0].startswith(b"-ERR"), "STAT before login is popgate's -ERR")
        self.assertTrue(got[4][0].startswith(b"+OK"), got[4])
        self.assertEqual(got[5][0], b"+OK 3 4900\r\n")
        self.assertTrue(got[6][0].startswith(b"+OK"))

    def test_pipelined_dele_quit_deletes(self):
        cmds = [f"USER {DEL_USER}", f"PASS {PW}", "DELE 1", "DELE 2", "QUIT"]
        c = self.raw(popgate.port)
        c.send("".join(x + "\r\n" for x in cmds).encode())
        got = read_responses(c, cmds)
        self.assertTrue(all(r.startswith(b"+OK") for r, _ in got), got)
        c.read_until_closed(5)

        def stat():
            c2 = RawClient(popgate.port)
            try:
                r = c2.login(DEL_USER, PW)
                return c2.cmd("STAT") if r.startswith(b"+OK") else None
            finally:
                c2.close()
        self.assertEqual(harness.wait_until(stat, 5, 0.1), b"+OK 1 2800\r\n")

    def test_1000_commands_after_pass_before_greeting(self):
        body = ["STAT", "NOOP", "LIST 2", "UIDL 1"] * 250
        cmds = [f"USER {BIG_USER}", f"PASS {PW}"] + body + ["QUIT"]
        c = self.raw(popgate.port, read_greeting=False, timeout=30)
        c.send("".join(x + "\r\n" for x in cmds).encode())
        self.assertTrue(c.readline().startswith(b"+OK popgate"))
        got = read_responses(c, cmds)
        want = {"STAT": b"+OK 3 4900\r\n", "LIST 2": b"+OK 2 1400\r\n"}
        for cmd, (r, _) in zip(cmds, got):
            self.assertTrue(r.startswith(b"+OK"), f"{cmd} -> {r!r}")
            if cmd in want:
                self.assertEqual(r, want[cmd], cmd)
        self.assertEqual(c.read_until_closed(5), b"")

    def test_5000_commands_behind_pass_with_concurrent_reading(self):
        # ~40 KB pipelined behind PASS: more than any small pre-login buffer;
        # popgate may apply backpressure but must deliver all of it in order.
        import threading
        body = [f"LIST {1 + i % 3}" for i in range(5000)]
        cmds = [f"USER {BIG_USER}", f"PASS {PW}"] + body + ["QUIT"]
        c = self.raw(popgate.port, timeout=30)
        data = "".join(x + "\r\n" for x in cmds).encode()
        err = []
        def sender():
            try:
                c.sock.sendall(data)
            except OSError as e:
                err.append(e)
        t = threading.Thread(target=sender, daemon=True)
        t.start()
        got = read_responses(c, cmds)
        t.join(10)
        self.assertEqual(err, [])
        sizes = {1: 700, 2: 1400, 3: 2800}
        for i, (r, _) in enumerate(got[2:-1]):
            n = 1 + i % 3
            self.assertEqual(r, f"+OK {n} {sizes[n]}\r\n".encode(), f"answer #{i}")
        self.assertTrue(got[-1][0].startswith(b"+OK"))

    def test_1000_prelogin_commands_before_greeting(self):
        cmds = (["NOOP", "CAPA", "STAT", "FOO bar"] * 250)
        c = self.raw(popgate.port, read_greeting=False, timeout=30)
        c.send("".join(x + "\r\n" for x in cmds).encode())
        self.assertTrue(c.readline().startswith(b"+OK popgate"))
        answered = 0
        closed = False
        try:
            for cmd in cmds:
                r, body = read_responses(c, [cmd])[0]
                if cmd == "CAPA":
                    self.assertTrue(r.startswith(b"+OK"), r)
                    self.assertIn(b"IMPLEMENTATION popgate", body)
                else:
                    self.assertTrue(r.startswith(b"-ERR"), f"{cmd} -> {r!r}")
                answered += 1
        except harness.ConnectionClosed:
            closed = True  # allowed: a clean close (FIN), after well-formed answers
        except ConnectionResetError:
            self.fail(f"connection RESET after {answered} well-formed answers: popgate "
                      "closed while the client's pipelined input was still unread "
                      "(needs shutdown(SHUT_WR) + drain, i.e. a lingering close), so "
                      "the client may lose the last responses")
        if not closed:
            self.assertEqual(answered, 1000)
            self.assertTrue(c.login(USER, PW).startswith(b"+OK"), "connection still usable")
            self.assertTrue(c.cmd("STAT").startswith(b"+OK 3 "))
            c.cmd_ok("QUIT")
        # Either way a new session works.
        with RawClient(popgate.port) as c2:
            self.assertTrue(c2.login(USER, PW).startswith(b"+OK"))
            c2.cmd_ok("QUIT")


if __name__ == "__main__":
    unittest.main()
