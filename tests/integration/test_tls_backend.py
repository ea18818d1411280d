"""TLS from popgate to its backends, against real Dovecots with TLS
(`ssl = required`, a CA-signed, a wrong-name, an expired and a self-signed
certificate; one that requires a client certificate; one without TLS).

* `backend_tls = { mode = "starttls" | "implicit", verify = true, ca_file,
  name }` works: mail arrives byte for byte, the session log has
  `backend_tls`, and Dovecot's own log says the login came over TLS.
  Without `name`, the backend's IP address is verified (IP SAN).
* A certificate with the wrong name, an expired one, a self-signed one, one
  not signed by `ca_file` (system store only): the client gets
  `-ERR [SYS/TEMP]`, the session log's result is `backend_unavailable: tls:
  ...certificate verify failed...`, and the user never logs in to the backend
  (no plaintext fall-back).  `verify = false` accepts them.
* A backend without STLS (mode starttls) or one that never speaks TLS
  (implicit) is refused the same way, bounded by handshake_timeout.
* client_cert/client_key are presented to a backend that requires them.
* DELE then disconnect deletes nothing over backend TLS; DELE+QUIT does."""

import poplib
import time
import unittest

import harness
import tlsharness as th
from harness import make_message

PW = "Btls-Pw-3"
NAME = "mail.dove.example"

res = harness.ModuleResources()
pki = other_pki = popgate = None
dove: dict[str, harness.Dovecot] = {}
silent = None
MSGS: dict[str, list[bytes]] = {}

# tenant -> (dovecot key, backend_tls dict builder (filled in setUpModule), expect ok)
TENANTS: dict[str, tuple[str, dict, bool]] = {}


def user_of(tenant: str) -> str:
    return f"u@{tenant}.test"


def setUpModule():
    global pki, other_pki, popgate, silent
    try:
        pki = res.add(th.Pki())
        other_pki = res.add(th.Pki("some other CA"))
        ca = pki.ca_file
        certs = {
            "good": pki.leaf(NAME, [NAME, "127.0.0.1"], "ec"),
            "wrongname": pki.leaf("wrong.example", ["wrong.example"], "ec"),
            "expired": pki.leaf(NAME, [NAME, "127.0.0.1"], "ec", expired=True),
            "selfsigned": pki.self_signed(NAME, [NAME, "127.0.0.1"], "ec"),
            "otherca": other_pki.leaf(NAME, [NAME, "127.0.0.1"], "rsa"),
        }
        client = pki.leaf("popgate-client.test", ["popgate-client.test"], "ec")
        for key, cert in certs.items():
            # "required" everywhere but one: Dovecot's `ssl = yes` too.
            dove[key] = th.TlsDovecot(cert, ssl_mode="yes" if key == "wrongname" else "required")
        dove["clientcert"] = th.TlsDovecot(
            certs["good"],
            extra=(f"ssl_ca = <{ca}\nssl_verify_client_cert = yes\n"
                   "ssl_require_crl = no\nauth_ssl_require_client_cert = yes\n"))
        dove["nossl"] = harness.Dovecot()   # ssl = no: no STLS, no pop3s
        silent = harness.FakeBackend("silent")
        res._cleanups.append(silent.cleanup)

        def v(mode, **kw):
            d = {"mode": mode, "verify": True, "ca_file": ca, "name": NAME}
            d.update(kw)
            return {k: x for k, x in d.items() if x is not None}
        spec = {
            # tenant: (dovecot, backend_tls, ok, implicit port?)
            "stls": ("good", v("starttls"), True),
            "implicit": ("good", v("implicit"), True),
            "ipname": ("good", v("starttls", name=None), True),
            "ipname-implicit": ("good", v("implicit", name=None), True),
            "wrongname": ("wrongname", v("starttls"), False),
            "wrongname-implicit": ("wrongname", v("implicit"), False),
            "confname": ("good", v("starttls", name="not-the-backend.example"), False),
            "expired": ("expired", v("starttls"), False),
            "expired-implicit": ("expired", v("implicit"), False),
            "selfsigned": ("selfsigned", v("implicit"), False),
            "otherca": ("otherca", v("starttls"), False),
            "systemstore": ("good", v("implicit", ca_file=None), False),
            "noverify-wrongname": ("wrongname", v("starttls", verify=False, ca_file=None), True),
            "noverify-expired": ("expired", v("implicit", verify=False, ca_file=None), True),
            "noverify-selfsigned": ("selfsigned", v("implicit", verify=False, ca_file=None, name=None), True),
            "clientcert": ("clientcert", v("implicit", client_cert=client.cert,
                                           client_key=client.key), True),
            "noclientcert": ("clientcert", v("implicit"), None),   # Dovecot refuses the login
            "nostls": ("nossl", v("starttls"), False),
            "silent": ("silent", v("implicit"), False),
        }
        TENANTS.update(spec)
        for tenant, (dkey, _, _) in spec.items():
            if dkey == "silent":
                continue
            msgs = [make_message(len(MSGS) * 10 + k, s) for k, s in enumerate([700, 3000])]
            if tenant == "implicit":
                msgs.append(harness.make_big_message(5, 3 * 1024 * 1024))
            MSGS[tenant] = msgs
            dove[dkey].add_user(user_of(tenant), PW, msgs)
            for case in ("dquit", "dclose"):
                if tenant in ("stls", "implicit"):
                    MSGS[f"{case}-{tenant}"] = [make_message(900 + k, 500) for k in range(3)]
                    dove[dkey].add_user(f"{case}@{tenant}.test", PW, MSGS[f"{case}-{tenant}"])
        for d in dove.values():
            res.add(d)
        tenants = []
        for tenant, (dkey, btls, _) in spec.items():
            d = dove.get(dkey)
            if dkey == "silent":
                addr = silent.address
            elif btls["mode"] == "implicit":
                addr = d.pop3s_address
            else:
                addr = d.address
            users = {user_of(tenant): PW}
            if tenant in ("stls", "implicit"):
                users.update({f"dquit@{tenant}.test": PW, f"dclose@{tenant}.test": PW})
            tenants.append(th.TlsTenant(tenant, [f"{tenant}.test"], [addr], users=users,
                                        backend_tls=btls))
        lcert = pki.leaf("pop.example.net", ["127.0.0.1"], "ec")
        popgate = res.add(th.TlsPopgate(
            tenants,
            [th.Listener("plain", "none"), th.Listener("tls", "implicit", [lcert])],
            tls={"handshake_timeout": "1s"},
            server={"backend_timeout": "3s"}))
    except Exception:
        res.close()
        raise


