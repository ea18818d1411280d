#!/usr/bin/env python3
"""bench/compare's --popgate-tenant-set and --synth-backends: the tenant
settings land in popgate's [[tenant]] (a dotted key in its sub-table),
client_identity=proxy-v2 starts pop3-synth with --proxy-protocol (a
session run with no errors needs both ends to agree on the header), active
health checks run against every backend (their backend_health lines), and
the result JSON records what was set. Arguments as smoke_test.py's."""
import json
import os
import sys
import tomllib

import compare_run

sys.path.insert(0, os.path.join(compare_run.REPO, "bench", "compare"))
import compare  # noqa: E402


def check_config_text():
    base = ('[server]\nworkers = 1\n\n[[listener]]\naddress = "127.0.0.1:1"\n'
            '\n[[tenant]]\nname = "a"\nbackends = []\n\n[[tenant]]\n'
            'name = "b"\nbackends = []\n')
    settings = compare.parse_settings(
        ["failover=next", 'client_identity="proxy-v2"',
         "health_check.interval=1s", "health_check.rise=1",
         "capabilities=[TOP, UIDL]"], "--popgate-tenant-set")
    text = compare.with_tenant_settings(base, settings)
    cfg = tomllib.loads(text)
    assert cfg["server"] == {"workers": 1}, cfg
    assert len(cfg["tenant"]) == 2, text
    for t in cfg["tenant"]:
        assert t["failover"] == "next", text
        assert t["client_identity"] == "proxy-v2", text
        assert t["capabilities"] == ["TOP", "UIDL"], text
        assert t["health_check"] == {"interval": "1s", "rise": 1}, text
    assert compare.with_tenant_settings(base, {}) == base
    for bad in ("noequals", "bad key=1", ".x=1", "a..b=1"):
        try:
            compare.parse_settings([bad], "--popgate-tenant-set")
        except SystemExit:
            continue
        raise AssertionError(f"{bad!r} was accepted")


def main():
    check_config_text()
    r = compare_run.run("tenant-set", [
        "--targets", "popgate", "--no-tls", "--workloads", "sessions",
        "--duration", "2", "--keep-tmp", "--synth-backends", "3",
        "--popgate-tenant-set", "client_identity=proxy-v2",
        "--popgate-tenant-set", "failover=next",
        "--popgate-tenant-set", "health_check.interval=1s",
        "--popgate-tenant-set", "health_check.timeout=500ms",
        "--popgate-tenant-set", "health_check.rise=1"], timeout=200)
    assert r.tmp, "no 'kept DIR' line"
    tmp = r.tmp
    try:
        res = r.res
        s = res["settings"]
        assert s["popgate_tenant_settings"] == {
            "client_identity": "proxy-v2", "failover": "next",
            "health_check.interval": "1s",
            "health_check.timeout": "500ms", "health_check.rise": 1}, s
        assert s["synth_proxy_protocol"] is True, s
        assert s["synth_backends"] == 3, s
        assert s["workloads"] == ["sessions"], s
        runs = r.runs()
        assert [x["workload"] for x in runs] == ["sessions"], runs
        m = res["medians"]["popgate"]["plain"]["sessions"]
        assert m["sessions"] > 0 and m["errors"] == 0, m
        assert m["cpu_s_per_1k_sessions"] > 0, m

        toml_text = open(os.path.join(tmp, "popgate", "popgate.toml")).read()
        cfg = tomllib.loads(toml_text)
        t = cfg["tenant"][0]
        assert len(t["backends"]) == 3, toml_text
        assert t["health_check"]["interval"] == "1s", toml_text
        # The checks (LOCAL header first, under proxy-v2) brought every
        # backend up: pop3-synth answered them on all three ports.
        log = open(os.path.join(tmp, "popgate", "popgate.stderr")).read()
        ups = set()
        for line in log.splitlines():
            if line.startswith("{"):
                rec = json.loads(line)
                if rec.get("event") == "backend_health" and rec.get("to") == "up":
                    ups.add(rec["backend"])
        want = {b["address"] for b in t["backends"]}
        assert ups == want, (ups, want)
    finally:
        r.remove()
    print("compare tenant-set: OK")


if __name__ == "__main__":
    main()
