"""Session logs: one JSON line per session on stderr with time, client,
tenant, user, backend, bytes_in, bytes_out, duration_ms and result; distinct
results for success and failures; JSON stays valid whatever the client sends
as a user name; and no password ever appears in popgate's output."""

import json
import time
import unittest

import harness
from harness import RawClient

PW = "Log-Secret-Pw-7fq2"            # file auth, correct
WRONG = "Wrong-Secret-Pw-9zz1"       # a wrong password that is tried
PIPE_PW = "Pipelined-Secret-Pw-44a"  # correct password of another user, pipelined
BE_PW = "Backend-Auth-Secret-5bb"    # auth=backend tenant
BE_WRONG = "Backend-Wrong-Secret-6cc"
USERS = {f"log{i}@example.com": PW for i in range(6)}
USERS["piper@example.com"] = PIPE_PW
BE_USER = "be@backend.example"
SIZES = [50000, 700]
ALL_PASSWORDS = [PW, WRONG, PIPE_PW, BE_PW, BE_WRONG]
KEYS = ("time", "client", "tenant", "user", "backend", "bytes_in", "bytes_out",
        "duration_ms", "result")

res = harness.ModuleResources()
synth = be_synth = popgate = None


def setUpModule():
    global synth, be_synth, popgate
    try:
        synth = res.add(harness.Synth(USERS, sizes=SIZES))
        be_synth = res.add(harness.Synth({BE_USER: BE_PW}, sizes=[300]))
        popgate = res.add(harness.Popgate([
            harness.Tenant("example-com", ["example.com"], [synth.address], users=USERS),
            harness.Tenant("be", ["backend.example"], [be_synth.address], auth="backend"),
            harness.Tenant("down", ["down.example"],
                           [f"{harness.LOOPBACK}:{harness.free_port()}"],
                           users={"d@down.example": PW}),
        ]))
    except Exception:
        res.close()
        raise


def tearDownModule():
    res.close()


