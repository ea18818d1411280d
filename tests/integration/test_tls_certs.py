"""Which certificate popgate serves, and which tenant the TLS name picks.

* SNI selects a tenant's certificates (by its domains, `*.`domain, or its
  explicit `sni_names`); other names, no SNI, and tenants without their own
  certificates get the listener's.  Checked with `openssl s_client
  -servername ... | openssl x509 -noout -subject` and with Python's ssl
  verifying the name against the test CA.
* ECDSA and RSA: a client that can verify ECDSA gets the ECDSA certificate; one
  offering only RSA signature algorithms (TLS 1.3 RSA-PSS, TLS 1.2
  RSA+SHA256 or an ECDHE-RSA cipher) gets the RSA one.
* SNI selects the tenant for a username without a domain (before the
  listener's default_tenant); a username with a domain ignores SNI.
The listener's own certificates are the demo ones from
scripts/make-demo-certs.sh (self-signed ECDSA + RSA)."""

import os
import ssl
import unittest

import harness
import tlsharness as th

PW = "Sni-Pw-1"
ALPHA_SIZES = [300]           # so that each backend's STAT differs
BETA_SIZES = [400, 500]
GAMMA_SIZES = [600, 700, 800]

res = harness.ModuleResources()
pki = popgate = None
demo_ec = demo_rsa = None
alpha_ec = alpha_rsa = beta_ec = None
synths = {}


def setUpModule():
    global pki, popgate, demo_ec, demo_rsa, alpha_ec, alpha_rsa, beta_ec
    try:
        pki = res.add(th.Pki())
        demo_ec, demo_rsa = th.demo_certs(os.path.join(pki.dir, "demo"))
        alpha_ec = pki.leaf("pop.alpha.example", ["alpha.example", "*.alpha.example"], "ec")
        alpha_rsa = pki.leaf("rsa.alpha.example", ["alpha.example", "*.alpha.example"], "rsa")
        beta_ec = pki.leaf("mail.beta-hosting.test", ["mail.beta-hosting.test"], "ec")
        for name, sizes in (("alpha", ALPHA_SIZES), ("beta", BETA_SIZES),
                            ("gamma", GAMMA_SIZES)):
            synths[name] = res.add(harness.Synth(
                {"dave": PW, f"erin@{name}.example": PW}, sizes=sizes))
        tenants = [
            th.TlsTenant("alpha", ["alpha.example"], [synths["alpha"].address],
                         users={"dave": PW, "erin@alpha.example": PW},
                         certificates=[alpha_ec, alpha_rsa]),
            th.TlsTenant("beta", ["beta.example"], [synths["beta"].address],
                         users={"dave": PW, "erin@beta.example": PW},
                         sni_names=["mail.beta-hosting.test"], certificates=[beta_ec]),
            # No certificates of its own: served the listener's.
            th.TlsTenant("gamma", ["gamma.example"], [synths["gamma"].address],
                         users={"dave": PW, "erin@gamma.example": PW}),
        ]
        popgate = res.add(th.TlsPopgate(
            tenants,
            [th.Listener("tls", "implicit", [demo_ec, demo_rsa], default_tenant="alpha"),
             th.Listener("stls", "starttls", [demo_ec, demo_rsa], default_tenant="alpha")]))
    except Exception:
        res.close()
        raise


def tearDownModule():
    res.close()


class CertificateBySni(harness.IntegrationTestCase):

    def served(self, servername, args=(), starttls=False):
        port = popgate.ports["stls" if starttls else "tls"]
        return th.served_cert(port, servername, args, starttls=starttls)

    def test_tenant_names_get_tenant_certificate(self):
        for starttls in (False, True):
            for sni, cn in (("alpha.example", "pop.alpha.example"),
                            ("pop.alpha.example", "pop.alpha.example"),
                            ("any.alpha.example", "pop.alpha.example"),
                            ("mail.beta-hosting.test", "mail.beta-hosting.test"),
                            ("MAIL.Beta-Hosting.TEST", "mail.beta-hosting.test")):
                with self.subTest(sni=sni, starttls=starttls):
                    info = self.served(sni, starttls=starttls)
                    self.assertEqual(info["cn"], cn, info["subject"])
                    self.assertEqual(info["key"], "ec")
                    # ... and its SAN covers the name asked for.
                    sans = [s.lower() for s in info["sans"]]
                    self.assertTrue(sni.lower() in sans or
                                    "*." + sni.lower().split(".", 1)[1] in sans, sans)

    def test_other_names_get_listener_certificate(self):
        # beta's sni_names replace the default (domains and *.domains);
        # gamma has no certificates of its own; unknown names; no SNI.
        for sni in ("beta.example", "gamma.example", "pop.gamma.example",
                    "unknown.test", None):
            with self.subTest(sni=sni):
                info = self.served(sni)
                self.assertEqual(info["cn"], demo_ec.subject_cn, info["subject"])
                self.assertEqual(info["key"], "ec")

    def test_python_verifies_tenant_name_against_ca(self):
        # check_hostname: the handshake succeeds only if the served
        # certificate is signed by the test CA and covers the SNI name.
        for sni, cn in (("alpha.example", "pop.alpha.example"),
                        ("pop.alpha.example", "pop.alpha.example"),
                        ("mail.beta-hosting.test", "mail.beta-hosting.test")):
            with self.subTest(sni=sni):
                c = th.TlsClient(popgate.ports["tls"], ctx=th.verifying_ctx(pki.ca_file),
                                 server_hostname=sni)
                self.addCleanup(c.close)
                self.assertEqual(c.greeting, b"+OK popgate ready.\r\n")
                self.assertEqual(th.cert_info(c.peer_cert_der())["cn"], cn)
        # ... and a name whose tenant cert does not cover it fails verification.
        with self.assertRaises(ssl.SSLCertVerificationError):
            th.TlsClient(popgate.ports["tls"], ctx=th.verifying_ctx(pki.ca_file),
                         server_hostname="beta.example")


