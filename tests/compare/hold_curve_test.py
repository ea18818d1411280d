#!/usr/bin/env python3
"""bench/compare's idle-sessions curve (issue 12, --hold-counts): the hold
workload at two small counts against popgate, plain and TLS; every point
has memory per session, a fill time and a fill rate (> 0), no errors, and
the report has its table and plot. Also the curve's configuration helpers
(backend ports of a big hold, nginx's split_clients, the "hold" alias the
old tables read) without servers, and the big-hold set-up (backend
connections spread over several pop3-synth ports) at small counts. Arguments as smoke_test.py's."""
import os
import sys

import compare_run

sys.path.insert(0, os.path.join(compare_run.REPO, "bench", "compare"))
import compare  # noqa: E402

COUNTS = [100, 300]


def check_helpers():
    ctx = compare.Ctx()
    ctx.hold_per_backend = 14000
    ctx.hold_synth_ports = list(range(2001, 2011))
    ctx.synth_port = 2000
    ctx.nofile = 420000
    assert compare.hold_backend_ports(ctx, 10000) is None
    assert compare.hold_backend_ports(ctx, 100000) == list(range(2001, 2009))
    n = compare.Nginx(ctx)
    assert n.port_map() == "" and n.auth_port() == 2000
    assert n.worker_connections() == 30000
    n.hold_count = 100000
    assert n.worker_connections() == 202000, n.worker_connections()
    text = n.port_map()
    assert "split_clients" in text and "* 2008;" in text, text
    assert text.count("12.50%") == 7, text
    assert n.auth_port() == "$synth_port"
    h = compare.Haproxy(ctx)
    h.hold_count = 100000
    assert h.servers().count("server s") == 8, h.servers()
    med = {"popgate": {"plain": {"hold-100": {"rss_kib_per_session": 5.0},
                                 "hold-300": {"rss_kib_per_session": 4.0}}}}
    compare.alias_hold(med)
    assert med["popgate"]["plain"]["hold"] == {"rss_kib_per_session": 4.0}


def main():
    check_helpers()
    r = compare_run.run("hold-curve", [
        "--targets", "popgate", "--workloads", "hold",
        "--hold-counts", ",".join(map(str, COUNTS)),
        # The 100,000-session set-up (backend connections spread over
        # several pop3-synth ports) at small counts: 300 -> 3 ports.
        "--hold-per-backend", "100"], timeout=100)
    res, tag = r.res, r.tag
    s = res["settings"]
    assert s["hold_counts"] == COUNTS, s
    assert s["hold_backend_ports"] == 3, s
    med = res["medians"]["popgate"]
    for variant in ("plain", "tls-ecdsa"):
        for n in COUNTS:
            m = med[variant][f"hold-{n}"]
            assert m["count"] == n and m["held"] == n, m
            assert m["errors"] == 0 and m["missing"] == 0, m
            for k in ("rss_kib_per_session", "pss_kib_per_session",
                      "fill_s", "fill_sessions_per_s"):
                assert isinstance(m[k], (int, float)) and m[k] > 0, (k, m)
        runs = [x for x in res["runs"] if x["variant"] == variant and
                x["workload"] == f"hold-{COUNTS[-1]}"]
        spread = runs[0]["raw"]["backend_conns_per_port"]
        assert len(spread) == 3 and all(v > 0 for v in spread.values()) \
            and sum(spread.values()) >= COUNTS[-1], spread
        # The classic hold columns read the largest count.
        assert med[variant]["hold"]["count"] == COUNTS[-1], med[variant]
    assert "### Idle sessions: memory per session and time to fill" in r.md
    assert f"{tag}-idle-sessions.png" in r.md
    assert r.plot("idle-sessions") != 0
    print("compare hold-curve: OK")


if __name__ == "__main__":
    main()
