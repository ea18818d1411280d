"""Session logs: one JSON line per session on stderr with time, client,
tenant, user, backend, bytes_in, bytes_out, duration_ms and result; distinct
results for success and failures; JSON stays valid whatever the client sends
as a user name; and no password ever appears in popgate's output.

Issue 11: every line starts with time, level and event; session lines have
start, listener, mechanism and a reason from a fixed vocabulary; [log]
session_start adds a line as each session starts; output = "syslog" sends
each line as a datagram to a socket this test binds; a missing socket is a
JSON start-up error (docs/logging.md)."""

import base64
import json
import os
import re
import socket
import tempfile
import time
import unittest

import harness
from harness import RawClient

PW = "Log-Secret-Pw-7fq2"            # file auth, correct
WRONG = "Wrong-Secret-Pw-9zz1"       # a wrong password that is tried
PIPE_PW = "Pipelined-Secret-Pw-44a"  # correct password of another user, pipelined
BE_PW = "Backend-Auth-Secret-5bb"    # auth=backend tenant
BE_WRONG = "Backend-Wrong-Secret-6cc"
USERS = {f"log{i}@example.com": PW for i in range(10)}
USERS["piper@example.com"] = PIPE_PW
BE_USER = "be@backend.example"
SIZES = [50000, 700]
ALL_PASSWORDS = [PW, WRONG, PIPE_PW, BE_PW, BE_WRONG]
KEYS = ("time", "level", "event", "session", "start", "listener", "client", "tenant",
        "user", "mechanism", "backend", "bytes_in", "bytes_out", "duration_ms", "result",
        "ended_by", "reason")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# docs/logging.md's list.
