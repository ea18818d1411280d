#!/usr/bin/env python3
"""Runs bench/compare/run --quick against direct and popgate (sessions,
RETR throughput, TLS handshakes, idle sessions) and checks that every
workload produced a figure without errors and that the result files were
written. Extra arguments are passed to bench/compare/run."""
import compare_run

# The other workloads (rates, concurrency, auth-file, attack) have tests of
# their own (curves_test.py, auth_file_test.py, attack_test.py).
WORKLOADS = "sessions,throughput,handshake,hold"


def main():
    r = compare_run.run("smoke", ["--targets", "direct,popgate",
                                  "--workloads", WORKLOADS,
                                  "--hold-counts", "200",
                                  "--duration", "0.5"], timeout=220)
    assert r.md
    m = r.res["medians"]
    checks = [
        ("direct", "plain", "sessions", "sessions_per_s"),
        ("direct", "plain", "throughput", "mb_per_s"),
        ("popgate", "plain", "sessions", "sessions_per_s"),
        ("popgate", "plain", "sessions", "cpu_s_per_1k_sessions"),
        ("popgate", "plain", "throughput", "mb_per_s"),
        ("popgate", "plain", "throughput", "load_cpu_s_per_gb"),
        ("popgate", "plain", "hold", "held"),
        ("popgate", "tls-ecdsa", "handshake-full", "handshakes_per_s"),
        ("popgate", "tls-ecdsa", "handshake-resumed", "handshakes_per_s"),
        ("popgate", "tls-ecdsa", "throughput", "mb_per_s"),
        ("popgate", "tls-ecdsa", "hold", "held"),
        ("popgate", "tls-rsa", "handshake-full", "handshakes_per_s"),
    ]
    for t, v, wl, k in checks:
        val = m[t][v][wl][k]
        assert isinstance(val, (int, float)) and val > 0, (t, v, wl, k, val)
        assert m[t][v][wl]["errors"] == 0, (t, v, wl, m[t][v][wl])
    # Segments per MB on both legs, from ss -ti while the load ran: there
    # whenever `ss` saw the connections at least twice (not always within
    # a 1 s run on a busy machine).
    for t, k in (("direct", "segs_per_mb_to_client"),
                 ("popgate", "segs_per_mb_to_client"),
                 ("popgate", "segs_per_mb_from_backend")):
        tp = m[t]["plain"]["throughput"]
        if tp.get("segs_samples", 0) >= 2:
            assert isinstance(tp[k], (int, float)) and tp[k] > 0, (t, k, tp)
    share = m["popgate"]["tls-ecdsa"]["handshake-resumed"]["resumed_share"]
    assert share > 0.9, f"popgate resumed only {share:.0%} of its tickets"
    print("compare smoke: OK")


if __name__ == "__main__":
    main()
