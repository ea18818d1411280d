"""The admin API (issue 11), against a popgate with two tenants on
pop3-synth backends (--verbose: they log every command they get):

* GET /healthz and /readyz answer without a token; everything else needs
  "Authorization: Bearer <token>" (401 without it or with a wrong one), and
  the token never appears in popgate's output.
* GET /metrics: Prometheus text (OpenMetrics with its Accept header, ending
  "# EOF"); `promtool check metrics` passes on the scrape; a real Prometheus
  server scraping it with the token sees the target "up" and answers a
  query for popgate_workers.
* GET /sessions lists a live session (id, client, tenant, user, backend,
  state) and filters by tenant, user and backend; POST /sessions/{id}/close
  closes that client's connection and the backend never sees a QUIT.
* POST /backends/{addr}/drain: new logins go to the next backend (failover
  "next") or get -ERR [SYS/TEMP] (a one-backend tenant), as a config drain
  does, while a running session goes on; /up undoes it; /down cuts the
  sessions on it.
* POST /reload: the SIGHUP path; its JSON says ok, or failed (409) for a
  broken config, which stays out of force.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import unittest
import urllib.parse

import harness
from harness import RawClient

PW = "Admin-pw-1"
TOKEN = "tok-3f9a1c7e5b2d4086"
MULTI_USERS = [f"m{i}@multi.example" for i in range(6)]
SOLO_USER = "s@solo.example"

res = harness.ModuleResources()
syn_a = syn_b = syn_solo = pg = None
admin_port = 0
tmp = None


def setUpModule():
    global syn_a, syn_b, syn_solo, pg, admin_port, tmp
    with harness.closing_on_error(res):
        users = {u: PW for u in MULTI_USERS + [SOLO_USER]}
        syn_a = res.add(harness.Synth(users, sizes=[100], extra_args=["--verbose"]))
        syn_b = res.add(harness.Synth(users, sizes=[200], extra_args=["--verbose"]))
        syn_solo = res.add(harness.Synth(users, sizes=[300], extra_args=["--verbose"]))
        tmp = harness.make_tempdir("admin")
        token_path = os.path.join(tmp, "admin.token")
        with open(token_path, "w") as f:
            f.write(TOKEN + "\n")
        admin_port = harness.free_port()
        tenants = [
            harness.Tenant("multi", ["multi.example"], [syn_a.address, syn_b.address],
                           users={u: PW for u in MULTI_USERS},
                           settings={"failover": "next"}),
            harness.Tenant("solo", ["solo.example"], [syn_solo.address],
                           users={SOLO_USER: PW}),
        ]
        pg = res.add(harness.Popgate(tenants, extra_toml=(
            "[admin]\n"
            f"listen = \"127.0.0.1:{admin_port}\"\n"
            f"token_file = \"{token_path}\"\n")))


def tearDownModule():
    res.close()
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)


def http(method: str, path: str, token: str | None = TOKEN, headers=None,
         port: int | None = None, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    """One request over a raw socket (what curl sends): status, headers, body."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port or admin_port}"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if method == "POST":
        lines.append("Content-Length: 0")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode()
    with socket.create_connection((harness.LOOPBACK, port or admin_port), timeout=timeout) as s:
        s.sendall(raw)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *hdrs = head.decode().split("\r\n")
    hmap = {}
    for h in hdrs:
        k, _, v = h.partition(":")
        hmap[k.strip().lower()] = v.strip()
    return int(status_line.split()[1]), hmap, body


def sessions(**query) -> list[dict]:
    q = ("?" + urllib.parse.urlencode(query)) if query else ""
    status, _, body = http("GET", "/sessions" + q)
    assert status == 200, (status, body)
    return json.loads(body)["sessions"]


def wait_sessions(timeout: float = 5.0, **query) -> list[dict]:
    got = harness.wait_until(lambda: [s for s in sessions(**query)
                                      if s["state"] == "forwarding"],
                             harness.scaled(timeout))
    return got or []


def quit_count(syn) -> int:
    with open(syn.err_path, "rb") as f:
        return f.read().count(b"C: QUIT")


