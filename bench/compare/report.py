#!/usr/bin/env python3
"""Turns a bench/compare result file (bench/results/<tag>.json) into
<tag>.md (tables with ratios against direct and nginx, the issue-4 targets)
and PNG plots (<tag>-*.png, matplotlib Agg backend).

  report.py bench/results/<tag>.json [--update BENCHMARKS.md]

--update replaces what lies between the markers
<!-- compare:begin --> and <!-- compare:end --> in that file with the
tables and plots of this result.
"""
import json
import os
import sys

ORDER = ["direct", "popgate", "nginx", "dovecot-proxy", "perdition",
         "haproxy"]
COLORS = {"direct": "#888888", "popgate": "#d62728", "nginx": "#2ca02c",
          "dovecot-proxy": "#1f77b4", "perdition": "#9467bd",
          "haproxy": "#ff7f0e"}


def get(res, target, variant, workload, metric):
    try:
        v = res["medians"][target][variant][workload][metric]
    except (KeyError, TypeError):
        return None
    return v


def segs(to_client, from_backend):
    if to_client is None:
        return "–"
    return fmt(to_client) + (f" / {fmt(from_backend)}"
                             if from_backend is not None else "")


def fmt(v, digits=3):
    if v is None:
        return "–"
    if isinstance(v, int):
        return f"{v:,}"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def busy(res, t, v, wl):
    a = get(res, t, v, wl, "busy_load_cpu")
    b = get(res, t, v, wl, "busy_proxy_cpu")
    if a is None and b is None:
        return "–"
    f = lambda x: "–" if x is None else f"{x * 100:.0f}%"  # noqa: E731
    return f"{f(a)} / {f(b)}"


def client_of(run):
    """Which client ran a run: recorded since loadgen took over the TLS
    workloads; older files only have pop3client.py's own "client" key."""
    return (run.get("client") or run.get("raw", {}).get("client")
            or "loadgen")


def py_tls(res):
    """True if pop3client.py (CPU-bound on the load core) ran any TLS run."""
    return any(client_of(r) == "pop3client.py" for r in res["runs"]
               if r["variant"].startswith("tls") and not r["error"])


def targets_of(res):
    ts = [t for t in ORDER if t in res.get("targets", ORDER)]
    return ts


def table(header, rows):
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for r in rows:
        out.append("| " + " | ".join(r) + " |")
    return "\n".join(out)


def errors_of(res, target, variant, workloads):
    n = 0
    for wl in workloads:
        v = get(res, target, variant, wl, "errors")
        if v:
            n += v
    failed = [r for r in res["runs"] if r["target"] == target and
              r["variant"] == variant and r["workload"] in workloads and
              r["error"]]
    s = str(n)
    if failed:
        s += f" (+{len(failed)} failed runs)"
    return s


STANDARD_WORKLOADS = {"sessions", "throughput", "handshake", "hold"}
ATTACK_ORDER = ["popgate", "nginx", "dovecot-proxy"]


def has_standard(res):
    wl = set(res.get("settings", {}).get("workloads", STANDARD_WORKLOADS))
    return bool(wl & STANDARD_WORKLOADS)


def has_attack(res):
    return any(r["workload"].startswith("attack-") for r in res["runs"])


def us(v):
    return "–" if v is None else fmt(v)


def attack_md(res):
    """The attack workload: good users with and without attackers, what
    the attack got, and the proxy CPU per rejected attempt."""
    s = res.get("settings", {}).get("attack", {})
    med = res.get("medians", {})
    patterns = s.get("patterns", ["spray", "stuff"])
    hash_s = s.get("hash_cpu_s")
    parts = []
    intro = (
        f"Good users: {res['settings'].get('sessions_concurrency', '?')} "
        f"connections of the sessions workload (login, STAT, QUIT) from "
        f"{s.get('good_sources', '?')}, {s.get('duration_s', 0):g} s per run; "
        f"attack: {s.get('attackers', '?')} attacker connections beside "
        f"them, sending wrong passwords as fast as the proxy answers "
        f"(rate cap: {s.get('rate_cap') or 'none'}), reconnecting when "
        f"closed or refused. Spray: one source address (127.0.0.2), "
        f"{s.get('spray_users', '?')} users, one wrong password each per "
        f"round. Stuff: 254 source addresses (127.0.2.1-254), "
        f"{s.get('stuff_users', '?')} user, a new password each try. "
        f"Passwords: {s.get('scheme', '?')}; one verification costs "
        + (f"**{hash_s * 1e6:.0f} µs** of CPU" if hash_s else "(not measured)")
        + " (libxcrypt's crypt(3) on a proxy CPU). popgate: auth = "
        "\"file\", popgate's defaults ([server] auth_failure_delay, "
        "[limits]) except exempt_networks = []; nginx: auth_http checks "
        f"the password and answers failures with Auth-Wait: "
        f"{s.get('nginx_auth_wait_s', '?')}; Dovecot: passwd-file passdb "
        "(it verifies the hash itself) with proxy=y, defaults otherwise "
        "(auth failure delay 2 s, anvil's auth penalty).")
    parts.append(intro)
    rows = []
    for t in ATTACK_ORDER:
        for v in ("plain", "redis"):
            b = med.get(t, {}).get(v, {}).get("attack-baseline")
            if not b:
                continue
            label = f"**{t}**" + (" (store = redis)" if v == "redis" else "")
            rows.append([label, "none", fmt(b.get("sessions_per_s")), "",
                         fmt(b.get("latency_p99_ms")), "",
                         fmt(b.get("login_p99_ms")), "–", "–", "–", "–",
                         "–", "–",
                         busy(res, t, v, "attack-baseline"),
                         str(b.get("errors", 0))])
            for p in patterns:
                m = med.get(t, {}).get(v, {}).get(f"attack-{p}")
                if not m:
                    continue
                kinds = []
                for k, name in (("out_auth", "[AUTH]"),
                                ("out_sys_temp", "[SYS/TEMP]"),
                                ("out_in_use", "[IN-USE]"),
                                ("out_other_code", "other code"),
                                ("out_no_code", "-ERR"),
                                ("out_greeting_err", "greeting -ERR"),
                                ("out_closed", "closed"),
                                ("out_timeout", "timeout"),
                                ("accepted", "ACCEPTED")):
                    if m.get(k):
                        kinds.append(f"{name} {fmt(m[k])}")
                alone = med.get(t, {}).get(v, {}).get(f"attack-only-{p}",
                                                      {})
                rows.append([label, p, fmt(m.get("sessions_per_s")),
                             ratio_x(m.get("sessions_ratio")),
                             fmt(m.get("latency_p99_ms")),
                             ratio_x(m.get("p99_ratio")),
                             fmt(m.get("login_p99_ms")),
                             fmt(m.get("attempts_per_s")),
                             ", ".join(kinds) or "–",
                             cpu_rejected(m),
                             fmt(alone.get("attempts_per_s")),
                             us(alone.get("cpu_us_per_rejected")),
                             "–" if alone.get("rejected_per_hash") is None
                             else f"{alone['rejected_per_hash']:.3f}",
                             busy(res, t, v, f"attack-{p}"),
                             str(m.get("errors", 0))])
    parts.append(table(
        ["target", "attack", "good sessions/s", "× no attack",
         "good p99 ms", "p99 × no attack", "good login p99 ms",
         "attempts/s", "attempts answered (by kind)",
         "CPU µs / rejected (beside good users)",
         "attempts/s alone", "CPU µs / rejected (attack alone)",
         "÷ one hash",
         "busy load / proxy", "good errors"], rows))
    parts.append(
        "CPU per rejected attempt, two ways. Beside good users: (the "
        "proxy's CPU seconds during the attacked run − the no-attack run's "
        "CPU per good session × the good sessions of the attacked run) ÷ "
        "the attempts the proxy rejected; with good logins that each cost "
        "a hash this is within the noise unless the attack costs a lot "
        "(\"≈ 0 (noise)\": the attacked run used no more CPU than its good "
        "sessions explain). Attack alone: the same attackers right after, "
        "without good sessions (the proxy's blocks and penalties still in "
        "force: the steady state), the proxy's CPU seconds ÷ the attempts "
        "it rejected. Rejected = every answer but a timeout on our side or "
        "a right guess: -ERR of any kind, a refused greeting, a close or "
        "reset; attempts still waiting for their answer when a run ends are "
        "not counted (their CPU is, so a proxy that delays every answer "
        "looks a little dearer than it is). `÷ one hash` = the attack-alone "
        "figure over one SHA512-CRYPT verification.")
    rmd = redis_md(res)
    if rmd:
        parts.append(rmd)
    redis_missing = s.get("redis_missing")
    if redis_missing:
        parts.append(f"popgate with store = \"redis\": not run ({redis_missing}).")
    rows = ["| target | popgate | needed | verdict |", "|---|---:|---:|---|"]
    for p in patterns:
        m = med.get("popgate", {}).get("plain", {}).get(f"attack-{p}", {})
        alone = med.get("popgate", {}).get("plain", {}).get(
            f"attack-only-{p}", {})
        rows.append(check(f"good p99 under {p} ≤ 1.5 × no attack (ratio)",
                          m.get("p99_ratio"), 1.5, "<="))
        rows.append(check(f"CPU per rejected attempt ({p}, alone) < 0.1 "
                          f"hash (ratio)", alone.get("rejected_per_hash"),
                          0.1, "<="))
    parts.append("Issue 10 targets:\n\n" + "\n".join(rows))
    return "\n\n".join(parts)


