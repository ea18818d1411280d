#!/usr/bin/env python3
"""bench/compare's cost curves (issue 12): the rates workload (loadgen
--rate, open loop) and the concurrency workload (closed loop at several
levels) against direct and popgate, tiny settings. Checks that every point
ran with no errors, reached its figures, and that the report has the
tables and plots. Figures are not judged. Arguments as smoke_test.py's."""
import compare_run

RATES = [200, 1000]
LEVELS = [8, 64]


def main():
    if not compare_run.has_loadgen():
        print("compare curves: SKIP (no loadgen)")
        return
    r = compare_run.run("curves", [
        "--targets", "direct,popgate", "--workloads", "rates,concurrency",
        "--duration", "0.5", "--rates", ",".join(map(str, RATES)),
        "--concurrency-levels", ",".join(map(str, LEVELS)),
        "--max-background", "100"], timeout=120)
    res, tag = r.res, r.tag
    s = res["settings"]
    assert s["rates"] == RATES and s["concurrency_levels"] == LEVELS, s
    for t in ("direct", "popgate"):
        m = res["medians"][t]["plain"]
        for rate in RATES:
            p = m[f"rate-{rate}"]
            assert p["offered_rate"] == rate, p
            assert p["sessions"] > 0 and p["sessions_per_s"] > 0, p
            assert p["latency_p99_ms"] > 0 and p["errors"] == 0, p
            if t == "popgate":
                assert p["cpu_ms_per_session"] > 0, p
        for level in LEVELS:
            p = m[f"concurrency-{level}"]
            assert p["concurrency"] == level, p
            assert p["sessions"] > 0 and p["sessions_per_s"] > 0, p
            assert p["latency_p99_ms"] > 0 and p["errors"] == 0, p
            if t == "popgate":
                assert p["cpu_s_per_1k_sessions"] > 0, p
    raw = next(x["raw"] for x in res["runs"]
               if x["workload"] == f"rate-{RATES[0]}")
    assert raw["offered_rate"] == RATES[0] and "late" in raw, raw
    md = r.md
    assert "### Cost per session at fixed offered rates" in md, md
    assert "### Sessions at several concurrency levels" in md, md
    assert f"]({tag}-rates.png)" in md, md
    for name in ("rates", "concurrency"):
        size = r.plot(name)
        if size is None:
            print("compare curves: OK (no matplotlib: plots not checked)")
            return
        assert size > 1000, name
    print("compare curves: OK")


if __name__ == "__main__":
    main()
