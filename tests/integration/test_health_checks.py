"""Active health checks at start-up, over TLS and across a reload (issue 9:
"--check-config and start-up work with backends down (state starts unknown,
then follows the checks)"; "optionally STLS/implicit TLS handshake and
CAPA"), against pop3-synth and real Dovecots with TLS.  Every pool checks
with interval 1s, timeout 500ms, rise 2, fall 2.

1. The only backend is a closed loopback port: `--check-config` exits 0,
   popgate starts and serves (greeting, CAPA); one backend_health line
   unknown -> down (connect refused, from the checks) within a few seconds;
   a login then gets -ERR [SYS/TEMP] at once with result no_backend (no
   connect attempt); pop3-synth started on that port: down -> up within
   rise x interval + margin, and a login gets the right bytes.
2. backend_tls starttls and implicit against a Dovecot with TLS (test CA):
   unknown -> up from the checks; Dovecot's log has no error and every
   check connection ends "Logged out" over TLS (the check did the
   handshake and QUIT cleanly); logins get the right bytes.
3. Checks that cannot pass TLS: a CA that did not sign Dovecot's
   certificate (starttls) and a wrong name (implicit) go unknown -> down
   with a reason that names the TLS failure; the same bad CA with
   health_check tls = false stays up (plain connect + greeting) although
   its logins fail on TLS (which passive marking does not count), and
   Dovecot never sees a USER.
4. A SIGHUP that changes only the interval keeps the state: no
   backend_health line after it until the backend is stopped, and then the
   line is up -> down from the checks (not from unknown).

All processes on loopback, stopped by PID.  Python 3.11 standard library.
"""

import time
import unittest

import harness
import tlsharness as th
from harness import RawClient, make_message
from identity_harness import PoolPopgate, PoolTenant
from popgate_testing.dovecot_fleet import log_time

PW = "Health-pw-1"
NAME = "mail.health.example"
INTERVAL, TIMEOUT, RISE, FALL = 1.0, 0.5, 2, 2
HEALTH = {"interval": "1s", "timeout": "500ms", "rise": RISE, "fall": FALL}
# Slack over the schedule for a loaded 2-core box.
MARGIN = 3.0


def change_bound(n: int, interval: float = INTERVAL) -> float:
    """Seconds within which n checks in a row have run from a given moment:
    the next check within one interval (+10% jitter), each further one
    within 1.1 intervals, each bounded by the timeout, plus MARGIN."""
    return harness.scaled(n * 1.1 * interval + TIMEOUT + MARGIN)


U_DEAD = "u@dead.example"
U_RELOAD = "u@reload.example"
TLS_USERS = {t: f"u@{t}.example" for t in ("stls", "implicit", "badca", "wrongname", "notls")}
MSGS = {u: [make_message(8100 + 10 * k + i, s) for i, s in enumerate([600, 2500])]
        for k, u in enumerate(TLS_USERS.values())}

res = harness.ModuleResources()
pki = other_pki = dove_good = dove_bad = None
pg_dead = pg_tls = pg_reload = synth_reload = None
dove_good_mark = 0
dead_port = None
dead_started = 0.0
check_config = None


def backend_tls(mode: str, ca: str, name: str = NAME) -> dict:
    return {"mode": mode, "verify": True, "ca_file": ca, "name": name}


def setUpModule():
    global pki, other_pki, dove_good, dove_bad, pg_dead, pg_tls, pg_reload
    global synth_reload, dead_port, dead_started, check_config, dove_good_mark
    with harness.closing_on_error(res):
        pki = res.add(th.Pki())
        other_pki = res.add(th.Pki("not the backends' CA"))
        cert = pki.leaf(NAME, [NAME, "127.0.0.1"], "ec")
        # Two Dovecots with the same certificate: the checks that pass and
        # the ones that fail TLS each have a log of their own.
        dove_good = th.TlsDovecot(cert)
        dove_bad = th.TlsDovecot(cert)
        for t, u in TLS_USERS.items():
            (dove_good if t in ("stls", "implicit") else dove_bad).add_user(u, PW, MSGS[u])
        res.add(dove_good)
        res.add(dove_bad)
        # The harness's own start probe (plaintext, QUIT) is logged a moment
        # after the greeting: test_2 reads only what comes after it.
        harness.wait_until(lambda: "Disconnected" in dove_good.log(), harness.scaled(3))
        dove_good_mark = dove_good.log_mark()
        synth_reload = res.add(harness.Synth({U_RELOAD: PW}, sizes=[333]))

        ca, bad_ca = pki.ca_file, other_pki.ca_file
        tls_tenants = [
            ("stls", dove_good.address, backend_tls("starttls", ca), HEALTH),
            ("implicit", dove_good.pop3s_address, backend_tls("implicit", ca), HEALTH),
            ("badca", dove_bad.address, backend_tls("starttls", bad_ca), HEALTH),
            ("wrongname", dove_bad.pop3s_address,
             backend_tls("implicit", ca, "not-the-backend.example"), HEALTH),
            ("notls", dove_bad.address, backend_tls("starttls", bad_ca),
             {**HEALTH, "tls": False}),
        ]
        pg_tls = res.add(PoolPopgate([
            PoolTenant(f"t-{t}", [f"{t}.example"], [addr], users={TLS_USERS[t]: PW},
                       backend_tls=btls, health_check=dict(hc))
            for t, addr, btls, hc in tls_tenants]))
        pg_reload = res.add(PoolPopgate([
            PoolTenant("t-reload", ["reload.example"], [synth_reload.address],
                       users={U_RELOAD: PW}, health_check=dict(HEALTH))]))

        # Last, so that test_1's clock starts with this popgate: a port
        # nothing listens on (connect refused) until test_1 starts
        # pop3-synth there.
        dead_port = harness.free_port()
        pg_dead = PoolPopgate([
            PoolTenant("t-dead", ["dead.example"], [f"{harness.LOOPBACK}:{dead_port}"],
                       users={U_DEAD: PW}, health_check=dict(HEALTH))])
        pg_dead._choose_ports()
        pg_dead.write_config()
        check_config = harness.run_popgate("--check-config", pg_dead.config_path)
        dead_started = time.time()
        res.add(pg_dead)