def cpu_rejected(m):
    """CPU µs per rejected attempt; "≈ 0" when the attacked run used no
    more CPU than its good sessions explain (within the noise)."""
    v = m.get("cpu_us_per_rejected")
    if v is None:
        return "–"
    if m.get("attack_cpu_s") is not None and m["attack_cpu_s"] <= 0:
        return "≈ 0 (noise)"
    return fmt(v)


def redis_md(res):
    """popgate's store = "redis" against local: CPU and latency per login
    (the no-attack runs of the same repetition)."""
    med = res.get("medians", {}).get("popgate", {})
    loc = med.get("plain", {}).get("attack-baseline")
    red = med.get("redis", {}).get("attack-baseline")
    if not loc or not red:
        return ""
    rows = []
    for label, m in (("local", loc), ("redis", red)):
        rows.append([label, fmt(m.get("sessions_per_s")),
                     fmt(m.get("cpu_s_per_1k_sessions")),
                     ratio(m.get("cpu_s_per_1k_sessions"),
                           loc.get("cpu_s_per_1k_sessions")),
                     fmt(m.get("redis_cpu_s_per_1k_sessions")),
                     fmt(m.get("login_p50_ms")), fmt(m.get("login_p99_ms")),
                     ratio(m.get("login_p99_ms"), loc.get("login_p99_ms")),
                     str(m.get("errors", 0))])
    return ("popgate's [limits] store, local against redis (a redis-server "
            "of the harness on loopback, pinned with the load generator), "
            "good sessions without attack:\n\n" + table(
                ["store", "sessions/s", "popgate CPU s / 1k sessions",
                 "× local", "redis-server CPU s / 1k sessions",
                 "login p50 ms", "login p99 ms", "p99 × local", "errors"],
                rows))


def ratio_x(v):
    return "–" if v is None else f"{v:.2f}×"


AUTH_FILE_ORDER = ["popgate", "dovecot-proxy"]
AUTH_FILE_SCHEMES = [("sha512-crypt", "SHA512-CRYPT"),
                     ("argon2id", "ARGON2ID")]


def has_auth_file(res):
    return any(r["workload"] == "auth-file" for r in res["runs"])


def auth_file_md(res):
    """The auth-file workload (issue 12): plain sessions whose password
    the proxy checks against a passwd-file, per hash scheme; ratios
    popgate / dovecot-proxy."""
    s = res.get("settings", {})
    a = s.get("auth_file", {})
    schemes = a.get("schemes", {})
    A = lambda t, v, k: get(res, t, v, "auth-file", k)  # noqa: E731
    rows = []
    for v, label in AUTH_FILE_SCHEMES:
        for t in AUTH_FILE_ORDER:
            ran = [r for r in res["runs"] if r["target"] == t and
                   r["variant"] == v and r["workload"] == "auth-file"]
            if not ran:
                continue
            d = "dovecot-proxy"
            sp, p99 = A(t, v, "sessions_per_s"), A(t, v, "latency_p99_ms")
            cpu = A(t, v, "cpu_s_per_1k_sessions")
            rows.append([f"**{t}**", label, fmt(sp),
                         ratio(sp, A(d, v, "sessions_per_s")), fmt(p99),
                         ratio(p99, A(d, v, "latency_p99_ms")), fmt(cpu),
                         ratio(cpu, A(d, v, "cpu_s_per_1k_sessions")),
                         fmt(A(t, v, "cpu_per_session_in_hashes")),
                         busy(res, t, v, "auth-file"),
                         errors_of(res, t, v, ["auth-file"])])
    def cost(v):
        sc = schemes[v]
        by = sc.get("hash_cpu_s_by_target") or {}
        p = sc.get("hash_cpu_s_libargon2")
        both = (f" with libsodium (what both call for this hash; "
                f"libargon2: {fmt(p * 1e3)} ms)"
                if v == "argon2id" and p and by.get("popgate") != p else "")
        return (f"{fmt(sc['hash_cpu_s'] * 1e3)} ms{both} "
                f"(`{sc.get('hash', '')[:40]}…`, made by "
                f"{sc.get('made_by', '?')})")

    costs = "; ".join(
        f"{label} {cost(v)}" for v, label in AUTH_FILE_SCHEMES
        if schemes.get(v, {}).get("hash_cpu_s"))
    return (
        "### Sessions with passwords checked by the proxy (auth = file)\n\n"
        f"The plain sessions workload ({s.get('sessions_concurrency', '?')} "
        "connections: connect, USER/PASS, STAT, QUIT) against a proxy that "
        "verifies every password itself against a passwd-file, then logs "
        "in to pop3-synth with the same password. popgate: `auth = "
        "\"file\"`, `[server] auth_threads` = "
        f"{a.get('popgate_auth_threads', '?')} (the hashing pool sized to "
        "the proxy cores), `auth_cache_size = 0`; dovecot-proxy: `passdb "
        "{ driver = passwd-file, default_fields = proxy=y host=… port=… }`. "
        "Auth caches off on both (Dovecot's default), so every login costs "
        "one hash. One hash per scheme for all users (the same salt: the "
        "same cost per check). Each target restarted once per scheme. "
        "Only these two targets verify passwords themselves: nginx asks "
        "its auth_http script, Perdition and HAProxy leave it to the "
        "backend. Dovecot 2.3 verifies passwd-file passwords in its one "
        "`auth` process (no auth-worker took part in our runs): at most "
        "one core for hashing whatever the machine, while popgate's pool "
        "has `auth_threads` threads; with one proxy core, as on a 2-CPU "
        "machine, that difference does not show. "
        "One verification alone (CPU, on a proxy core, from "
        "Python's ctypes; SHA512-CRYPT via crypt(3), which both call; "
        "ARGON2ID via libsodium's crypto_pwhash_str_verify, which "
        "Dovecot calls and popgate too for a version 1.3 hash, and "
        "libargon2's argon2id_verify, popgate's for older ones): "
        f"{costs or 'not measured'}. `× dovecot` = popgate ÷ "
        "dovecot-proxy; `in hashes` = proxy CPU per session ÷ one "
        "verification with the target's own library (1 + the rest of the "
        "session; about 1 means the hash is the session's cost).\n\n"
        + table(
            ["target", "scheme", "sessions/s", "× dovecot", "p99 ms",
             "p99 × dovecot", "proxy CPU s / 1k sessions", "CPU × dovecot",
             "CPU / session in hashes", "busy load / proxy", "errors"],
            rows))


