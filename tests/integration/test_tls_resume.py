"""TLS session resumption with tickets (TLS 1.3 and 1.2).

* `openssl s_client -sess_out F` then `-sess_in F` says "Reused", on the
  implicit and the STLS listener; the session log then has tls_resumed=true.
* Two popgate instances sharing a `ticket_key_file` resume each other's
  sessions; an instance with another key file, or with none (random keys),
  does not.
* `session_tickets = false`: nothing is resumed.
* `ticket_key_rotation`: a ticket is accepted for the current and the two
  previous periods only.
* Python's ssl resumes too (SSLSocket.session / session_reused)."""

import os
import re
import time
import unittest

import harness
import tlsharness as th

PW = "Resume-Pw-9"
USER = "alice@example.com"

res = harness.ModuleResources()
pki = synth = None
gates: dict[str, th.TlsPopgate] = {}


def _popgate(tls: dict, cert, rsa) -> th.TlsPopgate:
    return th.TlsPopgate(
        [harness.Tenant("example-com", ["example.com"], [synth.address], users={USER: PW})],
        [th.Listener("tls", "implicit", [cert, rsa]), th.Listener("stls", "starttls", [cert, rsa])],
        tls=tls)


def setUpModule():
    global pki, synth
    try:
        pki = res.add(th.Pki())
        synth = res.add(harness.Synth({USER: PW}, sizes=[1500]))
        cert = pki.leaf("pop.example.net", ["localhost", "127.0.0.1"], "ec")
        rsa = pki.leaf("pop-rsa.example.net", ["localhost", "127.0.0.1"], "rsa")
        shared = os.path.join(pki.dir, "ticket.key")
        other = os.path.join(pki.dir, "other-ticket.key")
        for path in (shared, other):
            with open(path, "wb") as f:
                f.write(os.urandom(48))
            os.chmod(path, 0o600)
        for name, tls in (("a", {"ticket_key_file": shared}),
                          ("b", {"ticket_key_file": shared}),
                          ("other", {"ticket_key_file": other}),
                          ("nofile", {}),
                          ("off", {"session_tickets": False}),
                          ("rotate", {"ticket_key_file": shared, "ticket_key_rotation": "1s"})):
            gates[name] = res.add(_popgate(tls, cert, rsa))
    except Exception:
        res.close()
        raise


def tearDownModule():
    res.close()


SESSION = f"USER {USER}\r\nPASS {PW}\r\nSTAT\r\nQUIT\r\n".encode()


