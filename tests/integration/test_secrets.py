"""No secret ever appears in popgate's output (issue 8, item 11): no
password, password hash, SASL blob or ticket key in any log line or error
message, on every error path a client or an operator can reach from
outside: wrong password (USER/PASS, AUTH PLAIN, AUTH LOGIN), unknown user,
malformed SASL, CR/LF inside a decoded password, backend refusal (wrong
password, [IN-USE]), backend down, silent backend after PASS, TLS failures
(plain login refused on a STLS listener, TLS to a plain backend, garbage on
the TLS port), --check-config and start with a broken passwd-file line or a
short ticket key file, SIGHUP with a broken passwd file or ticket key file.

Every secret is distinctive (``S3cr3t-zz9``, ``K3y-zz9``); popgate's whole
stderr and stdout are searched for each one raw, in base64 (as AUTH sends
it), and for hashes the whole string and its digest part.  Each path first
checks that it was reached (the client's -ERR, the session's log record, the
error's file:line), so that a path that silently stopped working fails
instead of passing vacuously.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import unittest
import warnings

import harness
import tlsharness as th

MARK = "S3cr3t-zz9"            # in every password below
PW = f"{MARK}-Alice"           # alice's password (SHA512-CRYPT in the file)
WRONG = f"{MARK}-Wrong"        # a wrong password
NOBODY_PW = f"{MARK}-Nobody"   # password sent for unknown users
CAROL_FILE = f"{MARK}-CarolF"  # carol's password in popgate's file ...
CAROL_BACK = f"{MARK}-CarolB"  # ... and at the backend (they disagree)
DAVE = f"{MARK}-Dave"          # dave's password at the backend (auth = backend)
BROKEN_PW = f"{MARK}-Broken"   # hashed into broken passwd-file lines
KEY_MARK = b"K3y-zz9-"         # in every ticket key file

ALICE = "alice@example.com"
CAROL = "carol@example.com"
DAVE_USER = "dave@backend.test"


def sha512_crypt(pw: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    return crypt.crypt(pw, crypt.mksalt(crypt.METHOD_SHA512, rounds=5000))


def b64(data: bytes | str) -> bytes:
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data)


def plain_blob(user: str, pw: str, authzid: str = "") -> bytes:
    return f"{authzid}\0{user}\0{pw}".encode()


class SecretChecks:
    """assertNoSecrets: none of the secrets, in any of their forms, in data."""

    # Every secret's forms: raw (MARK covers every password) and base64.
    def forms(self, extra: list[bytes]) -> list[bytes]:
        out = [MARK.encode(), KEY_MARK]
        for pw in (PW, WRONG, NOBODY_PW, CAROL_FILE, CAROL_BACK, DAVE, BROKEN_PW):
            out.append(b64(pw))
        for s in extra:
            out += [s, b64(s)]
        return out

    def assertNoSecrets(self, data: bytes, extra: list[bytes] = (), what: str = ""):
        # Case-insensitive: popgate lowercases user names, for instance.
        low = data.lower()
        for form in self.forms(list(extra)):
            i = low.find(form.lower())
            if i >= 0:
                self.fail(f"secret {form!r} in {what or 'popgate output'}: "
                          f"...{data[max(0, i - 200):i + 200]!r}...")


def hash_forms(h: str) -> list[bytes]:
    """A crypt hash, and its digest (after the last '$') on its own."""
    return [h.encode(), h.rsplit("$", 1)[-1].encode()]


# ---------------------------------------------------------------------------
# Sessions: one popgate with every kind of tenant
# ---------------------------------------------------------------------------

R = harness.ModuleResources()
S: dict = {}


def setUpModule():
    try:
        S["synth"] = synth = R.add(harness.Synth(
            {ALICE: PW, CAROL: CAROL_BACK, DAVE_USER: DAVE}, messages=1, size=1000))
        S["temp"] = temp = R.add(harness.FakeBackend.refusing(b"-ERR [IN-USE] mailbox locked\r\n"))
        S["silent"] = silent = R.add(harness.FakeBackend.refusing(b""))  # silent after PASS
        S["pki"] = pki = R.add(th.Pki())
        cert = pki.leaf("popgate.test", ["popgate.test", "127.0.0.1"])
        down = f"{harness.LOOPBACK}:{harness.free_port()}"  # nothing listens
        S["alice_hash"] = sha512_crypt(PW)
        S["carol_hash"] = sha512_crypt(CAROL_FILE)
        file_tenant = th.TlsTenant(
            "file", ["example.com"], [synth.address],
            passwd_lines=[f"{ALICE}:{S['alice_hash']}", f"{CAROL}:{S['carol_hash']}"])
        tenants = [
            file_tenant,
            th.TlsTenant("backend", ["backend.test"], [synth.address], auth="backend"),
            th.TlsTenant("down", ["down.test"], [down], auth="backend"),
            th.TlsTenant("temp", ["temp.test"], [temp.address], auth="backend"),
            th.TlsTenant("silent", ["silent.test"], [silent.address], auth="backend"),
            th.TlsTenant("tlsback", ["tlsback.test"], [synth.address], auth="backend",
                         backend_tls={"mode": "implicit", "verify": False}),
        ]
        S["popgate"] = R.add(th.TlsPopgate(
            tenants,
            [th.Listener("plain", plaintext_auth="always"),
             th.Listener("stls", tls="starttls", certificates=[cert],
                         plaintext_auth="never"),
             th.Listener("tls", tls="implicit", certificates=[cert])],
            server={"backend_timeout": "2s", "backend_auth_timeout": "2s",
                    "auth_failure_delay": "50ms", "max_auth_failures": 3}))
    except BaseException:
        R.close()
        raise


def tearDownModule():
    R.close()


class Sessions(harness.IntegrationTestCase, SecretChecks):
    """Each test: one failing login path; its -ERR and session record show
    that the path ran; then no secret anywhere in popgate's output."""

    @property
    def p(self) -> th.TlsPopgate:
        return S["popgate"]

    def extra(self) -> list[bytes]:
        return hash_forms(S["alice_hash"]) + hash_forms(S["carol_hash"])

    def session(self, fn, port: str = "plain", **kw):
        """Runs fn(client) on a new connection, closes it, waits for the
        session's log record and checks the whole output."""
        mark = self.p.log_mark()
        if port == "plain" or port == "stls-plain":
            c = harness.RawClient(self.p.ports["plain" if port == "plain" else "stls"], **kw)
        else:
            c = th.TlsClient(self.p.ports[port], **kw)
        try:
            fn(c)
        finally:
            c.close()
        rec = self.p.record_after(mark, timeout=10, event="session")
        self.assertIsNotNone(rec, "no session record: " + self.p.stderr_text()[-2000:])
        self.assertNoSecrets(self.p.output_bytes(), self.extra())
        return rec

    def expect_err(self, c, line: bytes, prefix: bytes = b"-ERR"):
        r = c.cmd(line)
        self.assertTrue(r.startswith(prefix), f"{line[:40]!r} -> {r!r}")
        return r

    def test_user_pass_wrong_password(self):
        def fn(c):
            c.cmd_ok(f"USER {ALICE}")
            self.expect_err(c, f"PASS {WRONG}".encode(), b"-ERR [AUTH]")
        self.session(fn)

    def test_user_pass_unknown_user_and_domain(self):
        def fn(c):
            for user in ("nobody@example.com", "nobody@unknown.test", "bare-name"):
                r = c.cmd(f"USER {user}")
                if r.startswith(b"+OK"):
                    self.expect_err(c, f"PASS {NOBODY_PW}".encode())
        self.session(fn)

    def test_auth_plain_wrong_password_initial_response(self):
        blob = plain_blob(ALICE, WRONG)
        def fn(c):
            self.expect_err(c, b"AUTH PLAIN " + b64(blob), b"-ERR [AUTH]")
        self.session(fn)
        self.assertNoSecrets(self.p.output_bytes(), [blob])

    def test_auth_plain_wrong_password_continuation(self):
        blob = plain_blob(ALICE, WRONG, authzid=ALICE)
        def fn(c):
            r = c.cmd("AUTH PLAIN")
            self.assertTrue(r.startswith(b"+"), r)
            self.expect_err(c, b64(blob), b"-ERR [AUTH]")
        self.session(fn)
        self.assertNoSecrets(self.p.output_bytes(), [blob])

    def test_auth_login_wrong_password(self):
        def fn(c):
            r = c.cmd("AUTH LOGIN")
            self.assertTrue(r.startswith(b"+"), r)
            r = c.cmd(b64(ALICE))
            self.assertTrue(r.startswith(b"+"), r)
            self.expect_err(c, b64(WRONG), b"-ERR [AUTH]")
        self.session(fn)

    def test_auth_unknown_user(self):
        blob = plain_blob("nobody@example.com", NOBODY_PW)
        def fn(c):
            self.expect_err(c, b"AUTH PLAIN " + b64(blob), b"-ERR [AUTH]")
        self.session(fn)
        self.assertNoSecrets(self.p.output_bytes(), [blob])

    def test_malformed_sasl(self):
        blobs = [
            f"{MARK}-no-nul-at-all".encode(),          # PLAIN without NULs
            f"\0{ALICE}\0{MARK}-x\0extra".encode(),    # too many fields
            f"\0\0{MARK}-no-user".encode(),            # empty user
        ]
        sent = [b64(b) for b in blobs]
        sent += [b64(blobs[0])[:-2] + b"!!",           # not base64
                 b64(blobs[0]).rstrip(b"=") + b"=",    # bad padding
                 b"=" + b64(blobs[0])]
        # max_auth_failures closes a connection: one blob per connection.
        for s in sent:
            self.session(lambda c, s=s: self.expect_err(c, b"AUTH PLAIN " + s))
        self.assertNoSecrets(self.p.output_bytes(), blobs + sent)

    def test_cr_lf_nul_inside_decoded_password(self):
        # Decoded SASL credentials with line breaks (command injection
        # towards the backend, issue 8 item 1) and a NUL: refused or not,
        # they never reach the log.
        blobs = [plain_blob(DAVE_USER, f"{MARK}-inj\r\nDELE 1"),
                 plain_blob(DAVE_USER, f"{MARK}-inj\nDELE 1"),
                 f"\0{DAVE_USER}\0{MARK}-a\0b".encode()]
        for blob in blobs:
            self.session(lambda c, blob=blob: self.expect_err(c, b"AUTH PLAIN " + b64(blob)))
        self.assertNoSecrets(self.p.output_bytes(), blobs)

    def test_backend_refuses_password(self):
        # auth = "backend": the backend says no.
        def fn(c):
            c.cmd_ok(f"USER {DAVE_USER}")
            self.expect_err(c, f"PASS {WRONG}".encode())
        self.session(fn)
        blob = plain_blob(DAVE_USER, WRONG)
        self.session(lambda c: self.expect_err(c, b"AUTH PLAIN " + b64(blob)))
        self.assertNoSecrets(self.p.output_bytes(), [blob])

    def test_backend_refuses_after_popgate_accepted(self):
        # auth = "file": popgate's file says yes, the backend says no.
        def fn(c):
            c.cmd_ok(f"USER {CAROL}")
            self.expect_err(c, f"PASS {CAROL_FILE}".encode())
        self.session(fn)

    def test_backend_temporary_refusal(self):
        def fn(c):
            c.cmd_ok("USER eve@temp.test")
            self.expect_err(c, f"PASS {WRONG}".encode())
        self.session(fn)

    def test_backend_down(self):
        def fn(c):
            r = c.cmd("USER eve@down.test")
            if r.startswith(b"+OK"):
                self.expect_err(c, f"PASS {WRONG}".encode())
        self.session(fn)

    def test_backend_silent_after_pass(self):
        def fn(c):
            r = c.cmd("USER eve@silent.test")
            if r.startswith(b"+OK"):
                self.expect_err(c, f"PASS {WRONG}".encode())
        self.session(fn, timeout=30)

    def test_tls_to_a_plain_backend(self):
        def fn(c):
            r = c.cmd(f"USER {DAVE_USER.replace('backend.test', 'tlsback.test')}")
            if r.startswith(b"+OK"):
                self.expect_err(c, f"PASS {DAVE}".encode())
        self.session(fn)

    def test_plain_login_refused_before_stls(self):
        blob = plain_blob(ALICE, PW)
        def fn(c):
            self.expect_err(c, f"USER {ALICE}".encode())
            self.expect_err(c, f"PASS {PW}".encode())
            self.expect_err(c, b"AUTH PLAIN " + b64(blob))
        self.session(fn, port="stls-plain")
        self.assertNoSecrets(self.p.output_bytes(), [blob])

    def test_wrong_password_over_tls(self):
        blob = plain_blob(ALICE, WRONG)
        def fn(c):
            self.expect_err(c, b"AUTH PLAIN " + b64(blob), b"-ERR [AUTH]")
        self.session(fn, port="tls")
        self.assertNoSecrets(self.p.output_bytes(), [blob])

    def test_garbage_on_the_tls_port(self):
        mark = self.p.log_mark()
        payload = (f"USER {ALICE}\r\nPASS {WRONG}\r\nAUTH PLAIN ".encode()
                   + b64(plain_blob(ALICE, WRONG)) + b"\r\n")
        with socket.create_connection((harness.LOOPBACK, self.p.ports["tls"]), timeout=10) as s:
            s.sendall(payload)
            try:
                while s.recv(4096):
                    pass
            except OSError:
                pass
        self.assertIsNotNone(self.p.record_after(mark, timeout=10, event="session"))
        self.assertNoSecrets(self.p.output_bytes(), [payload])

    def test_right_password_then_nothing_logged(self):
        # The successful path too (it passes the password to the backend).
        def fn(c):
            self.assertTrue(c.login(ALICE, PW).startswith(b"+OK"))
            c.cmd_ok("QUIT")
        rec = self.session(fn)
        self.assertEqual(rec.get("user"), ALICE)