REASONS = {"none", "client_closed", "backend_closed", "bad_password", "unknown_user",
           "bad_credentials", "backend_rejected", "blocked", "limited", "in_use",
           "overloaded", "no_backend", "backend_unavailable", "backend_refused",
           "backend_down", "tls_error", "timeout", "protocol_error", "proxy_header",
           "store_unavailable", "loop", "proxy_error"}

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
        self.assertEqual(list(rec)[:3], ["time", "level", "event"], rec)
        self.assertRegex(rec["time"], TIME_RE)
        self.assertRegex(rec["start"], TIME_RE)
        self.assertLessEqual(rec["start"], rec["time"])
        self.assertEqual(rec["listener"], f"{harness.LOOPBACK}:{popgate.port}")
        self.assertIn(rec["reason"], REASONS)
        self.assertIn(rec["level"], ("info", "warning", "error"))

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

    def test_reason_level_and_mechanism(self):
        ok_user, bad_user, plain_user = "log6@example.com", "log7@example.com", "log8@example.com"
        before = len(popgate.session_records(user=BE_USER))
        with RawClient(popgate.port) as c:
            self.assertTrue(c.login(ok_user, PW).startswith(b"+OK"))
            c.cmd_ok("QUIT")
        with RawClient(popgate.port) as c:
            self.assertTrue(c.login(bad_user, WRONG).startswith(b"-ERR"))
        with RawClient(popgate.port) as c:
            self.assertTrue(c.login("nobody@example.com", PW).startswith(b"-ERR"))
        with RawClient(popgate.port) as c:
            self.assertTrue(c.login(BE_USER, BE_WRONG).startswith(b"-ERR [AUTH]"))
        with RawClient(popgate.port) as c:
            self.assertTrue(c.login("d@down.example", PW).startswith(b"-ERR [SYS/TEMP]"))
        with RawClient(popgate.port) as c:
            blob = base64.b64encode(f"\0{plain_user}\0{PW}".encode()).decode()
            self.assertTrue(c.cmd(f"AUTH PLAIN {blob}").startswith(b"+OK"))
            c.cmd_ok("QUIT")
        want = {  # user -> (mechanism, reason, level)
            ok_user: ("USER", "none", "info"),
            bad_user: ("USER", "bad_password", "warning"),
            "nobody@example.com": ("USER", "unknown_user", "warning"),
            BE_USER: ("USER", "backend_rejected", "warning"),
            "d@down.example": ("USER", "backend_unavailable", "warning"),
            plain_user: ("PLAIN", "none", "info"),
        }
        for user, (mech, reason, level) in want.items():
            with self.subTest(user=user):
                rec = self.records_for(user, before + 1 if user == BE_USER else 1)[-1]
                self.assertWellFormed(rec)
                self.assertEqual((rec["mechanism"], rec["reason"], rec["level"]),
                                 (mech, reason, level), rec)

    def test_every_line_is_framed(self):
        with RawClient(popgate.port) as c:
            c.cmd("CAPA")
        with RawClient(popgate.port) as c:
            c.login("log9@example.com", PW)
            c.cmd_ok("QUIT")
        self.records_for("log9@example.com")
        lines = [l for l in popgate.stderr_text().splitlines() if l.strip()]
        self.assertTrue(any('"event":"listening"' in l for l in lines))
        for line in lines:
            rec = json.loads(line)
            self.assertEqual(list(rec)[:3], ["time", "level", "event"], line)
            self.assertRegex(rec["time"], TIME_RE, line)
            self.assertIn(rec["level"], ("info", "warning", "error"), line)
            if rec["event"] == "session":
                self.assertIn(rec["reason"], REASONS, line)

    def test_missing_socket_is_a_startup_error(self):
        p = harness.unstarted_popgate(self, [harness.Tenant(
            "example-com", ["example.com"], [synth.address], users=USERS)])
        p.extra_toml = '[log]\noutput = "journald"\njournal_socket = "/nonexistent/j.sock"\n'
        p.write_config()
        r = harness.run_popgate("--config", p.config_path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        rec = json.loads(r.stderr)
        self.assertEqual((rec["level"], rec["event"]), ("error", "startup_error"))
        self.assertIn("/nonexistent/j.sock", rec["error"])
        self.assertIn("journal_socket", rec["error"])

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


class SyslogAndSessionStart(harness.IntegrationTestCase):
    """[log] output = "syslog" (with session_start lines) and "journald",
    each to a datagram socket bound here."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="popgate-it-syslog-")
        self.path = os.path.join(self.dir, "log.sock")
        self.rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.rx.bind(self.path)
        self.rx.settimeout(0.2)
        self.addCleanup(self.rx.close)
        self.got: list[str] = []

    def start(self, log_toml: str):
        self.p = harness.Popgate(
            [harness.Tenant("example-com", ["example.com"], [synth.address], users=USERS)],
            extra_toml=f"[log]\n{log_toml}")
        self.p.start()
        self.addCleanup(self.p.stop)

    def receive_until(self, pred, timeout=5.0) -> list[str]:
        deadline = time.monotonic() + harness.scaled(timeout)
        while time.monotonic() < deadline:
            if pred(self.got):
                break
            try:
                self.got.append(self.rx.recv(65536).decode())
            except socket.timeout:
                pass
        return self.got

    @staticmethod
    def record(datagram: str) -> dict:
        m = re.match(r"^<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d popgate\[(\d+)\]: (\{.*\})$",
                     datagram)
        assert m, datagram
        rec = json.loads(m.group(3))
        rec["_pri"] = int(m.group(1))
        rec["_pid"] = int(m.group(2))
        return rec

    def test_lines_go_to_syslog_with_session_start(self):
        self.start(f"output = \"syslog\"\nsyslog_facility = \"local1\"\n"
                   f"syslog_socket = {json.dumps(self.path)}\nsession_start = true\n")
        user = "log5@example.com"
        with RawClient(self.p.port) as c:
            self.assertTrue(c.login(user, PW).startswith(b"+OK"))
            c.cmd_ok("QUIT")
        with RawClient(self.p.port) as c:
            c.login(user, WRONG)
        self.receive_until(lambda g: sum(f'"user":"{user}"' in d for d in g) >= 2)
        recs = [self.record(d) for d in self.got]
        by_event = {}
        for r in recs:
            by_event.setdefault(r["event"], []).append(r)
        self.assertIn("listening", by_event, self.got)
        self.assertEqual({r["_pid"] for r in recs}, {self.p.proc.pid})
        # local1 = 17: info 17*8+6, warning 17*8+4.
        self.assertEqual(by_event["listening"][0]["_pri"], 142)
        # The harness's readiness probe was a session too.
        ok, bad = [r for r in by_event["session"] if r["user"] == user]
        self.assertEqual((ok["_pri"], ok["reason"]), (142, "none"))
        self.assertEqual((bad["_pri"], bad["reason"]), (140, "bad_password"))
        starts = [s for s in by_event.get("session_start", [])
                  if s["session"] in (ok["session"], bad["session"])]
        self.assertEqual([s["session"] for s in starts], [ok["session"], bad["session"]])
        for s in starts:
            self.assertEqual(s["listener"], f"{harness.LOOPBACK}:{self.p.port}")
            self.assertTrue(s["client"].startswith(harness.LOOPBACK))
            self.assertLessEqual(s["time"], ok["time"] if s is starts[0] else bad["time"])
        # Nothing went to stderr: the syslog socket is the log.
        self.assertEqual(self.p.stderr_text().strip(), "")

    def test_reload_applies_session_start_and_keeps_the_output(self):
        """session_start applies to new sessions at a reload; output and its
        socket are restart-only: named in the warning, stderr stays."""
        self.start("")
        with RawClient(self.p.port) as c:
            c.cmd_ok("QUIT")
        self.assertEqual(self.p.session_records(event="session_start"), [])
        self.p.extra_toml = (f"[log]\nsession_start = true\noutput = \"syslog\"\n"
                             f"syslog_socket = {json.dumps(self.path)}\n")
        self.p.reload_and_wait()
        warn = self.p.wait_for_record(event="warning", level="warning")
        self.assertIsNotNone(warn)
        self.assertEqual(set(warn["settings"]), {"log.output", "log.syslog_socket"}, warn)
        with RawClient(self.p.port) as c:
            self.assertTrue(c.login("log3@example.com", PW).startswith(b"+OK"))
            c.cmd_ok("QUIT")
        rec = self.p.wait_for_record(event="session", user="log3@example.com")
        self.assertIsNotNone(rec)
        (start,) = self.p.session_records(event="session_start")
        self.assertEqual(start["session"], rec["session"])
        self.assertEqual(self.receive_until(lambda g: False, timeout=0.3), [])

    def test_journald_native_protocol(self):
        """output = "journald" to a socket bound here (CI has no systemd):
        one datagram per line, KEY=value fields, MESSAGE the JSON line."""
        self.start(f"output = \"journald\"\njournal_socket = {json.dumps(self.path)}\n")
        user = "log4@example.com"
        with RawClient(self.p.port) as c:
            self.assertTrue(c.login(user, PW).startswith(b"+OK"))
            c.cmd_ok("QUIT")
        self.receive_until(lambda g: any(f'"user":"{user}"' in d for d in g))
        entries = []
        for d in self.got:
            self.assertTrue(d.endswith("\n"), d)
            fields = dict(l.split("=", 1) for l in d[:-1].split("\n"))
            entries.append(fields)
        for e in entries:
            rec = json.loads(e["MESSAGE"])
            self.assertEqual(e["POPGATE_EVENT"], rec["event"])
            self.assertEqual(e["SYSLOG_IDENTIFIER"], "popgate")
            self.assertEqual(e["SYSLOG_PID"], str(self.p.proc.pid))
            self.assertEqual(e["PRIORITY"], {"info": "6", "warning": "4", "error": "3"}[rec["level"]])
        (mine,) = [e for e in entries if json.loads(e["MESSAGE"]).get("user") == user]
        self.assertEqual(mine["POPGATE_SESSION"], json.loads(mine["MESSAGE"])["session"])
        self.assertTrue(any(e["POPGATE_EVENT"] == "listening" for e in entries))
        self.assertEqual(self.p.stderr_text().strip(), "")


if __name__ == "__main__":
    unittest.main()