CURVE_WORKLOADS = {"rates", "concurrency"}


def has_curves(res):
    return any(r["workload"].startswith(("rate-", "concurrency-"))
               for r in res["runs"])


def curve_points(res, t, prefix):
    """[(x, medians)] of target t's plain workloads named prefix + x
    ("rate-500", "concurrency-1000"), by x."""
    by_wl = res.get("medians", {}).get(t, {}).get("plain", {})
    out = []
    for wl, m in by_wl.items():
        if wl.startswith(prefix):
            try:
                out.append((float(wl[len(prefix):]), m))
            except ValueError:
                continue
    return sorted(out, key=lambda p: p[0])


def curve_errors(res, t, wl):
    failed = [r for r in res["runs"] if r["target"] == t and
              r["workload"] == wl and r["error"]]
    n = get(res, t, "plain", wl, "errors")
    return (fmt(n) if n is not None else "–") + (
        f" (+{len(failed)} failed runs)" if failed else "")


def curves_md(res, img_prefix):
    """The cost curves (issue 12): fixed offered rates and concurrency."""
    s = res.get("settings", {})
    ts = [t for t in targets_of(res) if t not in res.get("unavailable", {})]
    parts = []
    rows = []
    for t in ts:
        pts = curve_points(res, t, "rate-")
        for x, m in pts:
            wl = f"rate-{x:g}"
            rows.append([f"**{t}**", fmt(int(x)), fmt(m.get("sessions_per_s")),
                         fmt(m.get("late")), fmt(m.get("latency_p99_ms")),
                         fmt(m.get("cpu_ms_per_session")),
                         ratio(m.get("cpu_ms_per_session"),
                               get(res, "nginx", "plain", wl,
                                   "cpu_ms_per_session")),
                         busy(res, t, "plain", wl), curve_errors(res, t, wl)])
        sat = get(res, t, "plain", "sessions", "sessions_per_s")
        if pts and sat is not None:
            rows.append([f"**{t}**", "saturated", fmt(sat), "–",
                         fmt(get(res, t, "plain", "sessions",
                                 "latency_p99_ms")),
                         fmt(get(res, t, "plain", "sessions",
                                 "cpu_s_per_1k_sessions")),
                         ratio(get(res, t, "plain", "sessions",
                                   "cpu_s_per_1k_sessions"),
                               get(res, "nginx", "plain", "sessions",
                                   "cpu_s_per_1k_sessions")),
                         busy(res, t, "plain", "sessions"),
                         errors_of(res, t, "plain", ["sessions"])])
    if rows:
        parts.append(
            "### Cost per session at fixed offered rates\n\n"
            "Plain sessions (login, STAT, QUIT) started at a fixed offered "
            "rate (loadgen `--rate`: open loop, evenly spaced, at most "
            f"{s.get('rate_concurrency', '?')} in flight; latency counts "
            "from each session's scheduled start, so waiting for a free "
            "slot is in p99), "
            f"{fmt(s.get('curve_duration_s'))} s per rate, repetition 1 "
            "only. `late` = starts that were due while all slots were busy "
            "(the proxy fell behind). `saturated` = the plain sessions "
            "workload (closed loop, "
            f"{s.get('sessions_concurrency', '?')} connections): as fast "
            "as it goes. Proxy CPU ms per session = the proxy's CPU seconds "
            "during the run ÷ sessions × 1000 (the same figure as CPU s / "
            "1k sessions).\n\n" + table(
                ["target", "offered /s", "achieved /s", "late", "p99 ms",
                 "proxy CPU ms / session", "CPU × nginx",
                 "busy load / proxy", "errors"], rows))
    rows = []
    caps = s.get("concurrency_caps", {})
    notes = []
    for t in ts:
        for x, m in curve_points(res, t, "concurrency-"):
            wl = f"concurrency-{int(x)}"
            ran = m.get("concurrency")
            label = fmt(int(x))
            if ran is not None and int(ran) != int(x):
                label += f" (ran {fmt(int(ran))}*)"
            rows.append([f"**{t}**", label, fmt(m.get("sessions_per_s")),
                         fmt(m.get("latency_p99_ms")),
                         fmt(m.get("cpu_s_per_1k_sessions")),
                         ratio(m.get("cpu_s_per_1k_sessions"),
                               get(res, "nginx", "plain", wl,
                                   "cpu_s_per_1k_sessions")),
                         busy(res, t, "plain", wl), curve_errors(res, t, wl)])
        for level, c in sorted(caps.get(t, {}).items(),
                               key=lambda kv: int(kv[0])):
            notes.append(f"- \\* **{t}** at {fmt(int(level))}: ran "
                         f"{fmt(c['ran'])} ({c['why']})")
    if rows:
        parts.append(
            "### Sessions at several concurrency levels\n\n"
            "Plain sessions, closed loop (each connection starts its next "
            "session when one ends) with this many sessions in flight, "
            f"{fmt(s.get('curve_duration_s'))} s per level (the ramp-up "
            "included), repetition 1 only.\n\n" + table(
                ["target", "concurrency", "sessions/s", "p99 ms",
                 "proxy CPU s / 1k sessions", "CPU × nginx",
                 "busy load / proxy", "errors"], rows)
            + ("\n\n" + "\n".join(notes) if notes else ""))
    links = [n for n, p in (("rates", "rate-"),
                            ("concurrency", "concurrency-"))
             if any(curve_points(res, t, p) for t in ts)]
    if links:
        parts.append("\n\n".join(f"![{n}]({img_prefix}-{n}.png)"
                                 for n in links))
    return "\n\n".join(parts)