def tearDownModule():
    th.terminate_all(dove.values())
    res.close()


def dovecot_logins(tenant_user: str, dkey: str) -> list[str]:
    return [l for l in dove[dkey].log().splitlines() if f"Login: user=<{tenant_user}>" in l]


class BackendTlsWorks(harness.IntegrationTestCase):

    def check_ok(self, tenant, client_tls=False):
        user = user_of(tenant)
        dkey = TENANTS[tenant][0]
        if client_tls:
            c = th.TlsClient(popgate.ports["tls"], ctx=th.verifying_ctx(pki.ca_file),
                             server_hostname="127.0.0.1", timeout=20)
        else:
            c = harness.RawClient(popgate.ports["plain"], timeout=20)
        self.addCleanup(c.close)
        r = c.login(user, PW)
        self.assertTrue(r.startswith(b"+OK"), f"{tenant}: {r!r}\n" + dove[dkey].log()[-1500:]
                        + harness._tail(popgate.stderr_path, 1500))
        msgs = MSGS[tenant]
        self.assertEqual(c.cmd("STAT"), f"+OK {len(msgs)} {sum(map(len, msgs))}\r\n".encode())
        for i, m in enumerate(msgs, 1):
            self.assertBytesEqual(c.retr(i), m, f"{tenant} RETR {i}")
        addr = "%s:%d" % (c.raw_sock if client_tls else c.sock).getsockname()
        mark = popgate.log_mark()  # the session is live: later lines are ours
        c.cmd_ok("QUIT")
        c.read_until_closed(5)
        c.close()
        rec = popgate.record_after(mark, event="session", client=addr)
        self.assertIsNotNone(rec, f"no session log line for {addr}")
        self.assertIn(rec["backend_tls"], ("TLSv1.3", "TLSv1.2"), rec)
        self.assertEqual(rec["forwarding"], "copy", rec)
        self.assertEqual(rec["result"], "ok", rec)
        self.assertEqual(rec["tls"], "TLSv1.3" if client_tls else "", rec)
        logins = harness.wait_until(lambda: dovecot_logins(user, dkey), 5)
        self.assertTrue(logins, dove[dkey].log()[-1500:])
        self.assertTrue(all(", TLS" in l for l in logins),
                        f"Dovecot saw a login without TLS: {logins}")

    def test_starttls_verified_by_name(self):
        self.check_ok("stls")

    def test_implicit_verified_by_name(self):
        self.check_ok("implicit")

    def test_verified_by_ip_address_when_no_name(self):
        self.check_ok("ipname")
        self.check_ok("ipname-implicit")

    def test_tls_on_both_sides(self):
        # Includes a 3 MB message: TLS decrypt and re-encrypt on both legs.
        self.check_ok("implicit", client_tls=True)
        self.check_ok("stls", client_tls=True)

    def test_real_clients_over_tls_to_tls_dovecot(self):
        # curl pop3s:// (implicit to popgate, implicit to Dovecot, with the
        # 3 MB message), poplib POP3_SSL and openssl s_client -starttls pop3
        # (to a STLS Dovecot): every message byte for byte.
        for i, m in enumerate(MSGS["implicit"], 1):
            r = th.curl_tls(f"pop3s://127.0.0.1:{popgate.ports['tls']}/{i}",
                            user_of("implicit"), PW, ["--cacert", pki.ca_file])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertBytesEqual(r.stdout, m, f"curl pop3s RETR {i}")
        p = poplib.POP3_SSL(harness.LOOPBACK, popgate.ports["tls"],
                            context=th.verifying_ctx(pki.ca_file), timeout=20)
        try:
            p.user(user_of("stls"))
            p.pass_(PW)
            for i, m in enumerate(MSGS["stls"], 1):
                self.assertBytesEqual(harness.poplib_retr_bytes(p, i), m, f"poplib RETR {i}")
        finally:
            p.quit()
        msgs = MSGS["ipname"]
        cmds = f"USER {user_of('ipname')}\r\nPASS {PW}\r\n" + \
            "".join(f"RETR {i}\r\n" for i in range(1, len(msgs) + 1)) + "QUIT\r\n"
        r = th.s_client(popgate.ports["tls"], ["-CAfile", pki.ca_file, "-verify_return_error"],
                        stdin=cmds.encode(), quiet=True)
        self.assertEqual(r.returncode, 0, r.stderr[-1000:])
        rd = th.BufferReader(r.stdout)
        self.assertTrue(rd.reply().startswith(b"+OK"))   # greeting
        self.assertTrue(rd.reply().startswith(b"+OK"))   # USER
        self.assertTrue(rd.reply().startswith(b"+OK"))   # PASS (Dovecot's, over TLS)
        for i, m in enumerate(msgs, 1):
            _, body = rd.multi_reply()
            self.assertBytesEqual(body, m, f"s_client RETR {i}")
        self.assertTrue(rd.reply().startswith(b"+OK"))   # QUIT

    def test_verify_false_accepts_bad_certificates(self):
        for tenant in ("noverify-wrongname", "noverify-expired", "noverify-selfsigned"):
            with self.subTest(tenant=tenant):
                self.check_ok(tenant)

    def test_client_certificate_presented(self):
        self.check_ok("clientcert")

    def test_client_certificate_missing_is_refused_by_backend(self):
        c = self.raw(popgate.ports["plain"])
        r = c.login(user_of("noclientcert"), PW)
        self.assertTrue(r.startswith(b"-ERR"), r)
        self.assertFalse(dovecot_logins(user_of("noclientcert"), "clientcert"))


