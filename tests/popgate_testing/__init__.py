"""Starts and drives the processes popgate's tests and benchmarks need, on
loopback only: pop3-synth, a real Dovecot, popgate itself, misbehaving fake
backends, POP3 and TLS clients.  Shared by tests/integration (through its
thin ``harness`` and ``tlsharness`` modules) and bench/compare.

One module per job:

  paths        where the binaries are, the repository, temp dirs
  ports        free loopback ports, waiting for a greeting, polling
  processes    spawn / stop by PID, cleanup at exit, with-block servers,
               sanitizer reports in a process's output
  messages     deterministic test messages (dot-stuffing traps), TOP
  client       a raw POP3 client (exact bytes), poplib and curl helpers
  synth        pop3-synth
  dovecot      a real Dovecot (plain, or with TLS)
  pki          a test CA and certificates (openssl CLI)
  tls          TLS clients, s_client, curl over TLS, kTLS availability
  popgate      popgate's generated config, start/stop/reload, log records
  fakebackend  a TCP backend that misbehaves on purpose, relays, or follows
               a POP3 script (ending(), refusing())
  helpers      small shared test helpers (/proc connection check, resets,
               loadgen's path, unstarted popgate configs, setUpModule cleanup)
  testcase     unittest helpers that clean every process up

Python 3.11 standard library only.  Processes are stopped by PID only, and
get PR_SET_PDEATHSIG so that nothing outlives a killed runner.
"""
