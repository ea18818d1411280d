"""backend_login = "master" (issue 9), against a real Dovecot 2.3 with a
master passdb (master user "popmaster"; result_success = continue, so the
user must exist at Dovecot too):

* Users' Dovecot passwords differ from their popgate passwd-file ones.
  With auth = "file" and backend_login = "master", a user logs in with the
  popgate password and reaches their own mailbox (LIST, UIDL and RETR match
  what Dovecot serves the user directly), for both master_login methods:
  "separator" (USER user*popmaster / PASS <master password>) and
  "sasl-plain" (AUTH PLAIN, authzid = user, authcid = popmaster); Dovecot's
  auth log says "Master user logging in as <user>".
* A wrong popgate password (the user's Dovecot password too) gets -ERR and
  never reaches Dovecot; a username containing the separator gets -ERR and
  nothing reaches Dovecot (a client must not choose the master login).
* A master password file with mode 0644: popgate refuses to start, naming
  the file and "chmod". The master password never appears in popgate's
  output, also when Dovecot refuses a wrong master password.
"""

import base64
import os
import shutil
import subprocess
import time
import unittest

import harness
import tlsharness as th
from harness import RawClient, make_message
from identity_harness import RecordingRelay

MASTER = "popmaster"
MASTER_PW = "Mstr-9f3c1e77-secret"
WRONG_MASTER_PW = "Not-the-master-4d2a"
ALICE, CAROL, DAVE = "alice@sep.example", "carol@sasl.example", "dave@bad.example"
EVE = "eve*popmaster@sep.example"   # contains the separator
DOVE_PW = {ALICE: "dove-alice-1", CAROL: "dove-carol-1", DAVE: "dove-dave-1"}
GATE_PW = {ALICE: "gate-alice-1", CAROL: "gate-carol-1", DAVE: "gate-dave-1",
           EVE: "gate-eve-1"}
MSGS = {u: [make_message(7300 + 10 * k + i, s) for i, s in enumerate([420, 2100, 9000])]
        for k, u in enumerate([ALICE, CAROL, DAVE])}

res = harness.ModuleResources()
dove = relay = pg = None
secrets_dir = None