class Resumption(harness.IntegrationTestCase):

    def sess_file(self) -> str:
        d = harness.make_tempdir("sess")
        self.addCleanup(__import__("shutil").rmtree, d, True)
        return os.path.join(d, "session.pem")

    def connect(self, gate: str, args=(), sess_out=None, sess_in=None, starttls=False,
                need_session: bool = True) -> str:
        a = list(args)
        if sess_out:
            a += ["-sess_out", sess_out]
        if sess_in:
            a += ["-sess_in", sess_in]
        port = gates[gate].ports["stls" if starttls else "tls"]
        r = th.s_client(port, a, stdin=SESSION, starttls=starttls, timeout=20)
        out = r.stdout.decode("utf-8", "replace")
        self.assertEqual(r.returncode, 0, out[-1000:] + r.stderr.decode("utf-8", "replace")[-1000:])
        # The mail session itself worked.
        self.assertRegex(out, r"\+OK 1 1500\r?\n", out[-1500:])
        m = re.search(r"^(New|Reused), (TLSv[\d.]+)", out, re.M)
        self.assertIsNotNone(m, out[-1500:])
        if sess_out and need_session:
            self.assertTrue(os.path.exists(sess_out) and os.path.getsize(sess_out) > 0,
                            "s_client wrote no session")
        return f"{m.group(1)} {m.group(2)}"

    def test_resume_same_instance_tls13_and_tls12(self):
        for version in ("-tls1_3", "-tls1_2"):
            for starttls in (False, True):
                with self.subTest(version=version, starttls=starttls):
                    f = self.sess_file()
                    proto = "TLSv1.3" if version == "-tls1_3" else "TLSv1.2"
                    self.assertEqual(self.connect("a", [version], sess_out=f, starttls=starttls),
                                     f"New {proto}")
                    self.assertEqual(self.connect("a", [version], sess_in=f, starttls=starttls),
                                     f"Reused {proto}")

    def test_session_log_says_resumed(self):
        # The line of the previous test's last session may still be on its
        # way (it is written when popgate has seen the client's close, after
        # s_client has exited): count only once the log has settled.
        def settled():
            n = len(gates["a"].records_for(USER))
            time.sleep(0.3)
            return (n,) if len(gates["a"].records_for(USER)) == n else None
        settled_count = harness.wait_until(settled, 5)
        self.assertIsNotNone(settled_count, "the session log does not settle")
        before = settled_count[0]
        f = self.sess_file()
        self.connect("a", ["-tls1_3"], sess_out=f)
        self.connect("a", ["-tls1_3"], sess_in=f)
        recs = harness.wait_until(
            lambda: gates["a"].records_for(USER)[before:] if
            len(gates["a"].records_for(USER)) >= before + 2 else None, 5)
        self.assertTrue(recs, "no session log lines")
        self.assertEqual([(r["tls"], r["tls_resumed"]) for r in recs[-2:]],
                         [("TLSv1.3", False), ("TLSv1.3", True)], recs)

    def test_shared_ticket_key_file_resumes_across_instances(self):
        for version in ("-tls1_3", "-tls1_2"):
            with self.subTest(version=version):
                f = self.sess_file()
                self.connect("a", [version], sess_out=f)
                self.assertTrue(self.connect("b", [version], sess_in=f).startswith("Reused"),
                                "instance b did not resume a's session (same ticket_key_file)")
                g = self.sess_file()
                self.connect("b", [version], sess_out=g)
                self.assertTrue(self.connect("a", [version], sess_in=g).startswith("Reused"))
        recs = gates["b"].wait_for_user_record(USER, tls_resumed=True)
        self.assertTrue(recs, "b logged no tls_resumed session")

    def test_other_or_no_key_file_does_not_resume(self):
        for version in ("-tls1_3", "-tls1_2"):
            for src, dst in (("a", "other"), ("a", "nofile"), ("nofile", "a"), ("other", "b")):
                with self.subTest(version=version, src=src, dst=dst):
                    f = self.sess_file()
                    self.connect(src, [version], sess_out=f)
                    self.assertTrue(self.connect(dst, [version], sess_in=f).startswith("New"))

    def test_session_tickets_off(self):
        for version in ("-tls1_3", "-tls1_2"):
            with self.subTest(version=version):
                f = self.sess_file()
                self.connect("off", [version], sess_out=f, need_session=False)
                # No ticket (nor session ID) means s_client has nothing to
                # save; if it saved something, it must not resume.
                if os.path.exists(f) and os.path.getsize(f) > 0:
                    self.assertTrue(self.connect("off", [version], sess_in=f).startswith("New"),
                                    "session_tickets = false still resumed")
        recs = gates["off"].wait_for_user_record(USER, n=2)
        self.assertTrue(recs)
        self.assertFalse(any(r["tls_resumed"] for r in recs), recs)

    def test_python_ssl_resumes(self):
        ctx = th.verifying_ctx(pki.ca_file)
        c1 = th.TlsClient(gates["a"].ports["tls"], ctx=ctx, server_hostname="127.0.0.1")
        self.addCleanup(c1.close)
        self.assertTrue(c1.login(USER, PW).startswith(b"+OK"))
        c1.cmd_ok("QUIT")
        sess = c1.sock.session
        self.assertIsNotNone(sess)
        self.assertTrue(sess.has_ticket)
        c1.close()
        for gate in ("a", "b"):
            c2 = th.TlsClient(gates[gate].ports["tls"], ctx=ctx, server_hostname="127.0.0.1",
                              session=sess)
            self.addCleanup(c2.close)
            self.assertTrue(c2.sock.session_reused, f"python session not reused on {gate}")
            self.assertTrue(c2.login(USER, PW).startswith(b"+OK"))
            self.assertBytesEqual(c2.retr(1), synth.dump(USER, 1), "RETR after resumption")
            c2.cmd_ok("QUIT")


class Rotation(harness.IntegrationTestCase):
    """ticket_key_rotation = 1s: accepted in the issuing period and the two
    after it (2 to 3 s), refused from the fourth period on."""

    def test_ticket_expires_after_three_periods(self):
        d = harness.make_tempdir("sess")
        self.addCleanup(__import__("shutil").rmtree, d, True)
        first = os.path.join(d, "first.pem")
        # Start right after a period boundary so the timing below has margin.
        time.sleep(1.05 - (time.time() % 1.0))
        t0 = time.time()
        r = th.s_client(gates["rotate"].ports["tls"], ["-tls1_3", "-sess_out", first],
                        stdin=SESSION)
        self.assertIn(b"New, TLSv1.3", r.stdout)
        time.sleep(max(0.0, t0 + 1.4 - time.time()))   # one period later
        r = th.s_client(gates["rotate"].ports["tls"], ["-tls1_3", "-sess_in", first],
                        stdin=SESSION)
        self.assertIn(b"Reused, TLSv1.3", r.stdout, "ticket refused one period later")
        time.sleep(max(0.0, t0 + 3.3 - time.time()))   # in the fourth period
        r = th.s_client(gates["rotate"].ports["tls"], ["-tls1_3", "-sess_in", first],
                        stdin=SESSION)
        self.assertIn(b"New, TLSv1.3", r.stdout, "ticket still accepted after 3 periods")
        self.assertIn(b"+OK 1 1500", r.stdout)  # a full handshake instead, still works


if __name__ == "__main__":
    unittest.main()
