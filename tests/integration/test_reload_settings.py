"""What SIGHUP does with settings read only at start (issue 8, item 7).

Before, a reload logged `reloaded` and silently kept the old `workers`,
`auth_threads`, `session_tickets`, `ticket_key_rotation` and
`ticket_key_file`. Now:

* `ticket_key_file` is re-read: new tickets are made under the new secret
  (a ticket from this instance then resumes on another instance that has
  the same new file), and tickets made under the old secret are refused (a
  full handshake; the file changes when its secret may have leaked);
* a change to a setting that needs a restart is named in ONE warning line
  (`settings`: ["server.workers", ...]) and the start value stays;
* an unreadable new key file fails the reload: the old config and keys stay
  in force."""

import os
import time
import unittest

import harness
import tlsharness as th

PW = "Reload-Settings-Pw-7"
USER = "alice@example.com"


def write_key(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class RestartOnlySettings(harness.IntegrationTestCase):

    def setUp(self):
        self.synth = self.start_synth({USER: PW}, sizes=[900])
        self.p = self.start_popgate(
            [harness.Tenant("example-com", ["example.com"], [self.synth.address],
                            users={USER: PW})],
            server={"workers": 2, "auth_threads": 2})

    def reload_and_wait(self) -> list[dict]:
        """SIGHUP; the records logged by that reload (reloaded and after)."""
        mark = len(self.p.log_records())
        self.p.reload()
        self.assertTrue(harness.wait_until(
            lambda: any(r.get("event") in ("reloaded", "reload_failed")
                        for r in self.p.log_records()[mark:]), 5),
            "no reloaded line 5s after SIGHUP")
        # The warning follows the reloaded line at once.
        time.sleep(0.3)
        return self.p.log_records()[mark:]

    def warnings(self, recs: list[dict]) -> list[dict]:
        return [r for r in recs if r.get("event") == "warning" and "settings" in r]

    def login_ok(self) -> bool:
        with harness.RawClient(self.p.port) as c:
            ok = c.login(USER, PW).startswith(b"+OK")
            c.cmd("QUIT")
            return ok

    def test_unchanged_reload_warns_nothing(self):
        recs = self.reload_and_wait()
        self.assertIn("reloaded", [r.get("event") for r in recs])
        self.assertEqual(self.warnings(recs), [])

    def test_workers_and_auth_threads_named_in_one_warning(self):
        self.p.server.update({"workers": 3, "auth_threads": 5})
        self.p.write_config()
        recs = self.reload_and_wait()
        self.assertIn("reloaded", [r.get("event") for r in recs])
        warns = self.warnings(recs)
        self.assertEqual(len(warns), 1, recs)
        self.assertEqual(warns[0]["settings"], ["server.workers", "server.auth_threads"])
        self.assertIn("restart", warns[0]["warning"])
        # The other settings of the file did apply, and popgate still serves
        # with the workers it started with.
        self.assertTrue(self.login_ok())
        listening = [r for r in self.p.log_records() if r.get("event") == "listening"]
        self.assertEqual(listening[-1]["workers"], 2)
        # Reverting the file silences the warning.
        self.p.server.update({"workers": 2, "auth_threads": 2})
        self.p.write_config()
        self.assertEqual(self.warnings(self.reload_and_wait()), [])

    def test_ticket_settings_named(self):
        # Turning tickets off applies at once (new contexts issue none): no
        # warning. A new rotation period needs a restart.
        self.p.extra_toml = '[tls]\nsession_tickets = false\n'
        self.p.write_config()
        self.assertEqual(self.warnings(self.reload_and_wait()), [])
        self.p.extra_toml = '[tls]\nticket_key_rotation = "1h"\n'
        self.p.write_config()
        warns = self.warnings(self.reload_and_wait())
        self.assertEqual(len(warns), 1)
        self.assertEqual(warns[0]["settings"], ["tls.ticket_key_rotation"])

    def test_tickets_turned_on_need_a_restart(self):
        off = self.start_popgate(
            [harness.Tenant("example-com", ["example.com"], [self.synth.address],
                            users={USER: PW})],
            extra_toml='[tls]\nsession_tickets = false\n')
        off.extra_toml = ""
        off.write_config()
        mark = len(off.log_records())
        off.reload()
        self.assertTrue(harness.wait_until(
            lambda: any(r.get("event") == "reloaded" for r in off.log_records()[mark:]), 5))
        time.sleep(0.3)
        warns = [r for r in off.log_records()[mark:]
                 if r.get("event") == "warning" and "settings" in r]
        self.assertEqual([w["settings"] for w in warns], [["tls.session_tickets"]])


res = harness.ModuleResources()
pki = synth = None
gates: dict[str, th.TlsPopgate] = {}
keys: dict[str, str] = {}


def setUpModule():
    global pki, synth
    try:
        pki = res.add(th.Pki())
        synth = res.add(harness.Synth({USER: PW}, sizes=[1200]))
        cert = pki.leaf("pop.example.net", ["localhost", "127.0.0.1"], "ec")
        for name in ("a", "b"):
            keys[name] = os.path.join(pki.dir, f"{name}-ticket.key")
            write_key(keys[name], os.urandom(48))
            gates[name] = res.add(th.TlsPopgate(
                [harness.Tenant("example-com", ["example.com"], [synth.address],
                                users={USER: PW})],
                [th.Listener("tls", "implicit", [cert])],
                tls={"ticket_key_file": keys[name]}))
    except Exception:
        res.close()
        raise


def tearDownModule():
    res.close()


class TicketKeyFileReload(harness.IntegrationTestCase):

    def new_session(self, gate: str):
        """A full handshake on `gate`; the ticket it issued."""
        c = th.TlsClient(gates[gate].ports["tls"], ctx=self.ctx, server_hostname="localhost")
        self.addCleanup(c.close)
        # TLS 1.3 tickets come after the handshake: the greeting was read.
        self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
        c.cmd_ok("QUIT")
        sess = c.sock.session
        c.close()
        self.assertIsNotNone(sess)
        self.assertTrue(sess.has_ticket)
        return sess

    def resumes(self, gate: str, sess) -> bool:
        c = th.TlsClient(gates[gate].ports["tls"], ctx=self.ctx, server_hostname="localhost",
                         session=sess)
        self.addCleanup(c.close)
        reused = c.sock.session_reused
        self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
        c.cmd_ok("QUIT")
        c.close()
        return reused

    def reload(self, gate: str) -> dict:
        g = gates[gate]
        mark = g.log_mark()
        g.reload()
        rec = harness.wait_until(
            lambda: next((r for r in g.log_records()[mark:]
                          if r.get("event") in ("reloaded", "reload_failed")), None), 5)
        self.assertIsNotNone(rec, "no reload line 5s after SIGHUP")
        return rec

    def setUp(self):
        self.ctx = th.insecure_ctx()
        # Each test starts with a new secret of a's own.
        with open(keys["b"], "rb") as f:
            self.b_secret = f.read()
        self.a_secret = os.urandom(48)
        write_key(keys["a"], self.a_secret)
        rec = self.reload("a")
        self.assertEqual(rec["event"], "reloaded", rec)

    def test_new_key_file_contents_apply(self):
        before = self.new_session("a")
        self.assertTrue(self.resumes("a", before))
        self.assertFalse(self.resumes("b", before), "b resumed a ticket made with another key")
        # a gets b's secret in its key file.
        write_key(keys["a"], self.b_secret)
        rec = self.reload("a")
        self.assertEqual(rec["event"], "reloaded", rec)
        after = self.new_session("a")
        self.assertTrue(self.resumes("b", after),
                        "a ticket made by a after the reload did not resume on b (same new file)")
        self.assertEqual(rec.get("ticket_keys"), "new", rec)
        self.assertTrue(self.resumes("a", after))
        # The old secret is gone: its tickets get a full handshake.
        self.assertFalse(self.resumes("a", before), "a ticket under the old secret still resumed")
        # Same contents again: nothing changes.
        rec = self.reload("a")
        self.assertEqual(rec.get("ticket_keys"), "unchanged", rec)
        self.assertTrue(self.resumes("a", after))

    def test_unreadable_key_file_keeps_the_old_keys(self):
        sess = self.new_session("a")
        write_key(keys["a"], b"short secret")  # < 32 bytes
        rec = self.reload("a")
        self.assertEqual(rec["event"], "reload_failed", rec)
        self.assertIn(keys["a"], rec["error"])
        self.assertNotIn("short secret", rec["error"])
        self.assertTrue(self.resumes("a", sess), "a failed reload changed the keys")
        self.assertTrue(gates["a"].alive())
        write_key(keys["a"], self.a_secret)
        self.assertEqual(self.reload("a")["event"], "reloaded")
        self.assertTrue(self.resumes("a", sess))


if __name__ == "__main__":
    unittest.main()