class EcdsaVersusRsa(harness.IntegrationTestCase):

    def served(self, servername, args):
        return th.served_cert(popgate.ports["tls"], servername, args)

    def test_default_client_gets_ecdsa(self):
        for sni, cn in ((None, demo_ec.subject_cn), ("alpha.example", "pop.alpha.example")):
            for args in ([], ["-tls1_2"], ["-tls1_3"]):
                with self.subTest(sni=sni, args=args):
                    info = self.served(sni, args)
                    self.assertEqual((info["cn"], info["key"]), (cn, "ec"), info["subject"])
                    self.assertIn("ECDSA", info["sigtype"])

    def test_rsa_only_client_gets_rsa(self):
        cases = [(["-tls1_3", "-sigalgs", "RSA-PSS+SHA256"], "TLSv1.3"),
                 (["-tls1_2", "-sigalgs", "RSA+SHA256"], "TLSv1.2"),
                 (["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"], "TLSv1.2")]
        for sni, cn in ((None, demo_rsa.subject_cn), ("alpha.example", "rsa.alpha.example")):
            for args, proto in cases:
                with self.subTest(sni=sni, args=args):
                    info = self.served(sni, args)
                    self.assertEqual((info["cn"], info["key"]), (cn, "rsa"), info["subject"])
                    self.assertEqual(info["protocol"], proto)
                    self.assertIn("RSA", info["sigtype"])

    def test_rsa_session_works_end_to_end(self):
        # The RSA signature runs on popgate's thread pool: the session must
        # still complete normally and carry mail.
        ctx = th.insecure_ctx(maximum_version=ssl.TLSVersion.TLSv1_2)
        ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
        c = th.TlsClient(popgate.ports["tls"], ctx=ctx, server_hostname="alpha.example")
        self.addCleanup(c.close)
        self.assertEqual(th.cert_info(c.peer_cert_der())["cn"], "rsa.alpha.example")
        self.assertTrue(c.login("erin@alpha.example", PW).startswith(b"+OK"))
        self.assertBytesEqual(c.retr(1), synths["alpha"].dump("erin@alpha.example", 1), "RETR")
        c.cmd_ok("QUIT")


class TenantBySni(harness.IntegrationTestCase):

    def session(self, user, sni, mode="implicit") -> tuple[bytes, dict]:
        port = popgate.ports["tls" if mode == "implicit" else "stls"]
        c = th.TlsClient(port, mode=mode, server_hostname=sni)
        self.addCleanup(c.close)
        r = c.login(user, PW)
        self.assertTrue(r.startswith(b"+OK"), r)
        stat = c.cmd("STAT")
        addr = "%s:%d" % c.raw_sock.getsockname()
        mark = popgate.log_mark()  # the session is live: later lines are ours
        c.cmd_ok("QUIT")
        c.read_until_closed(5)
        c.close()
        rec = popgate.record_after(mark, event="session", client=addr)
        self.assertIsNotNone(rec, f"no session log line for {addr}")
        return stat, rec

    def stat_of(self, tenant):
        sizes = {"alpha": ALPHA_SIZES, "beta": BETA_SIZES, "gamma": GAMMA_SIZES}[tenant]
        return f"+OK {len(sizes)} {sum(sizes)}\r\n".encode()

    def test_bare_username_goes_to_sni_tenant(self):
        for mode in ("implicit", "stls"):
            for sni, tenant in (("mail.beta-hosting.test", "beta"),
                                ("MAIL.BETA-HOSTING.TEST", "beta"),
                                ("gamma.example", "gamma"),
                                ("pop.gamma.example", "gamma"),
                                ("alpha.example", "alpha")):
                with self.subTest(mode=mode, sni=sni):
                    stat, rec = self.session("dave", sni, mode)
                    self.assertEqual(stat, self.stat_of(tenant))
                    self.assertEqual(rec["tenant"], tenant, rec)
                    self.assertEqual(rec["sni"].lower(), sni.lower(), rec)
                    self.assertEqual(rec["backend"], synths[tenant].address, rec)

    def test_no_or_unknown_sni_uses_default_tenant(self):
        for sni in (None, "unknown.test"):
            with self.subTest(sni=sni):
                stat, rec = self.session("dave", sni)
                self.assertEqual(stat, self.stat_of("alpha"))
                self.assertEqual(rec["tenant"], "alpha", rec)

    def test_domain_in_username_wins_over_sni(self):
        stat, rec = self.session("erin@gamma.example", "mail.beta-hosting.test")
        self.assertEqual(stat, self.stat_of("gamma"))
        self.assertEqual(rec["tenant"], "gamma", rec)
        self.assertEqual(rec["sni"], "mail.beta-hosting.test", rec)
        # The wrong tenant's user through another tenant's name is refused.
        c = th.TlsClient(popgate.ports["tls"], server_hostname="mail.beta-hosting.test")
        self.addCleanup(c.close)
        r = c.login("erin@alpha.example", "wrong")
        self.assertTrue(r.startswith(b"-ERR"), r)


if __name__ == "__main__":
    unittest.main()
