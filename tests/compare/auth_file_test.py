#!/usr/bin/env python3
"""bench/compare's auth-file workload (issue 12) against popgate, --quick:
both schemes (SHA512-CRYPT, ARGON2ID) ran, each with sessions and no
errors; popgate ran with auth = "file", auth_threads = the proxy CPUs and
its auth cache off, against a passwd-file of that scheme; the report has
the table. Figures not judged. Arguments as smoke_test.py's."""
import os
import tomllib

import compare_run


def main():
    r = compare_run.run("auth-file", [
        "--targets", "popgate", "--workloads", "auth-file", "--keep-tmp"],
        timeout=150)
    assert r.tmp, "no 'kept DIR' line"
    try:
        res = r.res
        s = res["settings"]
        assert s["workloads"] == ["auth-file"], s
        a = s["auth_file"]
        assert set(a["schemes"]) == {"sha512-crypt", "argon2id"}, a
        assert a["schemes"]["sha512-crypt"]["hash"].startswith("$6$"), a
        assert a["schemes"]["argon2id"]["hash"].startswith(
            "$argon2id$"), a
        runs = r.runs()
        assert sorted((x["variant"], x["workload"]) for x in runs) == [
            ("argon2id", "auth-file"), ("sha512-crypt", "auth-file")], runs
        for scheme in ("sha512-crypt", "argon2id"):
            m = res["medians"]["popgate"][scheme]["auth-file"]
            assert m["sessions_per_s"] > 0, (scheme, m)
            assert m["errors"] == 0, (scheme, m)
            assert m["cpu_s_per_1k_sessions"] > 0, (scheme, m)

        # The last start (ARGON2ID) left its config and passwd-file.
        d = os.path.join(r.tmp, "popgate")
        cfg = tomllib.loads(open(os.path.join(d, "popgate.toml")).read())
        assert cfg["server"]["auth_threads"] == a["popgate_auth_threads"], cfg
        assert a["popgate_auth_threads"] >= 1, a
        t = cfg["tenant"][0]
        assert t["auth"] == "file" and t["auth_cache_size"] == 0, t
        lines = open(os.path.join(d, t["passwd_file"])).read().splitlines()
        assert len(lines) == s["users"], len(lines)
        assert all(":{ARGON2ID}$argon2id$" in x for x in lines), lines[:2]

        md = r.md
        assert "Sessions with passwords checked by the proxy" in md, md
        assert "| **popgate** | ARGON2ID |" in md, md
    finally:
        r.remove()
    print("compare auth-file: OK")


if __name__ == "__main__":
    main()