class _RemovedDir:
    def __init__(self, path: str):
        self.path = path

    def cleanup(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def write_secret(name: str, text: str, mode: int) -> str:
    path = os.path.join(secrets_dir, name)
    with open(path, "w") as f:
        f.write(text + "\n")
    os.chmod(path, mode)
    return path


def master_settings(method: str, pw_file: str) -> dict:
    s = {"backend_login": "master", "master_user": MASTER,
         "master_password_file": pw_file, "master_login": method}
    if method == "separator":
        s["master_separator"] = "*"
    return s


def tenants(pw_file: str, bad_file: str) -> list[harness.Tenant]:
    return [
        harness.Tenant("t-sep", ["sep.example"], [relay.address],
                       users={ALICE: GATE_PW[ALICE], EVE: GATE_PW[EVE]},
                       settings=master_settings("separator", pw_file)),
        harness.Tenant("t-sasl", ["sasl.example"], [relay.address],
                       users={CAROL: GATE_PW[CAROL]},
                       settings=master_settings("sasl-plain", pw_file)),
        # Its master password file holds a wrong password: Dovecot refuses.
        harness.Tenant("t-bad", ["bad.example"], [relay.address],
                       users={DAVE: GATE_PW[DAVE]},
                       settings=master_settings("separator", bad_file)),
    ]


def setUpModule():
    global dove, relay, pg, secrets_dir
    with harness.closing_on_error(res):
        secrets_dir = harness.make_tempdir("master-secrets")
        res.add(_RemovedDir(secrets_dir), start=False)
        dove = harness.Dovecot(master_users={MASTER: MASTER_PW}, master_separator="*")
        for u in (ALICE, CAROL, DAVE):
            dove.add_user(u, DOVE_PW[u], MSGS[u])
        res.add(dove)
        relay = res.add(RecordingRelay((harness.LOOPBACK, dove.port)))
        pw_file = write_secret("master.pw", MASTER_PW, 0o600)
        bad_file = write_secret("bad-master.pw", WRONG_MASTER_PW, 0o600)
        pg = res.add(th.TlsPopgate(tenants(pw_file, bad_file)))


def tearDownModule():
    res.close()


class MasterLogin(harness.IntegrationTestCase):

    def direct_listing(self, user: str) -> tuple[bytes, bytes]:
        """LIST and UIDL as Dovecot serves them to the user directly."""
        with RawClient(dove.port) as c:
            self.assertTrue(c.login(user, DOVE_PW[user]).startswith(b"+OK"))
            _, lst = c.multi("LIST")
            _, uidl = c.multi("UIDL")
            c.cmd_ok("QUIT")
        return lst, uidl

    def assert_no_secret_output(self) -> None:
        out = pg.output_bytes()
        self.assertNotIn(MASTER_PW.encode(), out)
        self.assertNotIn(WRONG_MASTER_PW.encode(), out)
        self.assertNotIn(base64.b64encode(f"{CAROL}\0{MASTER}\0{MASTER_PW}".encode()), out)

    def master_login(self, user: str) -> bytes:
        """Logs `user` in through popgate; checks the mailbox is theirs;
        returns what popgate sent to the backend on that connection."""
        want_list, want_uidl = self.direct_listing(user)
        mark, n, pmark = dove.log_mark(), len(relay.sent), pg.log_mark()
        c = self.raw(pg.port)
        r = c.login(user, GATE_PW[user])
        self.assertTrue(r.startswith(b"+OK"), f"{user}: {r!r}")
        _, lst = c.multi("LIST")
        _, uidl = c.multi("UIDL")
        self.assertEqual(lst, want_list)
        self.assertEqual(uidl, want_uidl)
        self.assertEqual(harness.parse_scan_listing(lst),
                         [(i, str(len(m))) for i, m in enumerate(MSGS[user], 1)])
        for i, m in enumerate(MSGS[user], 1):
            self.assertBytesEqual(c.retr(i), m, f"{user} RETR {i}")
        c.cmd_ok("QUIT")
        # Closed at once: after the backend's end popgate waits for the
        # client to close (client_drain_timeout) before it logs the session.
        c.close()
        self.assertIsNotNone(dove.wait_for_log(
            r"Master user logging in as " + user.replace(".", r"\."), mark),
            dove.log_since(mark)[-2000:])
        login = dove.wait_for_login(mark, user)
        self.assertIsNotNone(login, dove.log_since(mark)[-2000:])
        rec = pg.record_after(pmark, 10, event="session", user=user)
        self.assertIsNotNone(rec)
        self.assertEqual(rec.get("result"), "ok", rec)
        sent = [b for b in relay.sent_since(n) if b]
        self.assertEqual(len(sent), 1, sent)
        self.assert_no_secret_output()
        return sent[0]

    def test_separator_login_reaches_own_mailbox(self):
        sent = self.master_login(ALICE)
        lines = sent.split(b"\r\n")
        self.assertIn(f"USER {ALICE}*{MASTER}".encode(), lines)
        self.assertIn(f"PASS {MASTER_PW}".encode(), lines)
        self.assertNotIn(GATE_PW[ALICE].encode(), sent)

    def test_sasl_plain_login_reaches_own_mailbox(self):
        sent = self.master_login(CAROL)
        auth = [l for l in sent.split(b"\r\n") if l.upper().startswith(b"AUTH PLAIN ")]
        self.assertEqual(len(auth), 1, sent)
        self.assertEqual(base64.b64decode(auth[0].split()[2]),
                         f"{CAROL}\0{MASTER}\0{MASTER_PW}".encode())
        self.assertNotIn(b"USER ", sent)
        self.assertNotIn(GATE_PW[CAROL].encode(), sent)

    def assert_nothing_at_dovecot(self, user: str, pw: str, mark: int, n: int) -> None:
        pmark = pg.log_mark()
        c = self.raw(pg.port)
        r = c.login(user, pw)
        self.assertTrue(r.startswith(b"-ERR"), f"{user}: {r!r}")
        c.cmd("QUIT")
        c.close()
        self.assertIsNotNone(pg.record_after(pmark, 10, event="session", user=user),
                             f"no session record for {user}")
        # Anything Dovecot would log about a login comes within
        # milliseconds of the attempt, and the session has ended by now; the
        # relay's accept loop polls every 0.2 s.
        time.sleep(0.5)
        local = user.split("@")[0].split("*")[0]
        for line in dove.log_since(mark).splitlines():
            self.assertNotIn(local, line)
            self.assertNotIn(" auth: ", line)
            self.assertNotIn("Login:", line)
        for b in relay.sent_since(n):
            self.assertNotIn(b"USER ", b)
            self.assertNotIn(b"AUTH ", b.upper())
            self.assertNotIn(b"PASS ", b)

    def test_wrong_popgate_password_never_reaches_dovecot(self):
        for pw in ("wrong-password", DOVE_PW[ALICE]):
            with self.subTest(pw=pw):
                mark, n = dove.log_mark(), len(relay.sent)
                self.assert_nothing_at_dovecot(ALICE, pw, mark, n)
        self.assert_no_secret_output()

    def test_username_with_separator_is_refused(self):
        # A client must not pick another master login ("eve*popmaster"
        # would make Dovecot log in as eve). The separator can never be part
        # of a canonical user name (config refuses separators made of user
        # name characters), so popgate refuses such a name before anything
        # else, even though its passwd-file has it.
        mark, n, pmark = dove.log_mark(), len(relay.sent), pg.log_mark()
        self.assert_nothing_at_dovecot(EVE, GATE_PW[EVE], mark, n)
        rec = pg.record_after(pmark, 5, event="session", user=EVE)
        self.assertEqual(rec.get("backend"), "", rec)
        self.assert_no_secret_output()

    def test_wrong_master_password_refused_without_leaking_it(self):
        pmark = pg.log_mark()
        c = self.raw(pg.port)
        r = c.login(DAVE, GATE_PW[DAVE])
        self.assertTrue(r.startswith(b"-ERR"), r)
        c.close()
        self.assertIsNotNone(pg.record_after(pmark, 10, event="session", user=DAVE))
        self.assert_no_secret_output()


class MasterPasswordFile(harness.IntegrationTestCase):

    def test_world_readable_file_refuses_start(self):
        loose = write_secret("loose-master.pw", MASTER_PW, 0o644)
        p = th.TlsPopgate(tenants(loose, loose))
        self.addCleanup(shutil.rmtree, p.dir, True)
        p._choose_ports()
        p.write_config()
        try:
            r = harness.run_popgate("--config", p.config_path, timeout=15)
        except subprocess.TimeoutExpired:
            self.fail("popgate started with a master password file of mode 0644")
        out = r.stderr + r.stdout
        self.assertNotEqual(r.returncode, 0, out)
        self.assertIn(loose, out)
        self.assertIn("chmod", out)
        self.assertNotIn(MASTER_PW, out)


if __name__ == "__main__":
    unittest.main()