def curve_plots(res, prefix):
    """<prefix>-rates.png and <prefix>-concurrency.png: one line per
    target."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401

    ts = [t for t in targets_of(res) if t not in res.get("unavailable", {})]
    sub = f"{res['tag']} · {res['machine']['nproc']} CPUs " \
          f"{res['machine']['cpu_model']}" + (" · QUICK" if res.get("quick") else "")
    out = []
    xs_seen = set()

    def line(ax, t, pts, metric, **kw):
        xy = [(x, m.get(metric)) for x, m in pts
              if isinstance(m.get(metric), (int, float))]
        xs_seen.update(p[0] for p in xy)
        if xy:
            ax.plot([p[0] for p in xy], [p[1] for p in xy], marker="o",
                    color=COLORS.get(t, "#333"), label=t, **kw)
        return bool(xy)

    def finish(ax, title, xlabel, ylabel, logy=False):
        ax.set_xscale("log")
        if xs_seen:
            # Ticks at the measured points, as plain numbers.
            ax.set_xticks(sorted(xs_seen))
            ax.set_xticklabels([f"{x:,.0f}" for x in sorted(xs_seen)])
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        if logy:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=11)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=.3, which="both")
        ax.legend(fontsize=8, frameon=False)

    if any(curve_points(res, t, "rate-") for t in ts):
        xs_seen.clear()
        fig, axs = plt.subplots(1, 2, figsize=(12, 4.8))
        for t in ts:
            pts = curve_points(res, t, "rate-")
            if t != "direct" and line(axs[0], t, pts, "cpu_ms_per_session"):
                sat = get(res, t, "plain", "sessions", "sessions_per_s")
                cpu = get(res, t, "plain", "sessions", "cpu_s_per_1k_sessions")
                if sat and cpu is not None:
                    axs[0].plot([sat], [cpu], marker="x", markersize=9,
                                linestyle="none", color=COLORS.get(t, "#333"))
            line(axs[1], t, pts, "latency_p99_ms")
        finish(axs[0], "Proxy CPU ms per session vs offered rate "
               "(x: saturated) — lower is better", "offered sessions/s (log)",
               "CPU ms / session")
        finish(axs[1], "p99 session latency vs offered rate (from the "
               "scheduled start)", "offered sessions/s (log)",
               "p99 ms (log)", logy=True)
        fig.suptitle(sub, fontsize=9)
        fig.tight_layout()
        fig.savefig(f"{prefix}-rates.png", dpi=110)
        out.append(f"{prefix}-rates.png")
        plt.close(fig)

    if any(curve_points(res, t, "concurrency-") for t in ts):
        xs_seen.clear()
        fig, axs = plt.subplots(1, 2, figsize=(12, 4.8))
        for t in ts:
            pts = curve_points(res, t, "concurrency-")
            line(axs[0], t, pts, "sessions_per_s")
            if t != "direct":
                line(axs[1], t, pts, "cpu_s_per_1k_sessions")
        finish(axs[0], "Plain sessions/s vs sessions in flight — higher is "
               "better", "concurrency (log)", "sessions/s")
        finish(axs[1], "Proxy CPU s per 1k sessions vs concurrency — lower "
               "is better", "concurrency (log)", "CPU s / 1k sessions")
        fig.suptitle(sub, fontsize=9)
        fig.tight_layout()
        fig.savefig(f"{prefix}-concurrency.png", dpi=110)
        out.append(f"{prefix}-concurrency.png")
        plt.close(fig)
    return out


def has_idle(res):
    return any(r["workload"].startswith("hold-") for r in res["runs"])


def idle_points(res, t, variant):
    """[(count, medians)] of target t's hold curve ("hold-<count>")."""
    by_wl = res.get("medians", {}).get(t, {}).get(variant, {})
    return sorted((int(wl[5:]), m) for wl, m in by_wl.items()
                  if wl.startswith("hold-") and wl[5:].isdigit())


def idle_md(res, img_prefix):
    """Idle sessions (issue 12): memory per session and time to fill at
    each held count, plain and TLS."""
    s = res.get("settings", {})
    ts = [t for t in targets_of(res) if t not in res.get("unavailable", {})
          and t != "direct"]
    rows = []
    for t in ts:
        plain = dict(idle_points(res, t, "plain"))
        tls = dict(idle_points(res, t, "tls-ecdsa"))
        for n in sorted(set(plain) | set(tls)):
            row = [f"**{t}**", fmt(n)]
            errs = 0
            for m in (plain.get(n), tls.get(n)):
                m = m or {}
                row += [fmt(m.get("rss_kib_per_session")),
                        fmt(m.get("pss_kib_per_session")),
                        fmt(m.get("fill_s")),
                        fmt(m.get("fill_sessions_per_s"))]
                errs += m.get("errors") or 0
            failed = [r for r in res["runs"] if r["target"] == t and
                      r["workload"] == f"hold-{n}" and r["error"]]
            row.append(fmt(errs) + (f" (+{len(failed)} failed runs)"
                                    if failed else ""))
            rows.append(row)
    if not rows:
        return ""
    asked = s.get("hold_counts_asked") or s.get("hold_counts") or []
    ran = s.get("hold_counts") or []
    notes = []
    clamped = [c for c in asked if c not in ran]
    if clamped:
        notes.append(
            f"- Asked for {', '.join(fmt(c) for c in asked)} sessions; "
            f"{', '.join(fmt(c) for c in clamped)} clamped to "
            f"{fmt(s.get('hold_fd_cap'))}: the descriptor limit here is "
            f"RLIMIT_NOFILE {fmt(s.get('nofile'))} (hard; raising it needs "
            "CAP_SYS_RESOURCE, which this machine does not give) and a proxy "
            "process holds two descriptors per session (client and backend), "
            "nginx's worker_connections counting its auth_http connections "
            "too. As root with CAP_SYS_RESOURCE the harness raises the hard "
            "limit (up to fs.nr_open) and runs the counts asked for.")
    for t, c in s.get("hold_caps", {}).items():
        notes.append(f"- **{t}**: held at most {fmt(c['count'])} "
                     f"({c['why']}).")
    how = (
        "On a freshly started proxy (one warm-up session first), loadgen "
        "`--mode hold` logs in N sessions, "
        f"{fmt(s.get('hold_concurrency'))} logins in flight, each session "
        "a user of its own, bound in turn to the source addresses "
        f"{s.get('hold_sources', '?')} (Linux routes all of 127/8 to lo; "
        "one source address would run out of ephemeral ports towards one "
        "proxy port), then they stay idle while the harness samples the "
        "proxy's processes (RSS summed, PSS anon+shmem summed; delta over "
        "the sessions held). Holds of more than "
        f"{fmt(s.get('hold_per_backend_port'))} sessions (by default half "
        "the ephemeral port range) spread the proxy's backend connections "
        "over "
        "several pop3-synth ports: popgate's tenant gets that many backends, "
        "HAProxy that many servers (roundrobin), nginx's auth_http answers "
        "a port by `split_clients` on the user, Dovecot a passwd-file "
        "passdb with a port per user. `fill s` = loadgen's first connect "
        "until the last login; `/s` = sessions logged in ÷ fill s. Counts "
        f"above {fmt(s.get('hold_repeat_max'))} run in repetition 1 only. "
        "Errors include sessions that were not logged in when memory was "
        "sampled.")
    out = ("### Idle sessions: memory per session and time to fill\n\n" +
           how + "\n\n" + table(
               ["target", "sessions", "plain RSS KiB / session",
                "plain PSS(anon) KiB", "plain fill s", "plain fill /s",
                "TLS RSS KiB / session", "TLS PSS(anon) KiB", "TLS fill s",
                "TLS fill /s", "errors"], rows))
    if notes:
        out += "\n\n" + "\n".join(notes)
    pts_p = idle_points(res, "popgate", "plain")
    pts_t = idle_points(res, "popgate", "tls-ecdsa")
    if pts_p or pts_t:
        checks = ["| target (issue 12) | popgate | needed | verdict |",
                  "|---|---:|---:|---|"]
        for pts, limit, name in ((pts_p, 4.0, "plain"), (pts_t, 8.0, "TLS")):
            if not pts:
                continue
            n, m = pts[-1]
            checks.append(check(
                f"RSS per idle {name} session at {fmt(n)} ≤ {fmt(limit)} "
                f"KiB (issue: at 100,000)", m.get("rss_kib_per_session"),
                limit, "<="))
            first = pts[0][1].get("rss_kib_per_session")
            last = m.get("rss_kib_per_session")
            if len(pts) > 1 and first and last is not None:
                checks.append(check(
                    f"  flat: {name} RSS per session at {fmt(n)} ÷ at "
                    f"{fmt(pts[0][0])} ≤ 1.15", last / first, 1.15, "<="))
        out += "\n\n" + "\n".join(checks)
    out += f"\n\n![idle-sessions]({img_prefix}-idle-sessions.png)"
    return out