class AuthAndProbesTest(unittest.TestCase):
    def test_probes_need_no_token(self):
        status, _, body = http("GET", "/healthz", token=None)
        self.assertEqual((status, body), (200, b"ok\n"))
        # No active checks: the first round is done at once.
        status, _, body = http("GET", "/readyz", token=None)
        self.assertEqual((status, body), (200, b"ready\n"))

    def test_token_required(self):
        for path in ("/metrics", "/sessions"):
            status, hdrs, _ = http("GET", path, token=None)
            self.assertEqual(status, 401, path)
            self.assertIn("bearer", hdrs.get("www-authenticate", "").lower())
            self.assertEqual(http("GET", path, token="nottheone")[0], 401, path)
            self.assertEqual(http("GET", path, token=TOKEN[:-1])[0], 401, path)
            self.assertEqual(http("GET", path)[0], 200, path)
        self.assertEqual(http("POST", "/reload", token=None)[0], 401)
        self.assertEqual(http("GET", "/nothing")[0], 404)
        self.assertEqual(http("POST", "/metrics")[0], 405)
        # The token is never logged; refusals are.
        self.assertNotIn(TOKEN.encode(), pg.output_bytes())
        self.assertIsNotNone(pg.wait_for_record(event="admin_request", status=401))


class CurlTest(unittest.TestCase):
    """What an operator types: curl against the API, as the docs show it."""

    def curl(self, *args: str) -> tuple[int, str]:
        r = subprocess.run([harness.CURL, "-sS", "-o", "-", "-w", "\n%{http_code}",
                            *args], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        body, _, code = r.stdout.rpartition("\n")
        return int(code), body

    def test_curl(self):
        if not os.path.exists(harness.CURL):
            self.skipTest("curl not installed")
        base = f"http://127.0.0.1:{admin_port}"
        auth = ("-H", f"Authorization: Bearer {TOKEN}")
        self.assertEqual(self.curl(f"{base}/healthz"), (200, "ok\n"))
        code, body = self.curl(*auth, f"{base}/metrics")
        self.assertEqual(code, 200)
        self.assertIn("popgate_workers ", body)
        self.assertEqual(self.curl(f"{base}/metrics")[0], 401)
        code, body = self.curl(*auth, "-H", "Accept: application/openmetrics-text",
                               f"{base}/metrics")
        self.assertEqual(code, 200)
        self.assertTrue(body.rstrip().endswith("# EOF"), body[-200:])
        code, body = self.curl(*auth, f"{base}/sessions?tenant=solo")
        self.assertEqual(code, 200)
        self.assertIsInstance(json.loads(body), (list, dict))
        code, body = self.curl(*auth, "-X", "POST", f"{base}/reload")
        self.assertEqual(code, 200, body)
        self.assertEqual(json.loads(body).get("result"), "ok", body)


class MetricsTest(unittest.TestCase):
    def test_prometheus_text(self):
        status, hdrs, body = http("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertIn("version=0.0.4", hdrs["content-type"])
        text = body.decode()
        for want in ("# TYPE popgate_sessions_total counter",
                     "# TYPE popgate_login_duration_seconds histogram",
                     "popgate_workers 2\n",
                     'popgate_build_info{version="',
                     f'popgate_backend_health{{tenant="multi",backend="{syn_a.address}",'
                     'state="unknown"} 1',
                     f'popgate_backend_admin_state{{tenant="solo",backend="{syn_solo.address}",'
                     'state="up"} 1',
                     'popgate_pool_queue_limit{pool="hash"} 1024',
                     'popgate_active_sessions{worker="0"}'):
            self.assertIn(want, text)

    def test_session_end_moves_the_session_metrics(self):
        """Each session's end reaches the metrics (session.cc's one
        RecordSessionEnd call beside the session log line)."""
        listener = f"{harness.LOOPBACK}:{pg.port}"
        series = {
            "ok": f'popgate_sessions_total{{listener="{listener}",result="ok"}}',
            "login_ok": 'popgate_logins_total{tenant="solo",mechanism="user",result="ok"}',
            "login_failed":
                'popgate_logins_total{tenant="solo",mechanism="user",result="failed"}',
            "latency": 'popgate_login_duration_seconds_count{tenant="solo"}',
            "duration": f'popgate_session_duration_seconds_count{{listener="{listener}"}}',
            "forwarded": 'popgate_forwarded_sessions_total{path="splice"}',
        }

        def scrape() -> dict[str, float]:
            _, _, body = http("GET", "/metrics")
            values = {}
            for line in body.decode().splitlines():
                if line.startswith("#"):
                    continue
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
            return {k: values.get(s, 0.0) for k, s in series.items()}

        before = scrape()
        with RawClient(pg.port) as c:
            self.assertTrue(c.login(SOLO_USER, PW).startswith(b"+OK"))
            c.cmd_ok("QUIT")
            c.read_until_closed(5)
        with RawClient(pg.port) as c:
            self.assertTrue(c.login(SOLO_USER, "wrong-" + PW).startswith(b"-ERR"))
        want = {"ok": 1, "login_ok": 1, "login_failed": 1, "latency": 2,
                "duration": 2, "forwarded": 1}
        deltas = {}

        def moved():
            now = scrape()
            deltas.update({k: now[k] - before[k] for k in series})
            return all(deltas[k] >= v for k, v in want.items())
        harness.wait_until(moved, harness.scaled(5))
        self.assertEqual({k: deltas[k] >= v for k, v in want.items()},
                         {k: True for k in want}, deltas)
        # The latency histogram's sum moved by a positive amount too.
        _, _, body = http("GET", "/metrics")
        self.assertRegex(body.decode(),
                         r'popgate_login_duration_seconds_sum\{tenant="solo"\} [0-9.e-]+')

    def test_openmetrics(self):
        status, hdrs, body = http("GET", "/metrics", headers={
            "Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"})
        self.assertEqual(status, 200)
        self.assertIn("application/openmetrics-text", hdrs["content-type"])
        self.assertTrue(body.endswith(b"# EOF\n"))
        self.assertIn(b"# TYPE popgate_sessions counter\n", body)

    def test_promtool_check_metrics(self):
        promtool = shutil.which("promtool")
        if promtool is None:
            self.skipTest("promtool not installed (scripts/install-deps.sh installs prometheus)")
        _, _, body = http("GET", "/metrics")
        r = subprocess.run([promtool, "check", "metrics"], input=body,
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_real_prometheus_scrapes(self):
        prom = shutil.which("prometheus")
        if prom is None:
            self.skipTest("prometheus not installed (scripts/install-deps.sh installs it)")
        d = harness.make_tempdir("prometheus")
        self.addCleanup(shutil.rmtree, d, True)
        token_file = os.path.join(d, "token")
        with open(token_file, "w") as f:
            f.write(TOKEN)
        web_port = harness.free_port()
        with open(os.path.join(d, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: popgate\n"
                    "    authorization:\n"
                    f"      credentials_file: {token_file}\n"
                    "    static_configs:\n"
                    f"      - targets: ['127.0.0.1:{admin_port}']\n")
        log = open(os.path.join(d, "prometheus.log"), "wb")
        proc = harness.spawn([prom, f"--config.file={d}/prometheus.yml",
                              f"--storage.tsdb.path={d}/data",
                              f"--web.listen-address=127.0.0.1:{web_port}"],
                             stdout=log, stderr=log)
        log.close()
        self.addCleanup(harness.stop_process, proc, signal.SIGTERM, 10)

        def api(path):
            with socket.create_connection((harness.LOOPBACK, web_port), timeout=5) as s:
                s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            return json.loads(data.partition(b"\r\n\r\n")[2])

        def target_up():
            try:
                targets = api("/api/v1/targets")["data"]["activeTargets"]
            except (OSError, ValueError, KeyError):
                return None
            return [t for t in targets if t.get("health") == "up"] or None

        up = harness.wait_until(target_up, harness.scaled(20), interval=0.2)
        with open(os.path.join(d, "prometheus.log"), "rb") as f:
            self.assertTrue(up, f.read()[-2000:])

        def query():
            try:
                r = api("/api/v1/query?query=popgate_workers")
            except (OSError, ValueError):
                return None
            return r["data"]["result"] or None

        result = harness.wait_until(query, harness.scaled(10), interval=0.2)
        self.assertTrue(result)
        self.assertEqual(result[0]["value"][1], "2")
        self.check_dashboard(api)

    def check_dashboard(self, api):
        """deploy/grafana/popgate.json: every query Prometheus accepts, and
        every series it reads is one popgate exports (so a renamed metric
        fails here, not on an operator's screen)."""
        with open(os.path.join(harness.REPO, "deploy", "grafana", "popgate.json")) as f:
            dash = json.load(f)
        _, _, body = http("GET", "/metrics")
        exported = set(re.findall(r"^# TYPE (\S+) (\S+)$", body.decode(), re.M))
        names = set()
        for name, kind in exported:
            # A counter's TYPE line names it with its _total already.
            suffixes = {"histogram": ["_bucket", "_sum", "_count"]}
            names.update(name + s for s in suffixes.get(kind, [""]))
        exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
        exprs += [v["query"]["query"] for v in dash["templating"]["list"]
                  if isinstance(v.get("query"), dict)]
        self.assertGreater(len(exprs), 20)
        for expr in exprs:
            used = set(re.findall(r"\bpopgate_[a-z_]+", expr))
            self.assertTrue(used, expr)
            self.assertLessEqual(used, names, f"not exported: {used - names} in {expr}")
            if expr.startswith("label_values("):
                continue  # Grafana's own function, not PromQL
            q = (expr.replace("$__rate_interval", "1m").replace("$job", ".*")
                 .replace("$instance", ".*"))
            r = api("/api/v1/query?query=" + urllib.parse.quote(q))
            self.assertEqual(r.get("status"), "success", (q, r))
        # Panels sit on the 24-column grid without overlapping.
        cells = set()
        for p in dash["panels"]:
            g = p["gridPos"]
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
            for cx in range(g["x"], g["x"] + g["w"]):
                for cy in range(g["y"], g["y"] + g["h"]):
                    self.assertNotIn((cx, cy), cells, p["title"])
                    cells.add((cx, cy))


class SessionsTest(unittest.TestCase):
    def test_list_filter_and_close_without_quit(self):
        user = MULTI_USERS[0]
        c = RawClient(pg.port)
        self.addCleanup(c.close)
        self.assertTrue(c.login(user, PW).startswith(b"+OK"))
        listed = wait_sessions(user=user)
        self.assertEqual(len(listed), 1, sessions())
        s = listed[0]
        self.assertEqual(s["tenant"], "multi")
        self.assertIn(s["backend"], (syn_a.address, syn_b.address))
        self.assertTrue(s["client"].startswith("127.0.0.1:"))
        self.assertEqual(s["listener"], f"{harness.LOOPBACK}:{pg.port}")
        self.assertEqual(s["mechanism"], "USER")
        self.assertGreaterEqual(s["age_seconds"], 0)
        self.assertEqual(sessions(user=user, tenant="solo"), [])
        self.assertEqual(len(sessions(user=user, backend=s["backend"])), 1)
        self.assertEqual(sessions(user="nobody@multi.example"), [])

        syn = syn_a if s["backend"] == syn_a.address else syn_b
        quits = quit_count(syn)
        status, _, body = http("POST", f"/sessions/{s['id']}/close")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body), {"closed": s["id"]})
        self.assertTrue(c.is_closed(harness.scaled(5)))
        harness.wait_until(lambda: not sessions(user=user), harness.scaled(5))
        self.assertEqual(sessions(user=user), [])
        time.sleep(0.2)  # what the backend logs after its socket closed
        self.assertEqual(quit_count(syn), quits)
        status, _, _ = http("POST", f"/sessions/{s['id']}/close")
        self.assertEqual(status, 404)
        # The id is the session log line's "session" (docs/logging.md).
        rec = pg.wait_for_record(event="session", session=s["id"])
        self.assertIsNotNone(rec)
        self.assertEqual((rec["user"], rec["start"]), (user, s["start"]))


def login_backend(user: str) -> tuple[RawClient, str]:
    """Logs `user` in; returns the client and the backend it went to."""
    c = RawClient(pg.port)
    r = c.login(user, PW)
    assert r.startswith(b"+OK"), r
    got = wait_sessions(user=user)
    assert len(got) == 1, got
    return c, got[0]["backend"]


def quit_and_wait(c: RawClient, user: str) -> None:
    c.cmd_ok("QUIT")
    c.close()
    harness.wait_until(lambda: not sessions(user=user), harness.scaled(5))


class BackendStateTest(unittest.TestCase):
    def tearDown(self):
        for a in (syn_a.address, syn_b.address, syn_solo.address):
            http("POST", f"/backends/{a}/up")

    def test_drain_moves_new_logins_and_up_brings_them_back(self):
        user = MULTI_USERS[1]
        c, first = login_backend(user)
        quit_and_wait(c, user)
        other = syn_b.address if first == syn_a.address else syn_a.address
        status, _, body = http("POST", f"/backends/{first}/drain")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body),
                         {"backend": first, "state": "drain", "tenants": ["multi"]})
        _, _, metrics = http("GET", "/metrics")
        self.assertIn(f'popgate_backend_admin_state{{tenant="multi",backend="{first}",'
                      'state="drain"} 1'.encode(), metrics)
        c, moved = login_backend(user)
        self.assertEqual(moved, other)
        quit_and_wait(c, user)
        self.assertEqual(http("POST", f"/backends/{first}/up")[0], 200)
        c, back = login_backend(user)
        self.assertEqual(back, first)
        quit_and_wait(c, user)
        # The log writer gathers lines for a few ms before it writes them; on
        # a loaded CI machine that thread may not have run yet.
        self.assertIsNotNone(pg.wait_for_record(event="backend_admin_state",
                                                backend=first, state="drain"))

    def test_drain_single_backend_refuses_new_keeps_running(self):
        running = RawClient(pg.port)
        self.addCleanup(running.close)
        self.assertTrue(running.login(SOLO_USER, PW).startswith(b"+OK"))
        wait_sessions(user=SOLO_USER)
        self.assertEqual(http("POST", f"/backends/{syn_solo.address}/drain")[0], 200)
        with RawClient(pg.port) as c:
            r = c.login(SOLO_USER, PW)
            self.assertTrue(r.startswith(b"-ERR [SYS/TEMP]"), r)
        # The running session goes on.
        self.assertTrue(running.cmd(b"STAT").startswith(b"+OK"))
        quit_and_wait(running, SOLO_USER)

    def test_down_cuts_sessions(self):
        c = RawClient(pg.port)
        self.addCleanup(c.close)
        self.assertTrue(c.login(SOLO_USER, PW).startswith(b"+OK"))
        wait_sessions(user=SOLO_USER)
        quits = quit_count(syn_solo)
        self.assertEqual(http("POST", f"/backends/{syn_solo.address}/down")[0], 200)
        self.assertTrue(c.is_closed(harness.scaled(5)))
        rec = pg.wait_for_record(user=SOLO_USER, result="backend_cut")
        self.assertIsNotNone(rec)
        self.assertEqual(quit_count(syn_solo), quits)

    def test_unknown_backend(self):
        status, _, body = http("POST", "/backends/127.0.0.1:1/drain")
        self.assertEqual(status, 404, body)


class ReloadTest(unittest.TestCase):
    def test_reload_ok_and_failed(self):
        status, _, body = http("POST", "/reload")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["result"], "ok")
        with open(pg.config_path) as f:
            good = f.read()
        self.addCleanup(pg.write_config)
        with open(pg.config_path, "w") as f:
            f.write(good + "\n[server]\nworkers = 1\n")  # a duplicate table
        status, _, body = http("POST", "/reload")
        self.assertEqual(status, 409, body)
        got = json.loads(body)
        self.assertEqual(got["result"], "failed")
        self.assertIn("popgate.toml", got["error"])
        _, _, metrics = http("GET", "/metrics")
        self.assertIn(b'popgate_reloads_total{result="failed"} 1', metrics)
        self.assertIn(b"popgate_config_last_reload_successful 0", metrics)


if __name__ == "__main__":
    unittest.main()
