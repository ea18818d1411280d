"""Kernel TLS (the `tls` TCP ULP).

Where the kernel offers it (`tls` in /proc/sys/net/ipv4/tcp_available_ulp),
popgate should hand a TLS 1.3 AES-GCM session's traffic keys to the kernel
and splice as in the plain case: the session log must say so, and the
kernel's own TLS counters (/proc/net/tls_stat) must move.  Where the kernel
has no `tls` ULP these tests are skipped, and ctest reports the module as
skipped, not passed: it runs through run_skippable.py, which exits 77
(SKIP_RETURN_CODE) when tests were skipped and none failed.

The start-up line `{"event":"tls_path","ktls_available":...}` is checked on
every kernel (its value must match /proc); that check alone does not make
the module pass (test_tls_client checks it too).

On this project's CI kernel the path tests are skipped; tests/ktls_vm runs
this module in a VM whose kernel has the ULP."""

import ssl
import unittest

import harness
import tlsharness as th

PW = "Ktls-Pw-1"
USER = "alice@example.com"
KTLS = th.ktls_available()

res = harness.ModuleResources()
pki = synth = popgate = popgate_off = None


def setUpModule():
    global pki, synth, popgate, popgate_off
    try:
        pki = res.add(th.Pki())
        cert = pki.leaf("pop.example.net", ["localhost", "127.0.0.1"], "ec")
        synth = res.add(harness.Synth({USER: PW}, sizes=[1048576, 5000]))
        tenants = [harness.Tenant("example-com", ["example.com"], [synth.address],
                                  users={USER: PW})]
        listeners = [th.Listener("tls", "implicit", [cert]),
                     th.Listener("stls", "starttls", [cert])]
        popgate = res.add(th.TlsPopgate(tenants, listeners, tls={"ktls": True}))
        popgate_off = res.add(th.TlsPopgate(tenants, listeners, tls={"ktls": False}))
    except Exception:
        res.close()
        raise


def tearDownModule():
    res.close()


def tls_stat() -> dict[str, int]:
    out = {}
    try:
        with open("/proc/net/tls_stat") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and parts[1].isdigit():
                    out[parts[0]] = int(parts[1])
    except OSError:
        pass
    return out


def tls_path_line(gate) -> dict:
    rec = harness.wait_until(lambda: gate.session_records(event="tls_path"), 5)
    assert rec, "no tls_path line at start-up"
    return rec[0]


class Detection(harness.IntegrationTestCase):

    def test_startup_line_matches_proc(self):
        for gate in (popgate, popgate_off):
            rec = tls_path_line(gate)
            self.assertIs(rec["ktls_available"], KTLS, rec)
            self.assertIn("path", rec)


@unittest.skipUnless(KTLS, "kernel has no 'tls' TCP ULP (/proc/sys/net/ipv4/tcp_available_ulp)")
class KernelTlsPath(harness.IntegrationTestCase):

    def session(self, gate, mode, version="TLSv1.3"):
        port = gate.ports["tls" if mode == "implicit" else "stls"]
        ctx = th.verifying_ctx(pki.ca_file)
        if version == "TLSv1.2":
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        c = th.TlsClient(port, mode=mode, ctx=ctx,
                         server_hostname="127.0.0.1", timeout=30)
        self.addCleanup(c.close)
        self.assertEqual(c.sock.version(), version)
        self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
        addr = "%s:%d" % c.raw_sock.getsockname()
        mark = gate.log_mark()
        for n in (1, 2, 1):
            self.assertBytesEqual(c.retr(n), synth.dump(USER, n), f"RETR {n} ({mode})")
        c.cmd_ok("QUIT")
        c.read_until_closed(5)
        c.close()
        rec = gate.record_after(mark, event="session", client=addr)
        self.assertIsNotNone(rec, f"no session log line for {addr}")
        self.assertEqual(rec["result"], "ok", rec)
        return rec

    def test_startup_says_ktls_path(self):
        rec = tls_path_line(popgate)
        self.assertNotEqual(rec["path"], "userspace",
                            f"kernel TLS available but popgate uses user space: {rec}")

    def test_session_uses_ktls(self):
        before = tls_stat()
        for mode in ("implicit", "stls"):
            with self.subTest(mode=mode):
                rec = self.session(popgate, mode)
                # The session log must say the kTLS path carried the bytes.
                self.assertTrue(rec.get("ktls") is True or "ktls" in rec["forwarding"],
                                f"session not on the kTLS path: {rec}")
        after = tls_stat()
        moved = sum(after.get(k, 0) - before.get(k, 0)
                    for k in ("TlsTxSw", "TlsRxSw", "TlsTxDevice", "TlsRxDevice"))
        self.assertGreater(moved, 0, f"kernel TLS counters did not move: {before} -> {after}")

    def test_tls12_session_uses_ktls(self):
        rec = self.session(popgate, "implicit", version="TLSv1.2")
        self.assertEqual(rec["forwarding"], "ktls-splice", rec)

    def test_client_close_notify_is_a_clean_end(self):
        c = th.TlsClient(popgate.ports["tls"], ctx=th.verifying_ctx(pki.ca_file),
                         server_hostname="127.0.0.1", timeout=30)
        self.addCleanup(c.close)
        self.assertTrue(c.login(USER, PW).startswith(b"+OK"))
        addr = "%s:%d" % c.raw_sock.getsockname()
        mark = popgate.log_mark()
        self.assertBytesEqual(c.retr(2), synth.dump(USER, 2), "RETR 2")
        # close_notify from the client: the kernel hands popgate an alert
        # record, which must end the session cleanly (FIN to the backend,
        # then close_notify back to the client, which unwrap() waits for).
        c.sock.unwrap()
        rec = popgate.record_after(mark, event="session", client=addr)
        self.assertIsNotNone(rec, f"no session log line for {addr}")
        self.assertEqual(rec["forwarding"], "ktls-splice", rec)
        # A clean end by the client without QUIT: "client_closed" (since
        # results tell a QUIT from a close), never a reset or a kTLS error.
        self.assertEqual(rec["result"], "client_closed", rec)

    def test_ktls_false_stays_in_user_space(self):
        rec = self.session(popgate_off, "implicit")
        self.assertEqual(rec["forwarding"], "copy", rec)
        self.assertNotEqual(rec.get("ktls"), True, rec)


if __name__ == "__main__":
    unittest.main()