class BackendTlsRefused(harness.IntegrationTestCase):

    def check_refused(self, tenant, reason: str | None, prefix: str = "backend_unavailable: tls"):
        user = user_of(tenant)
        c = self.raw(popgate.ports["plain"], timeout=20)
        t0 = time.monotonic()
        r = c.login(user, PW)
        elapsed = time.monotonic() - t0
        self.assertTrue(r.startswith(b"-ERR [SYS/TEMP]"), f"{tenant}: {r!r}")
        self.assertLess(elapsed, 5.0, "refusal took too long")
        # The session ends (no fail-over, nothing else to do).
        self.assertTrue(c.is_closed(5), "connection still open after -ERR [SYS/TEMP]")
        c.close()  # else popgate lingers (drains) before it logs the session
        rec = popgate.wait_for_user_record(user, timeout=5)
        self.assertTrue(rec, f"no session log line for {user}")
        # The result is a name ("backend_unavailable"), why is in "detail".
        result = f'{rec[-1]["result"]}: {rec[-1].get("detail", "")}'
        self.assertTrue(result.startswith(prefix), result)
        if reason is not None:
            self.assertIn("certificate verify failed", result)
            self.assertIn(reason, result.lower())
        self.assertEqual(rec[-1]["backend_tls"], "", rec[-1])
        dkey = TENANTS[tenant][0]
        if dkey in dove:
            time.sleep(0.2)
            self.assertFalse(dovecot_logins(user, dkey),
                             f"user logged in to the backend despite the TLS failure")
        return result

    def test_wrong_name(self):
        self.check_refused("wrongname", "mismatch")
        self.check_refused("wrongname-implicit", "mismatch")

    def test_configured_name_not_in_certificate(self):
        self.check_refused("confname", "mismatch")

    def test_expired(self):
        self.check_refused("expired", "expired")
        self.check_refused("expired-implicit", "expired")

    def test_self_signed(self):
        self.check_refused("selfsigned", "self")

    def test_unknown_ca(self):
        self.check_refused("otherca", "issuer")

    def test_test_ca_not_in_system_store(self):
        self.check_refused("systemstore", None)
        rec = popgate.wait_for_user_record(user_of("systemstore"))[-1]
        self.assertIn("certificate verify failed", rec.get("detail", ""))

    def test_backend_without_stls(self):
        result = self.check_refused("nostls", None, prefix="backend_unavailable: ")
        self.assertIn("STLS", result)

    def test_backend_never_speaks_tls(self):
        self.check_refused("silent", None)

    def test_backend_handshake_bounded_by_handshake_timeout(self):
        # README: [tls] handshake_timeout bounds "client TLS handshake, and
        # TLS to backends".  Here it is 1s, backend_timeout 3s.
        c = self.raw(popgate.ports["plain"], timeout=20)
        t0 = time.monotonic()
        r = c.login(user_of("silent"), PW)
        elapsed = time.monotonic() - t0
        self.assertTrue(r.startswith(b"-ERR [SYS/TEMP]"), r)
        self.assertLess(elapsed, 2.0, f"a backend that never answers the ClientHello held the "
                        f"login {elapsed:.1f}s (handshake_timeout 1s, backend_timeout 3s)")

    def test_client_over_tls_gets_the_same(self):
        c = th.TlsClient(popgate.ports["tls"], server_hostname="127.0.0.1")
        self.addCleanup(c.close)
        r = c.login(user_of("expired"), PW)
        self.assertTrue(r.startswith(b"-ERR [SYS/TEMP]"), r)


