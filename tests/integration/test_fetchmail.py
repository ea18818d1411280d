"""fetchmail (a real MUA-side client) through popgate, to pop3-synth and to a
real Dovecot: one run with `keep` leaves the mailbox alone, one run without it
fetches and deletes.  Messages go to an MDA script, one file each.

Comparison is normalised, because fetchmail rewrites what it delivers: it
prepends a `Received:` header (removed here, with its continuation lines)
and hands the MDA LF line endings (the CRLF source is converted to LF).
Everything else, including the lines starting with '.', must match exactly."""

import os
import shutil
import subprocess
import unittest

import harness
from harness import RawClient, make_message

PW = "Fetchmail-Pw-3"
SYNTH_USER = "fm@example.com"
DOVE_USER = "fm@dove.example"
DOVE_MSGS = [make_message(4000 + i, s) for i, s in enumerate([333, 4444, 55555])]

res = harness.ModuleResources()
synth = dovecot = popgate = None


def setUpModule():
    if not shutil.which("fetchmail"):
        raise unittest.SkipTest("fetchmail not installed")
    global synth, dovecot, popgate
    try:
        synth = res.add(harness.Synth({SYNTH_USER: PW}, sizes=[700, 3000, 250000]))
        dovecot = harness.Dovecot()
        dovecot.add_user(DOVE_USER, PW, DOVE_MSGS)
        res.add(dovecot)
        popgate = res.add(harness.Popgate([
            harness.Tenant("example-com", ["example.com"], [synth.address],
                           users={SYNTH_USER: PW}),
            harness.Tenant("dove", ["dove.example"], [dovecot.address],
                           users={DOVE_USER: PW}),
        ]))
    except Exception:
        res.close()
        raise


def tearDownModule():
    res.close()


def normalise(delivered: bytes) -> bytes:
    lines = delivered.split(b"\n")
    if lines and lines[0].startswith(b"Received:"):
        i = 1
        while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
            i += 1
        lines = lines[i:]
    return b"\n".join(lines)


def crlf_to_lf(b: bytes) -> bytes:
    return b.replace(b"\r\n", b"\n")


class Fetchmail(harness.IntegrationTestCase):

    def run_fetchmail(self, user: str, keep: bool) -> list[bytes]:
        d = harness.make_tempdir("fetchmail")
        self.addCleanup(shutil.rmtree, d, True)
        out = os.path.join(d, "out")
        os.mkdir(out)
        mda = os.path.join(d, "deliver.sh")
        with open(mda, "w") as f:
            f.write(f'#!/bin/sh\nexec cat > "{out}/msg.$(date +%s%N).$$"\n')
        os.chmod(mda, 0o755)
        rc = os.path.join(d, "fetchmailrc")
        with open(rc, "w") as f:
            f.write(
                "set no syslog\n"
                f"poll {harness.LOOPBACK} with proto POP3 port {popgate.port} auth password"
                " timeout 30\n"
                f'  user "{user}" there with password "{PW}" is "root" here\n'
                f"  options {'keep' if keep else 'no keep'} fetchall no rewrite sslproto ''\n"
                f'  mda "{mda}"\n')
        os.chmod(rc, 0o600)  # fetchmail refuses a readable rcfile with a password
        env = dict(os.environ, FETCHMAILHOME=d, HOME=d)
        r = subprocess.run(["fetchmail", "-f", rc, "-v", "--pidfile", os.path.join(d, "pid")],
                           capture_output=True, env=env, timeout=120)
        log = (r.stdout + r.stderr).decode("utf-8", "replace")
        self.assertEqual(r.returncode, 0, f"fetchmail failed:\n{log[-3000:]}")
        self.assertNotIn(PW, log.replace("PASS *", ""), "fetchmail -v shows the password?")
        msgs = []
        for n in sorted(os.listdir(out)):
            with open(os.path.join(out, n), "rb") as f:
                msgs.append(f.read())
        return msgs

    def assertSameMessages(self, delivered, sources):
        got = sorted(normalise(m) for m in delivered)
        want = sorted(crlf_to_lf(m) for m in sources)
        self.assertEqual(len(got), len(want))
        for g, w in zip(got, want):
            self.assertBytesEqual(g, w, "fetchmail-delivered message (normalised)")

    def stat(self, user) -> bytes:
        with RawClient(popgate.port) as c:
            self.assertTrue(c.login(user, PW).startswith(b"+OK"))
            st = c.cmd("STAT")
            c.cmd_ok("QUIT")
        return st

    def test_synth_keep_then_fetch_and_delete(self):
        src = synth.dumps(SYNTH_USER)
        self.assertSameMessages(self.run_fetchmail(SYNTH_USER, keep=True), src)
        self.assertEqual(self.stat(SYNTH_USER),
                         f"+OK 3 {sum(map(len, src))}\r\n".encode(), "keep must not delete")
        self.assertSameMessages(self.run_fetchmail(SYNTH_USER, keep=False), src)
        self.assertEqual(self.stat(SYNTH_USER), b"+OK 0 0\r\n", "fetched mail not deleted")

    def test_dovecot_keep_then_fetch_and_delete(self):
        keys = {s.key for s in dovecot.seeded[DOVE_USER]}
        self.assertSameMessages(self.run_fetchmail(DOVE_USER, keep=True), DOVE_MSGS)
        self.assertEqual(dovecot.present_keys(DOVE_USER), keys, "keep must not delete")
        self.assertSameMessages(self.run_fetchmail(DOVE_USER, keep=False), DOVE_MSGS)
        self.assertEqual(dovecot.present_keys(DOVE_USER), set(), "maildir not emptied")


if __name__ == "__main__":
    unittest.main()