def idle_plot(res, prefix):
    """<prefix>-idle-sessions.png: KiB per idle session vs sessions held,
    plain and TLS, one line per target (RSS; dashed: PSS(anon) where it
    differs, i.e. forking Perdition), log x and y."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = [t for t in targets_of(res) if t not in res.get("unavailable", {})
          and t != "direct"]
    sub = f"{res['tag']} · {res['machine']['nproc']} CPUs " \
          f"{res['machine']['cpu_model']}" + (" · QUICK" if res.get("quick") else "")
    fig, axs = plt.subplots(1, 2, figsize=(13, 5))
    for ax, variant, title in ((axs[0], "plain", "plain"),
                               (axs[1], "tls-ecdsa", "TLS (ECDSA)")):
        for t in ts:
            pts = idle_points(res, t, variant)
            xy = [(n, m.get("rss_kib_per_session"),
                   m.get("pss_kib_per_session")) for n, m in pts
                  if isinstance(m.get("rss_kib_per_session"), (int, float))
                  and m.get("rss_kib_per_session") > 0]
            if not xy:
                continue
            c = COLORS.get(t, "#333")
            ax.plot([p[0] for p in xy], [p[1] for p in xy], marker="o",
                    color=c, label=f"{t} RSS")
            if any(p[2] and abs(p[2] - p[1]) > 0.2 * p[1] for p in xy):
                ax.plot([p[0] for p in xy], [p[2] for p in xy], marker="s",
                        color=c, linestyle="--", label=f"{t} PSS(anon)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"Memory per idle {title} session — lower is better",
                     fontsize=11)
        ax.set_xlabel("idle logged-in sessions held (log)")
        ax.set_ylabel("KiB / session (log)")
        ax.grid(alpha=.3, which="both")
        ax.legend(fontsize=8, frameon=False)
    fig.suptitle(sub, fontsize=9)
    fig.tight_layout()
    fig.savefig(f"{prefix}-idle-sessions.png", dpi=110)
    plt.close(fig)
    return [f"{prefix}-idle-sessions.png"]


def md_tables(res, img_prefix):
    if not has_standard(res):
        out = []
        if has_curves(res):
            out.append(curves_md(res, img_prefix))
        if has_attack(res) or not (has_curves(res) or has_auth_file(res)):
            out.append("### Under attack\n\n" + attack_md(res))
        if has_auth_file(res):
            out.append(auth_file_md(res))
        return "\n\n".join(out) + failed_md(res)
    ts = targets_of(res)
    S = lambda t, m: get(res, t, "plain", "sessions", m)  # noqa: E731
    T = lambda t, v, m: get(res, t, v, "throughput", m)  # noqa: E731
    H = lambda t, v, m: get(res, t, v, "hold", m)  # noqa: E731
    HS = lambda t, v, wl, m: get(res, t, v, wl, m)  # noqa: E731
    parts = []

    rows = []
    for t in ts:
        if t in res.get("unavailable", {}):
            rows.append([f"**{t}**", "n/a"] + [""] * 6)
            continue
        sp, cpu = S(t, "sessions_per_s"), S(t, "cpu_s_per_1k_sessions")
        rows.append([f"**{t}**", fmt(sp), ratio(sp, S("direct", "sessions_per_s")),
                     ratio(sp, S("nginx", "sessions_per_s")),
                     fmt(S(t, "latency_p99_ms")),
                     fmt(cpu), ratio(cpu, S("nginx", "cpu_s_per_1k_sessions")),
                     busy(res, t, "plain", "sessions"),
                     errors_of(res, t, "plain", ["sessions"])])
    parts.append("### Plain sessions (connect, USER/PASS, STAT, QUIT)\n\n"
                 "`busy` = how busy the load-generator CPU / the proxy CPU "
                 "were during the run (100% on the left: the load side, not "
                 "the proxy, was the limit).\n\n" + table(
        ["target", "sessions/s", "× direct", "× nginx", "p99 ms",
         "proxy CPU s / 1k sessions", "CPU × nginx", "busy load / proxy",
         "errors"], rows))

    rows = []
    for t in ts:
        if t in res.get("unavailable", {}):
            continue
        mb, cpu = T(t, "plain", "mb_per_s"), T(t, "plain", "cpu_s_per_gb")
        rss, pss = H(t, "plain", "rss_kib_per_session"), H(t, "plain", "pss_kib_per_session")
        rows.append([f"**{t}**", fmt(mb), ratio(mb, T("direct", "plain", "mb_per_s")),
                     ratio(mb, T("nginx", "plain", "mb_per_s")),
                     fmt(cpu), ratio(cpu, T("nginx", "plain", "cpu_s_per_gb")),
                     fmt(T(t, "plain", "load_cpu_s_per_gb")),
                     segs(T(t, "plain", "segs_per_mb_to_client"),
                          T(t, "plain", "segs_per_mb_from_backend")),
                     busy(res, t, "plain", "throughput"),
                     fmt(rss), fmt(pss), ratio(rss, H("nginx", "plain", "rss_kib_per_session")),
                     errors_of(res, t, "plain", ["throughput", "hold"])])
    parts.append("### Plain RETR throughput and memory per idle session\n\n"
                 "`load CPU s / GB`: CPU used on the load generator's and "
                 "backend's core per GB (on loopback the kernel does part of "
                 "the proxy's TCP work there or on the proxy's core, "
                 "depending on who sends when). `segs / MB`: TCP data "
                 "segments per MB sent to the client / sent by the backend "
                 "(from `ss -ti`).\n\n" + table(
        ["target", "MB/s", "× direct", "× nginx", "proxy CPU s / GB",
         "CPU × nginx", "load CPU s / GB", "segs / MB client / backend",
         "busy load / proxy", "RSS KiB / idle session",
         "PSS(anon) KiB / idle session", "RSS × nginx", "errors"], rows))

    hs_rows = []
    for t in ts:
        if t == "direct" or t in res.get("unavailable", {}):
            continue
        r = [f"**{t}**"]
        for v in ("tls-ecdsa", "tls-rsa"):
            full = HS(t, v, "handshake-full", "handshakes_per_s")
            fcap = HS(t, v, "handshake-full", "handshakes_per_proxy_cpu_s")
            res_ = HS(t, v, "handshake-resumed", "handshakes_per_s")
            rcap = HS(t, v, "handshake-resumed", "handshakes_per_proxy_cpu_s")
            share = HS(t, v, "handshake-resumed", "resumed_share")
            r += [fmt(full), ratio(full, HS("nginx", v, "handshake-full", "handshakes_per_s")),
                  fmt(fcap), ratio(fcap, HS("nginx", v, "handshake-full", "handshakes_per_proxy_cpu_s")),
                  fmt(res_), fmt(rcap),
                  "–" if share is None else f"{share * 100:.0f}%"]
        hs_rows.append(r)
    hdr = ["target"]
    for v in ("ECDSA", "RSA"):
        hdr += [f"{v} full hs/s", "× nginx", f"{v} full hs / proxy CPU-s",
                "× nginx", f"{v} resumed hs/s", "resumed hs / proxy CPU-s",
                "resumed"]
    rows = []
    for t in ts:
        if t == "direct" or t in res.get("unavailable", {}):
            continue
        v = "tls-ecdsa"
        full = HS(t, v, "handshake-full", "handshakes_per_proxy_cpu_s")
        r13 = HS(t, v, "handshake-resumed", "handshakes_per_proxy_cpu_s")
        r12 = HS(t, v, "handshake-resumed-tls12", "handshakes_per_proxy_cpu_s")
        share = HS(t, v, "handshake-resumed-tls12", "resumed_share")
        rows.append([f"**{t}**", fmt(HS(t, v, "handshake-resumed-tls12", "handshakes_per_s")),
                     fmt(r12), ratio(r12, HS("nginx", v, "handshake-resumed-tls12", "handshakes_per_proxy_cpu_s")),
                     "–" if share is None else f"{share * 100:.0f}%",
                     ratio(r13, full), ratio(r12, full)])
    tls12_table = ("TLS 1.2 ticket resumption (ECDSA), which skips the key "
                   "exchange, next to TLS 1.3's (which still does X25519):\n\n"
                   + table(["target", "TLS 1.2 resumed hs/s",
                            "TLS 1.2 resumed hs / proxy CPU-s", "× nginx",
                            "resumed", "TLS 1.3 resumed ÷ full (per CPU-s)",
                            "TLS 1.2 resumed ÷ TLS 1.3 full (per CPU-s)"], rows))
    parts.append("### TLS handshakes (implicit TLS, TLS 1.3)\n\n"
                 "`hs/s` is what the client reached (the Clients note above "
                 "says which client; a run's `busy_load_cpu` / "
                 "`busy_proxy_cpu` in the JSON say which side was the "
                 "limit); `hs / proxy CPU-s` is handshakes per second "
                 "of the proxy's own CPU time, i.e. what one proxy core "
                 "sustains when the client is not the limit. `resumed` is the "
                 "share of resumption attempts the proxy accepted.\n\n"
                 + table(hdr, hs_rows) + "\n\n" + tls12_table)

    rows = []
    for t in ts:
        if t == "direct" or t in res.get("unavailable", {}):
            continue
        mb, cpu = T(t, "tls-ecdsa", "mb_per_s"), T(t, "tls-ecdsa", "cpu_s_per_gb")
        rss, pss = H(t, "tls-ecdsa", "rss_kib_per_session"), H(t, "tls-ecdsa", "pss_kib_per_session")
        rows.append([f"**{t}**", fmt(mb), ratio(mb, T("nginx", "tls-ecdsa", "mb_per_s")),
                     fmt(cpu), ratio(cpu, T("nginx", "tls-ecdsa", "cpu_s_per_gb")),
                     busy(res, t, "tls-ecdsa", "throughput"),
                     fmt(rss), fmt(pss),
                     ratio(rss, H("nginx", "tls-ecdsa", "rss_kib_per_session")),
                     errors_of(res, t, "tls-ecdsa", ["throughput", "hold",
                                                    "handshake-full",
                                                    "handshake-resumed",
                                                    "handshake-resumed-tls12"])])
    parts.append("### TLS RETR throughput and memory per idle TLS session (ECDSA)\n\n" + table(
        ["target", "MB/s", "× nginx", "proxy CPU s / GB", "CPU × nginx",
         "busy load / proxy", "RSS KiB / idle TLS session", "PSS(anon) KiB / idle TLS session",
         "RSS × nginx", "errors"], rows))

    unavail = res.get("unavailable", {})
    if unavail:
        parts.append("### Targets that did not run\n\n" + "\n".join(
            f"- **{t}**: {why}" for t, why in unavail.items()))
    failed = [r for r in res["runs"] if r["error"]]
    if failed:
        parts.append("### Failed runs\n\n" + "\n".join(
            f"- {r['target']} {r['variant']} {r['workload']} #{r['rep']}: "
            f"{r['error'][:300]}" for r in failed))

    if has_attack(res):
        parts.append("### Under attack\n\n" + attack_md(res))
    if has_curves(res):
        parts.append(curves_md(res, img_prefix))
    if has_idle(res):
        parts.append(idle_md(res, img_prefix))
    if has_auth_file(res):
        parts.append(auth_file_md(res))
    parts.append("### Issue 4 targets\n\n" + targets_md(res))
    parts.append("### Plots\n\n" + "\n\n".join(
        f"![{n}]({img_prefix}-{n}.png)" for n in
        ("sessions", "throughput", "memory", "tls-handshakes")))
    return "\n\n".join(parts)


def failed_md(res):
    failed = [r for r in res["runs"] if r["error"]]
    unavail = res.get("unavailable", {})
    out = ""
    if unavail:
        out += "\n\nDid not run: " + "; ".join(
            f"**{t}**: {why}" for t, why in unavail.items()) + "."
    if failed:
        out += "\n\nFailed runs:\n" + "\n".join(
            f"- {r['target']} {r['variant']} {r['workload']} #{r['rep']}: "
            f"{r['error'][:300]}" for r in failed)
    return out


def check(label, value, limit, cmp):
    if value is None or limit is None:
        return f"| {label} | – | – | not measured |"
    ok = value >= limit if cmp == ">=" else value <= limit
    return (f"| {label} | {fmt(value)} | {cmp} {fmt(limit)} | "
            f"{'**met**' if ok else '**missed**'} |")


def targets_md(res):
    g = lambda *a: get(res, *a)  # noqa: E731
    rows = ["| target | popgate | needed | verdict |", "|---|---:|---:|---|"]

    def mul(v, k):
        return None if v is None else v * k

    rows.append(check("plain RETR MB/s ≥ 0.9 × direct",
                      g("popgate", "plain", "throughput", "mb_per_s"),
                      mul(g("direct", "plain", "throughput", "mb_per_s"), .9), ">="))
    rows.append(check("plain CPU s/GB ≤ 0.5 × nginx",
                      g("popgate", "plain", "throughput", "cpu_s_per_gb"),
                      mul(g("nginx", "plain", "throughput", "cpu_s_per_gb"), .5), "<="))
    rows.append(check("plain sessions/s ≥ 1.5 × nginx",
                      g("popgate", "plain", "sessions", "sessions_per_s"),
                      mul(g("nginx", "plain", "sessions", "sessions_per_s"), 1.5), ">="))
    rows.append(check("plain sessions/s ≥ 1.5 × dovecot-proxy",
                      g("popgate", "plain", "sessions", "sessions_per_s"),
                      mul(g("dovecot-proxy", "plain", "sessions", "sessions_per_s"), 1.5), ">="))
    rows.append(check("CPU per session ≤ 0.6 × nginx (s / 1k sessions)",
                      g("popgate", "plain", "sessions", "cpu_s_per_1k_sessions"),
                      mul(g("nginx", "plain", "sessions", "cpu_s_per_1k_sessions"), .6), "<="))
    for v, name in (("tls-ecdsa", "ECDSA"), ("tls-rsa", "RSA")):
        rows.append(check(f"TLS full handshakes/s ≥ 1.2 × nginx ({name})",
                          g("popgate", v, "handshake-full", "handshakes_per_s"),
                          mul(g("nginx", v, "handshake-full", "handshakes_per_s"), 1.2), ">="))
        rows.append(check(f"  same, per proxy CPU-second ({name})",
                          g("popgate", v, "handshake-full", "handshakes_per_proxy_cpu_s"),
                          mul(g("nginx", v, "handshake-full", "handshakes_per_proxy_cpu_s"), 1.2), ">="))
        rows.append(check(f"resumed ≥ 3 × popgate full handshakes/s ({name})",
                          g("popgate", v, "handshake-resumed", "handshakes_per_s"),
                          mul(g("popgate", v, "handshake-full", "handshakes_per_s"), 3), ">="))
        rows.append(check(f"  same, per proxy CPU-second ({name})",
                          g("popgate", v, "handshake-resumed", "handshakes_per_proxy_cpu_s"),
                          mul(g("popgate", v, "handshake-full", "handshakes_per_proxy_cpu_s"), 3), ">="))
        if v == "tls-ecdsa":
            rows.append(check("  same with TLS 1.2 resumption, per proxy CPU-second (ECDSA)",
                              g("popgate", v, "handshake-resumed-tls12", "handshakes_per_proxy_cpu_s"),
                              mul(g("popgate", v, "handshake-full", "handshakes_per_proxy_cpu_s"), 3), ">="))
    rows.append(check("RSS per idle plain session ≤ 10 KiB",
                      g("popgate", "plain", "hold", "rss_kib_per_session"), 10.0, "<="))
    rows.append(check("RSS per idle TLS session ≤ 40 KiB",
                      g("popgate", "tls-ecdsa", "hold", "rss_kib_per_session"), 40.0, "<="))
    return "\n".join(rows)


def header_md(res):
    m = res["machine"]
    s = res["settings"]
    pk = res.get("packages", {})
    lines = [
        f"Run `{res['tag']}` ({res['started']} → {res['finished']}), "
        f"command `{res['command']}`{' (QUICK: indicative only)' if res.get('quick') else ''}.",
        "",
        f"- Machine: {m['nproc']} CPUs ({m['cpu_model']}), "
        f"{m['mem_bytes'] / 2**30:.0f} GiB, {m['distro']}, kernel {m['kernel']}"
        + (f", {m['virtualization']}" if m.get("virtualization") else "")
        + f"; load average at start {m['loadavg_at_start'][0]:.2f}.",
        f"- popgate {m['popgate_commit']}; " + ", ".join(
            f"{k} {v}" for k, v in pk.items()) + ".",
        f"- {s['pinning']}; proxies run {s['proxy_workers']} worker(s) "
        f"(popgate workers, nginx worker_processes, haproxy nbthread, "
        f"Dovecot pop3-login processes); Perdition forks one process per "
        f"connection.",
        f"- Clients: {s['clients']}.",
    ]
    if not has_standard(res):
        a = s.get("attack", {})
        lines += [
            f"- Each figure is the median of {s['reps']} run(s) of "
            f"{a.get('duration_s', s.get('duration_s', 0)):g} s; before "
            f"each run the harness "
            f"waits (at most {s.get('max_quiet_wait_s', 0):g} s) for the "
            f"machine to use at most {s.get('quiet_cores', 0):g} cores.",
            background_line(res)]
        return "\n".join(lines)
    lines += [
        f"- Each figure is the median of {s['reps']} run(s) of "
        f"{s['duration_s']:g} s (handshakes {s['handshake_duration_s']:g} s); "
        f"sessions with {s['sessions_concurrency']} connections over "
        f"{s['users']} users and 1 KiB messages; throughput: "
        f"{s['throughput_concurrency']} connections RETR a {s['big_message']} "
        f"message over and over; handshakes: {s['handshake_connections']} "
        f"connections; hold: "
        + (f"idle logged-in sessions on a freshly started proxy at "
           f"{', '.join(f'{c:,}' for c in s['hold_counts'])} (plain and TLS; "
           f"the memory columns of the RETR tables show each target's "
           f"largest count, see \"Idle sessions\" below). Repetitions "
           if s.get("hold_counts") else
           f"{s['hold_plain']} plain / {s['hold_tls']} TLS "
           f"idle logged-in sessions on a freshly started proxy. Repetitions ")
        + f"are interleaved across targets; before each run the harness waits "
        f"(at most {s.get('max_quiet_wait_s', 0):g} s) for the machine to "
        f"use at most {s.get('quiet_cores', 0):g} cores.",
        background_line(res),
        "- Proxy CPU = utime+stime (+ reaped children) of every process of "
        "the proxy from /proc, before/after each run. Memory = the proxy's "
        "processes' RSS summed, and their anonymous+shmem PSS summed "
        "(/proc/PID/smaps_rollup), delta over the held sessions / sessions. "
        "For one-process proxies the two agree; for forking ones (Perdition: "
        "one process per session) summed RSS counts every shared page once "
        "per process and PSS(anon) is the fairer figure.",
    ]
    return "\n".join(lines)


def background_line(res):
    kept = [run for run in res["runs"] if not run.get("discarded")]
    vals = sorted(run["metrics"].get("background_cores") for run in kept
                  if isinstance(run.get("metrics", {}).get("background_cores"),
                                (int, float)))
    ndisc = len(res["runs"]) - len(kept)
    s = res.get("settings", {})
    disc = (f" {ndisc} run(s) were discarded and repeated because other "
            f"processes used more than {s.get('max_background_cores', 0):g} "
            f"cores meanwhile (they stay in the JSON, marked)." if ndisc else "")
    if not vals:
        return "- Background load: not measured."
    med = vals[len(vals) // 2]
    return (f"- Background load (CPU used by other processes on the machine "
            f"during the runs, in cores): median {med:.2f}, max {vals[-1]:.2f}"
            + (" — a shared machine: treat the figures as indicative."
               if med > 0.2 else ".") + disc)


def plots(res, prefix):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = [t for t in targets_of(res) if t not in res.get("unavailable", {})]
    proxies = [t for t in ts if t != "direct"]
    sub = f"{res['tag']} · {res['machine']['nproc']} CPUs " \
          f"{res['machine']['cpu_model']}" + (" · QUICK" if res.get("quick") else "")

    def bars(ax, names, values, title, ylabel, log=False):
        xs = range(len(names))
        vals = [v if v is not None else 0 for v in values]
        b = ax.bar(xs, vals, color=[COLORS.get(n, "#333") for n in names])
        ax.set_xticks(list(xs))
        ax.set_xticklabels(names, rotation=20, ha="right")
        ax.set_title(title, fontsize=11)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        for rect, v in zip(b, values):
            ax.annotate("n/a" if v is None else fmt(v),
                        (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                        ha="center", va="bottom", fontsize=8)
        ax.grid(axis="y", alpha=.3)
        ax.margins(y=.15)

    def grouped(ax, names, series, title, ylabel, log=False):
        n = len(series)
        width = 0.8 / n
        shades = ["#444444", "#999999", "#2a6fb0", "#8fbce6"]
        for i, (label, values) in enumerate(series):
            xs = [x + (i - (n - 1) / 2) * width for x in range(len(names))]
            vals = [v if v is not None else 0 for v in values]
            b = ax.bar(xs, vals, width, label=label, color=shades[i % len(shades)])
            for rect, v in zip(b, values):
                ax.annotate("n/a" if v is None else fmt(v),
                            (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                            ha="center", va="bottom", fontsize=7, rotation=90 if n > 2 else 0)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=20, ha="right")
        for lbl in ax.get_xticklabels():
            lbl.set_color(COLORS.get(lbl.get_text(), "#000"))
        ax.set_title(title, fontsize=11)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=.3)
        ax.margins(y=.32)
        ax.legend(fontsize=8, loc="upper center", ncol=min(n, 4),
                  frameon=False)

    g = lambda *a: get(res, *a)  # noqa: E731
    out = []

    fig, axs = plt.subplots(1, 2, figsize=(12, 4.8))
    bars(axs[0], ts, [g(t, "plain", "sessions", "sessions_per_s") for t in ts],
         "Plain sessions/s (login, STAT, QUIT) — higher is better", "sessions/s")
    bars(axs[1], proxies, [g(t, "plain", "sessions", "cpu_s_per_1k_sessions") for t in proxies],
         "Proxy CPU seconds per 1,000 sessions — lower is better", "CPU s / 1k sessions")
    fig.suptitle(sub, fontsize=9)
    fig.tight_layout()
    fig.savefig(f"{prefix}-sessions.png", dpi=110)
    out.append(f"{prefix}-sessions.png")
    plt.close(fig)

    fig, axs = plt.subplots(1, 2, figsize=(12, 4.8))
    grouped(axs[0], ts, [("plain", [g(t, "plain", "throughput", "mb_per_s") for t in ts]),
                         ("TLS (Python client)" if py_tls(res) else "TLS", [g(t, "tls-ecdsa", "throughput", "mb_per_s") for t in ts])],
            "RETR throughput, MB/s — higher is better", "MB/s")
    grouped(axs[1], proxies, [("plain", [g(t, "plain", "throughput", "cpu_s_per_gb") for t in proxies]),
                              ("TLS", [g(t, "tls-ecdsa", "throughput", "cpu_s_per_gb") for t in proxies])],
            "Proxy CPU seconds per GB — lower is better (log)", "CPU s / GB", log=True)
    fig.suptitle(sub, fontsize=9)
    fig.tight_layout()
    fig.savefig(f"{prefix}-throughput.png", dpi=110)
    out.append(f"{prefix}-throughput.png")
    plt.close(fig)

    fig, ax = plt.subplots(1, 1, figsize=(9, 4.8))
    grouped(ax, proxies, [("plain RSS", [g(t, "plain", "hold", "rss_kib_per_session") for t in proxies]),
                          ("plain PSS(anon)", [g(t, "plain", "hold", "pss_kib_per_session") for t in proxies]),
                          ("TLS RSS", [g(t, "tls-ecdsa", "hold", "rss_kib_per_session") for t in proxies]),
                          ("TLS PSS(anon)", [g(t, "tls-ecdsa", "hold", "pss_kib_per_session") for t in proxies])],
            "Memory per idle logged-in session, KiB (log) — lower is better", "KiB / session", log=True)
    fig.suptitle(sub, fontsize=9)
    fig.tight_layout()
    fig.savefig(f"{prefix}-memory.png", dpi=110)
    out.append(f"{prefix}-memory.png")
    plt.close(fig)

    fig, axs = plt.subplots(1, 2, figsize=(13, 5))
    series = []
    cap = []
    for v, name in (("tls-ecdsa", "ECDSA"), ("tls-rsa", "RSA")):
        for wl, kind in (("handshake-full", "full"), ("handshake-resumed", "resumed")):
            series.append((f"{name} {kind}", [g(t, v, wl, "handshakes_per_s") for t in proxies]))
            cap.append((f"{name} {kind}", [g(t, v, wl, "handshakes_per_proxy_cpu_s") for t in proxies]))
    grouped(axs[0], proxies, series, "TLS handshakes/s reached"
            + (" (Python client: client-limited)" if py_tls(res) else
               " — higher is better"), "handshakes/s")
    grouped(axs[1], proxies, cap, "Handshakes per proxy CPU-second (log) — higher is better",
            "handshakes / CPU-s", log=True)
    fig.suptitle(sub, fontsize=9)
    fig.tight_layout()
    fig.savefig(f"{prefix}-tls-handshakes.png", dpi=110)
    out.append(f"{prefix}-tls-handshakes.png")
    plt.close(fig)
    return out


def write_all(jpath, update=None):
    res = json.load(open(jpath))
    base = jpath[:-5] if jpath.endswith(".json") else jpath
    name = os.path.basename(base)
    plot_note = ""
    try:
        if has_standard(res):
            plots(res, base)
        if has_curves(res):
            curve_plots(res, base)
        if has_idle(res):
            idle_plot(res, base)
    except ImportError as e:
        plot_note = f"\n\n(no plots: {e}; install python3-matplotlib)\n"
    body = md_tables(res, name)
    md = f"# bench/compare: {res['tag']}\n\n{header_md(res)}\n\n{body}{plot_note}\n"
    with open(base + ".md", "w") as f:
        f.write(md)
    if update:
        text = open(update).read()
        b, e = "<!-- compare:begin -->", "<!-- compare:end -->"
        if not has_standard(res) and (has_attack(res) or
                                      not has_auth_file(res)):
            # An attack-only run refreshes its own block.
            b, e = "<!-- attack:begin -->", "<!-- attack:end -->"
        elif not has_standard(res):
            # So does an auth-file-only run (where the file has one).
            b, e = "<!-- auth-file:begin -->", "<!-- auth-file:end -->"
        if b in text and e in text:
            rel = os.path.relpath(os.path.dirname(base), os.path.dirname(os.path.abspath(update)))
            block = (f"{b}\n{header_md(res)}\n\n"
                     f"{md_tables(res, os.path.join(rel, name))}\n{e}")
            text = text[:text.index(b)] + block + text[text.index(e) + len(e):]
            with open(update, "w") as f:
                f.write(text)
    return base + ".md"


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    upd = None
    if "--update" in sys.argv:
        upd = sys.argv[sys.argv.index("--update") + 1]
    print(write_all(sys.argv[1], upd))