class DeleteOverBackendTls(harness.IntegrationTestCase):

    def settled(self, user, dkey):
        def done():
            log = dove[dkey].log()
            logins = log.count(f"Login: user=<{user}>")
            ends = sum(1 for l in log.splitlines() if f"pop3({user})" in l and "Disconnected" in l)
            return logins > 0 and logins == ends
        self.assertTrue(harness.wait_until(done, 10), "Dovecot session did not end")

    def test_dele_quit_deletes_dele_close_does_not(self):
        for tenant in ("stls", "implicit"):
            with self.subTest(tenant=tenant):
                keys = [s.key for s in dove["good"].seeded[f"dquit@{tenant}.test"]]
                c = self.raw(popgate.ports["plain"])
                self.assertTrue(c.login(f"dquit@{tenant}.test", PW).startswith(b"+OK"))
                c.cmd_ok("DELE 1")
                c.cmd_ok("QUIT")
                c.read_until_closed(5)
                c.close()
                self.settled(f"dquit@{tenant}.test", "good")
                present = dove["good"].present_keys(f"dquit@{tenant}.test")
                self.assertEqual([k for k in keys if k in present], keys[1:])

                user = f"dclose@{tenant}.test"
                keys = [s.key for s in dove["good"].seeded[user]]
                c = th.TlsClient(popgate.ports["tls"], server_hostname="127.0.0.1")
                self.addCleanup(c.close)
                self.assertTrue(c.login(user, PW).startswith(b"+OK"))
                c.cmd_ok("DELE 1")
                c.cmd_ok("DELE 2")
                c.close()
                self.settled(user, "good")
                self.assertEqual(sorted(dove["good"].present_keys(user)), sorted(keys))
                ends = [l for l in dove["good"].log().splitlines()
                        if f"pop3({user})" in l and "Disconnected" in l]
                self.assertNotIn("Logged out", ends[-1], "popgate sent QUIT for the client")


if __name__ == "__main__":
    unittest.main()