# ---------------------------------------------------------------------------
# Operator paths: --check-config, start, SIGHUP
# ---------------------------------------------------------------------------

def broken_passwd_lines() -> list[tuple[str, list[bytes]]]:
    """(passwd-file line, its secrets) for every kind of broken line."""
    h = sha512_crypt(BROKEN_PW)
    argon = ("$argon2id$v=19$m=65536,t=3,p=1$" + base64.b64encode(b"saltsalt").decode()
             + "$" + "S3cr3tzz9Argon2Digest" * 2)
    return [
        (f"{ALICE}{{SHA512-CRYPT}}{h}", hash_forms(h)),                  # no ':'
        (f"{ALICE}:{{SHA512-CRYPT{h}", hash_forms(h)),                   # no '}'
        (f"{ALICE}:{{NOSUCH}}{h}", hash_forms(h)),                       # scheme
        (f"{ALICE}:{{SHA512-CRYPT}}{h[:-20]}", hash_forms(h[:-20])),     # cut hash
        (f"{ALICE}:{{SHA512-CRYPT}}$6$rounds=5000${MARK}$x", []),       # bad salt
        (f"{ALICE}:{BROKEN_PW}", []),                                    # no scheme
        (f"{ALICE}:{{ARGON2ID}}{argon}", [argon.encode(), b"S3cr3tzz9Argon2Digest"]),
        (f" {ALICE}:{{PLAIN}}{BROKEN_PW}", []),                          # space in user
    ]