class SessionLog(harness.IntegrationTestCase):

    def records_for(self, user, n=1, timeout=5.0):
        recs = harness.wait_until(lambda: (lambda r: r if len(r) >= n else None)(
            popgate.session_records(user=user)), timeout)
        self.assertTrue(recs, f"no session log line for {user}:\n" + popgate.stderr_text()[-2000:])
        return recs

    def assertWellFormed(self, rec):
        for k in KEYS:
            self.assertIn(k, rec, f"key {k} missing in {rec}")
        self.assertIsInstance(rec["bytes_in"], int)
        self.assertIsInstance(rec["bytes_out"], int)
        self.assertIsInstance(rec["duration_ms"], (int, float))
        self.assertGreaterEqual(rec["duration_ms"], 0)
        self.assertTrue(str(rec["client"]).startswith("127.0.0.1"), rec)
        self.assertIsInstance(rec["result"], str)
        self.assertTrue(rec["result"])
        self.assertTrue(rec["time"])

    def test_successful_session(self):
        user = "log0@example.com"
        with RawClient(popgate.port) as c:
            self.assertTrue(c.login(user, PW).startswith(b"+OK"))
            msg = c.retr(1)
            time.sleep(0.3)
            c.cmd_ok("QUIT")
            c.read_until_closed(5)
        (rec,) = self.records_for(user)
        self.assertWellFormed(rec)
        self.assertEqual(rec["tenant"], "example-com")
        self.assertEqual(rec["backend"], synth.address)
        self.assertGreaterEqual(rec["duration_ms"], 250)
        # Bytes each way: the RETR answer one way, the commands the other.
        self.assertGreaterEqual(max(rec["bytes_in"], rec["bytes_out"]), len(msg))
        self.assertGreaterEqual(min(rec["bytes_in"], rec["bytes_out"]), len(b"RETR 1\r\nQUIT\r\n"))
        self.assertLess(min(rec["bytes_in"], rec["bytes_out"]), 1000)

    def test_one_line_per_session(self):
        user = "log1@example.com"
        for _ in range(3):
            with RawClient(popgate.port) as c:
                c.login(user, PW)
                c.cmd_ok("QUIT")
                c.read_until_closed(5)
        time.sleep(0.3)
        self.assertEqual(len(self.records_for(user, 3)), 3)

    def test_results_differ(self):
        ok_user, bad_user = "log2@example.com", "log3@example.com"
        with RawClient(popgate.port) as c:
            c.login(ok_user, PW)
            c.cmd_ok("QUIT")
        with RawClient(popgate.port) as c:
            self.assertTrue(c.login(bad_user, WRONG).startswith(b"-ERR"))
            c.cmd("QUIT")
        with RawClient(popgate.port) as c:
            self.assertTrue(c.login("d@down.example", PW).startswith(b"-ERR [SYS/TEMP]"))
        ok = self.records_for(ok_user)[-1]
        bad = self.records_for(bad_user)[-1]
        down = self.records_for("d@down.example")[-1]
        for r in (ok, bad, down):
            self.assertWellFormed(r)
        self.assertEqual(len({ok["result"], bad["result"], down["result"]}), 3,
                         f"results must tell success, auth failure and backend failure "
                         f"apart: {ok['result']!r} {bad['result']!r} {down['result']!r}")
        self.assertEqual(bad["tenant"], "example-com")
        self.assertEqual(down["tenant"], "down")

    def test_backend_auth_tenant_logged(self):
        with RawClient(popgate.port) as c:
            self.assertTrue(c.login(BE_USER, BE_WRONG).startswith(b"-ERR [AUTH]"))
        with RawClient(popgate.port) as c:
            self.assertTrue(c.login(BE_USER, BE_PW).startswith(b"+OK"))
            c.cmd_ok("QUIT")
        recs = self.records_for(BE_USER, 2)
        self.assertEqual({r["tenant"] for r in recs}, {"be"})
        self.assertEqual(len({r["result"] for r in recs}), 2)

    def test_hostile_user_names_keep_json_valid(self):
        names = [b'q"uote@example.com', b"back\\slash@example.com", b"ctl\x01\x1f@example.com",
                 b"cr\rin@example.com", b"utf8-\xc3\xa9@example.com", b"bad-\xff\xfe@example.com",
                 b'x","user":"forged","y":"@example.com', b"tab\tin@example.com"]
        for n in names:
            with RawClient(popgate.port) as c:
                c.send(b"USER " + n + b"\r\n")
                r = c.readline()
                if r.startswith(b"+OK"):
                    c.cmd(f"PASS {WRONG}")
        time.sleep(0.5)
        bad_lines = []
        for line in popgate.stderr_bytes().split(b"\n"):
            if not line.strip():
                continue
            try:
                v = json.loads(line)
                if not isinstance(v, dict):
                    bad_lines.append(line)
            except ValueError:
                bad_lines.append(line)
        self.assertEqual(bad_lines, [], "stderr lines that are not JSON objects")
        self.assertFalse(popgate.session_records(user="forged"), "log injection via user name")

    def test_passwords_never_logged(self):
        # Exercise every path where a password passes through popgate.
        with RawClient(popgate.port) as c:  # pipelined behind PASS
            c.send(f"USER piper@example.com\r\nPASS {PIPE_PW}\r\nSTAT\r\nQUIT\r\n".encode())
            c.read_until_closed(5)
        with RawClient(popgate.port) as c:  # wrong, then right, same connection
            c.login("log4@example.com", WRONG)
            c.login("log4@example.com", PW)
            c.cmd("QUIT")
        with RawClient(popgate.port) as c:  # PASS without USER
            c.cmd(f"PASS {PW}")
        with RawClient(popgate.port) as c:  # backend auth, wrong and right
            c.login(BE_USER, BE_WRONG)
        with RawClient(popgate.port) as c:
            c.login(BE_USER, BE_PW)
            c.cmd("QUIT")
        with RawClient(popgate.port) as c:  # unknown domain
            c.login("x@unknown.example", PW)
        with RawClient(popgate.port) as c:  # user name that IS a password
            c.login(WRONG, PW)
        with RawClient(popgate.port) as c:  # backend down
            c.login("d@down.example", PW)
        r = harness.curl(popgate.port, "log5@example.com", PW, "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        time.sleep(0.5)
        out = popgate.stderr_bytes()
        try:
            with open(popgate.stdout_path, "rb") as f:
                out += f.read()
        except FileNotFoundError:
            pass
        for pw in ALL_PASSWORDS:
            if pw == WRONG:
                # Sent once as a user name on purpose: only the PASS use counts.
                continue
            self.assertNotIn(pw.encode(), out, f"password {pw!r} appears in popgate's output")
        self.assertEqual(out.count(WRONG.encode()), sum(
            1 for r in popgate.log_records() if r.get("user") == WRONG),
            "the wrong password appears other than as the user name it was sent as")


if __name__ == "__main__":
    unittest.main()
