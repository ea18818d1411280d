#!/usr/bin/env python3
"""bench/compare's cost curves (issue 12): the rates workload (loadgen
--rate, open loop) and the concurrency workload (closed loop at several
levels) against direct and popgate, tiny settings. Checks that every point
ran with no errors, reached its figures, and that the report has the
tables and plots. Figures are not judged. Arguments as smoke_test.py's."""
import json
import os
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RATES = [200, 1000]
LEVELS = [8, 64]


def main():
    extra = sys.argv[1:]
    if "--loadgen-bin" not in extra:
        print("compare curves: SKIP (no loadgen)")
        return
    out = extra[extra.index("--out") + 1]
    tag = "curves"
    cmd = [os.path.join(REPO, "bench", "compare", "run"), "--quick",
           "--no-install", "--no-build", "--targets", "direct,popgate",
           "--workloads", "rates,concurrency", "--duration", "0.5",
           "--rates", ",".join(map(str, RATES)),
           "--concurrency-levels", ",".join(map(str, LEVELS)),
           "--max-quiet-wait", "0", "--max-background", "100",
           "--tag", tag] + extra
    print("+", " ".join(cmd), flush=True)
    r = subprocess.run(cmd, timeout=120, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    sys.stdout.write(r.stdout)
    assert r.returncode == 0, f"bench/compare/run exited {r.returncode}"
    res = json.load(open(os.path.join(out, f"{tag}.json")))
    assert not res["unavailable"], res["unavailable"]
    s = res["settings"]
    assert s["rates"] == RATES and s["concurrency_levels"] == LEVELS, s
    failed = [x for x in res["runs"] if x["error"]]
    assert not failed, failed
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
    md = open(os.path.join(out, f"{tag}.md")).read()
    assert "### Cost per session at fixed offered rates" in md, md
    assert "### Sessions at several concurrency levels" in md, md
    assert f"]({tag}-rates.png)" in md, md
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("compare curves: OK (no matplotlib: plots not checked)")
        return
    for name in ("rates", "concurrency"):
        png = os.path.join(out, f"{tag}-{name}.png")
        assert os.path.getsize(png) > 1000, png
    print("compare curves: OK")


if __name__ == "__main__":
    main()