class OperatorPaths(harness.IntegrationTestCase, SecretChecks):

    def setUp(self):
        self.dir = harness.make_tempdir("secrets")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.passwd = os.path.join(self.dir, "t.passwd")
        self.keyfile = os.path.join(self.dir, "ticket.key")

    def write(self, name: str, data: bytes | str) -> str:
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        return path

    def config(self, tls: bool = False) -> str:
        # allow_root: CI runs as root (in place of a blank line: lines stay).
        lines = ["[server]", "workers = 1", "allow_root = true",
                 "[[listener]]", f'address = "127.0.0.1:{harness.free_port()}"']
        if tls:
            pki = th.Pki()
            self.addCleanup(pki.cleanup)
            cert = pki.leaf("popgate.test", ["127.0.0.1"])
            lines += ['tls = "implicit"',
                      f"certificates = [ {th.toml_value(cert)} ]", "",
                      "[tls]", "session_tickets = true",
                      f'ticket_key_file = "{self.keyfile}"']
        lines += ["", "[[tenant]]", 'name = "t"', 'domains = ["example.com"]',
                  'auth = "file"', f'passwd_file = "{self.passwd}"',
                  'backends = [ { address = "127.0.0.1:2", weight = 1 } ]']
        return self.write("c.toml", "\n".join(lines) + "\n")

    def key_forms(self, key: bytes) -> list[bytes]:
        return [key, key.hex().encode(), key.hex().upper().encode()]

    def test_check_config_broken_passwd_lines(self):
        for line, secrets in broken_passwd_lines():
            with self.subTest(line=line[:60]):
                self.write("t.passwd", f"bob@example.com:{{PLAIN}}x\n{line}\n")
                r = harness.run_popgate("--check-config", self.config())
                out = (r.stdout + r.stderr).encode()
                self.assertEqual(r.returncode, 1, out)
                self.assertIn(b"t.passwd:2:", out, "the error must name file:line")
                self.assertNoSecrets(out, secrets, "--check-config output")

    def test_start_with_broken_passwd_line(self):
        line, secrets = broken_passwd_lines()[2]
        self.write("t.passwd", line + "\n")
        r = harness.run_popgate("--config", self.config(), timeout=30)
        out = (r.stdout + r.stderr).encode()
        self.assertNotEqual(r.returncode, 0, out)
        self.assertIn(b"t.passwd:1:", out)
        self.assertNoSecrets(out, secrets, "start-up error")

    def test_short_ticket_key_file(self):
        key = KEY_MARK + b"short"
        self.write("ticket.key", key)
        self.write("t.passwd", "bob@example.com:{PLAIN}x\n")
        cfg = self.config(tls=True)
        for args in (("--check-config", cfg), ("--config", cfg)):
            with self.subTest(args=args[0]):
                r = harness.run_popgate(*args, timeout=30)
                out = (r.stdout + r.stderr).encode()
                if args[0] == "--config":
                    self.assertNotEqual(r.returncode, 0, out)
                    self.assertIn(b"ticket key file", out)
                self.assertNoSecrets(out, self.key_forms(key), "ticket key error")

    def test_reload_with_broken_passwd_and_ticket_key_files(self):
        synth = self.start_synth({ALICE: PW}, messages=1, size=500)
        pki = th.Pki()
        self.addCleanup(pki.cleanup)
        cert = pki.leaf("popgate.test", ["127.0.0.1"])
        key = KEY_MARK + os.urandom(40)
        self.write("ticket.key", key)
        good_hash = sha512_crypt(PW)
        t = th.TlsTenant("t", ["example.com"], [synth.address],
                         passwd_lines=[f"{ALICE}:{good_hash}"])
        p = th.TlsPopgate([t], [th.Listener("tls", tls="implicit", certificates=[cert],
                                            plaintext_auth="always")],
                          tls={"session_tickets": True, "ticket_key_file": self.keyfile})
        self.addCleanup(p.cleanup)
        p.start()
        with th.TlsClient(p.ports["tls"]) as c:
            self.assertTrue(c.login(ALICE, PW).startswith(b"+OK"))
            c.cmd_ok("QUIT")
        secrets = self.key_forms(key) + hash_forms(good_hash)
        for line, line_secrets in broken_passwd_lines()[:4]:
            with self.subTest(line=line[:60]):
                mark = p.log_mark()
                with open(p.passwd_path(t), "w") as f:
                    f.write(line + "\n")
                p.reload()
                rec = p.record_after(mark, timeout=10, event="reload_failed")
                self.assertIsNotNone(rec, p.stderr_text()[-2000:])
                secrets += line_secrets
                self.assertNoSecrets(p.output_bytes(), secrets, "reload error")
        # A ticket key file that became too short (re-read on reload, or
        # ignored until restart: either way never echoed).
        p.write_passwd(t)
        short = KEY_MARK + b"now-short"
        self.write("ticket.key", short)
        mark = p.log_mark()
        p.reload()
        self.assertIsNotNone(p.record_after(mark, timeout=10), "no log line after SIGHUP")
        self.assertTrue(p.alive())
        self.assertNoSecrets(p.output_bytes(), secrets + self.key_forms(short),
                             "reload with a short ticket key file")
        p.stop()
        self.assertNoSecrets(p.output_bytes(), secrets + self.key_forms(short),
                             "output at stop")


if __name__ == "__main__":
    unittest.main()