def tearDownModule():
    res.close()


def health_lines(pg, mark: int = 0, **match) -> list[dict]:
    return [r for r in pg.log_records()[mark:]
            if r.get("event") == "backend_health"
            and all(r.get(k) == v for k, v in match.items())]


def login(pg, user: str) -> tuple[RawClient, bytes, float]:
    """A client logged in (or refused): (client, PASS reply, seconds for
    USER+PASS)."""
    c = RawClient(pg.port)
    t0 = time.monotonic()
    reply = c.login(user, PW)
    return c, reply, time.monotonic() - t0


class HealthChecks(harness.IntegrationTestCase):

    def wait_line(self, pg, timeout: float, mark: int = 0, **match) -> dict:
        recs = harness.wait_until(lambda: health_lines(pg, mark, **match), timeout)
        self.assertTrue(recs, f"no backend_health line {match} within {timeout:.1f} s; "
                        f"lines: {health_lines(pg)}")
        return recs[0]

    def retr_all(self, pg, user: str, want: list[bytes]) -> None:
        c, reply, _ = login(pg, user)
        with c:
            self.assertTrue(reply.startswith(b"+OK"), reply)
            for i, data in enumerate(want, 1):
                self.assertBytesEqual(c.retr(i), data, f"{user} RETR {i}")
            c.cmd_ok("QUIT")

    def test_1_start_with_backend_down_then_follow_checks(self):
        self.assertEqual(check_config.returncode, 0,
                         check_config.stdout + check_config.stderr)
        # popgate serves while its only backend is down.
        with RawClient(pg_dead.port) as c:
            self.assertTrue(c.greeting.startswith(b"+OK"), c.greeting)
            r, body = c.multi("CAPA")
            self.assertTrue(r.startswith(b"+OK"), r)
            self.assertIn(b"USER\r\n", body)

        down = self.wait_line(pg_dead, change_bound(FALL), tenant="t-dead", to="down")
        self.assertEqual((down["from"], down["source"]), ("unknown", "check"), down)
        self.assertIn("connect: Connection refused", down["reason"])
        self.assertLessEqual(log_time(down) - dead_started, change_bound(FALL),
                             "unknown -> down took too long")

        # Marked down: refused at once, no connect attempt.
        c, reply, took = login(pg_dead, U_DEAD)
        c.close()
        self.assertTrue(reply.startswith(b"-ERR [SYS/TEMP]"), reply)
        self.assertLess(took, harness.scaled(1.5), "the refusal was not quick")
        rec = pg_dead.wait_for_user_record(U_DEAD)
        self.assertTrue(rec, "no session line")
        self.assertEqual(rec[-1]["result"], "no_backend", rec[-1])

        # The backend comes up on that port: checks bring it back.
        s = harness.Synth({U_DEAD: PW}, sizes=[444, 5000],
                          extra_args=["--listen", f"{harness.LOOPBACK}:{dead_port}"])
        self.addCleanup(s.cleanup)
        s.start()
        started = time.time()
        with open(s.out_path, "rb") as f:
            self.assertIn(f"listening on {harness.LOOPBACK}:{dead_port}".encode(), f.read())
        up = self.wait_line(pg_dead, change_bound(RISE), tenant="t-dead", to="up")
        self.assertEqual((up["from"], up["source"]), ("down", "check"), up)
        self.assertLessEqual(log_time(up) - started, change_bound(RISE),
                             "down -> up took too long")
        self.retr_all(pg_dead, U_DEAD, s.dumps(U_DEAD))
        # One change each way, no flapping.
        self.assertEqual([(r["from"], r["to"]) for r in health_lines(pg_dead)],
                         [("unknown", "down"), ("down", "up")])

    def test_2_tls_checks_pass_against_dovecot(self):
        for t in ("stls", "implicit"):
            with self.subTest(mode=t):
                up = self.wait_line(pg_tls, change_bound(RISE, INTERVAL) + INTERVAL,
                                    tenant=f"t-{t}", to="up")
                self.assertEqual((up["from"], up["source"]), ("unknown", "check"), up)
                self.assertEqual(health_lines(pg_tls, tenant=f"t-{t}", to="down"), [])

        # Dovecot saw the checks as TLS connections that ended with QUIT:
        # every pop3-login disconnect so far (only checks have connected)
        # is "Aborted login by logging out" over TLS (not "Connection
        # closed", an abort or a plaintext one), and nothing went wrong.
        def disconnects():
            return [l for l in dove_good.log_since(dove_good_mark).splitlines()
                    if "pop3-login: Info: Disconnected" in l
                    or "pop3-login: Info: Aborted" in l]
        lines = harness.wait_until(lambda: len(disconnects()) >= 2 * RISE and disconnects(),
                                   harness.scaled(5))
        log_tail = dove_good.log_since(dove_good_mark)[-3000:]
        self.assertTrue(lines and len(lines) >= 2 * RISE, log_tail)
        for line in lines:
            self.assertRegex(line, r"Disconnected: Aborted login by logging out "
                             r"\(no auth attempts.*, TLS,", log_tail)
        self.assertEqual(dove_good.error_lines(dove_good_mark), [], log_tail)
        self.assertEqual(dove_good.logins(), [], "a check logged in")

        for t in ("stls", "implicit"):
            with self.subTest(login=t):
                u = TLS_USERS[t]
                self.retr_all(pg_tls, u, MSGS[u])
                m = dove_good.wait_for_login(user=u)
                self.assertIsNotNone(m)
                self.assertIn("TLS", m.line)

    def test_3_tls_check_failure_marks_down_unless_tls_off(self):
        for t, why in (("badca", "unable to get local issuer certificate"),
                       ("wrongname", "Hostname mismatch")):
            with self.subTest(backend=t):
                down = self.wait_line(pg_tls, change_bound(FALL) + INTERVAL,
                                      tenant=f"t-{t}", to="down")
                self.assertEqual((down["from"], down["source"]), ("unknown", "check"), down)
                self.assertTrue(down["reason"].startswith(
                    "tls: TLS handshake failed: certificate verify failed: " + why), down)
                self.assertEqual(health_lines(pg_tls, tenant=f"t-{t}", to="up"), [])

        # tls = false: the plain check passes, although logins fail on TLS.
        up = self.wait_line(pg_tls, change_bound(RISE) + INTERVAL, tenant="t-notls", to="up")
        self.assertEqual((up["from"], up["source"]), ("unknown", "check"), up)
        user = TLS_USERS["notls"]
        for i in range(FALL + 1):
            c, reply, _ = login(pg_tls, user)
            c.close()
            self.assertTrue(reply.startswith(b"-ERR [SYS/TEMP]"), reply)
            recs = pg_tls.wait_for_user_record(user, n=i + 1)
            self.assertEqual(len(recs), i + 1, recs)
            # Each login tried the backend (it is not down) and failed TLS
            # verification, which is not counted as ill health.
            self.assertEqual(recs[i]["result"], "backend_unavailable", recs[i])
            self.assertIn("certificate verify failed", recs[i].get("detail", ""), recs[i])
        time.sleep(INTERVAL * 1.5)  # at least one more check after the logins
        self.assertEqual([(r["from"], r["to"]) for r in health_lines(pg_tls, tenant="t-notls")],
                         [("unknown", "up")])
        self.assertEqual(dove_bad.logins(), [], "a USER reached Dovecot without TLS")

    def test_4_reload_of_the_interval_keeps_the_state(self):
        up = self.wait_line(pg_reload, change_bound(RISE) + INTERVAL,
                            tenant="t-reload", to="up")
        self.assertEqual(up["from"], "unknown", up)
        mark = pg_reload.log_mark()
        pg_reload.tenants[0].health_check["interval"] = "1500ms"
        pg_reload.write_config()
        pg_reload.reload()
        rec = pg_reload.record_after(mark, event="reloaded")
        self.assertIsNotNone(rec, "no reloaded line" + str(pg_reload.log_records()[mark:]))
        # Checks go on (more than rise of them) without a state change.
        time.sleep(1.5 * (RISE + 0.5))
        self.assertEqual(health_lines(pg_reload, mark), [])
        synth_reload.stop()
        down = self.wait_line(pg_reload, change_bound(FALL, 1.5), mark)
        self.assertEqual((down["from"], down["to"], down["source"]), ("up", "down", "check"),
                         down)
        self.assertEqual([r for r in health_lines(pg_reload, mark)
                          if "unknown" in (r["from"], r["to"])], [])


if __name__ == "__main__":
    unittest.main()
