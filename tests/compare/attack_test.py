#!/usr/bin/env python3
"""bench/compare's attack workload end to end against popgate (short runs):
the good sessions alone, then beside spraying and stuffing attackers, with
popgate as a public endpoint (auth = "file", [limits] defaults but
exempt_networks = []). Checks that every run produced its figures, that the
good sessions counted no error, that attackers were answered and never let
in, and that the report has its "Under attack" section. The figures
themselves are not judged here (BENCHMARKS.md has a real run). Extra
arguments are passed to bench/compare/run."""
import compare_run


def main():
    r = compare_run.run("attack-smoke", [
        "--targets", "popgate", "--workloads", "attack", "--duration", "1.5",
        "--attackers", "8",
        # Failures, blocked tries and refusals answered sooner than
        # popgate's defaults (2 s, up to 30 s, 1 s), so that 1.5 s runs
        # see answers (the real runs keep the defaults).
        "--popgate-set", "auth_failure_delay=300ms",
        "--popgate-limits-set", "max_failure_delay=300ms",
        "--popgate-limits-set", "refusal_delay=100ms",
        "--no-redis", "--retries", "0"], timeout=200)
    res, md = r.res, r.md
    s = res["settings"]["attack"]
    assert s["hash_cpu_s"] and 1e-5 < s["hash_cpu_s"] < 1.0, s
    m = res["medians"]["popgate"]["plain"]
    base = m["attack-baseline"]
    assert base["sessions_per_s"] > 0 and base["errors"] == 0, base
    assert base["login_p99_ms"] is not None, base
    for pattern in ("spray", "stuff"):
        a = m[f"attack-{pattern}"]
        assert a["sessions_per_s"] > 0, (pattern, a)
        assert a["errors"] == 0, (pattern, a)
        assert a["attempts"] > 0 and a["rejected"] > 0, (pattern, a)
        assert a["accepted"] == 0, (pattern, a)
        assert a["sessions_ratio"] is not None, (pattern, a)
        assert a["p99_ratio"] is not None, (pattern, a)
        alone = m[f"attack-only-{pattern}"]
        assert alone["attempts"] > 0 and alone["rejected"] > 0, alone
        assert alone["accepted"] == 0, alone
        assert alone["cpu_us_per_rejected"] is not None, alone
    assert "### Under attack" in md and "÷ one hash" in md, md[:2000]
    print("compare attack: OK")


if __name__ == "__main__":
    main()
