"""Ratios against the targets, least-squares chain slopes, and the markdown report."""


def _find(doc, proxy, filters, workers, connections):
    for r in doc["results"]:
        if (r["proxy"] == proxy and r["filters"] == filters and r["connections"] == connections
                and (proxy == "direct" or r["workers"] == workers) and r.get("status") == "ok"):
            return r
    return None


def _no_filter_label(doc, proxy):
    if proxy == "envoy":
        return "none"
    return "none" if doc["environment"]["no_filter_mode"] == "empty" else "passthrough"


def _ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def _cold(doc, proxy, cache):
    for c in doc["cold_starts"]:
        if c["proxy"] == proxy and c["cache"] == cache:
            return c.get("median_ms")
    return None


def targets(doc):
    """Each target: what it compares, the measured value, the goal and whether it is met
    (None when a scenario it needs failed or was not run)."""
    out = []

    def add(name, value, goal, op, detail):
        met = None if value is None else (value >= goal if op == ">=" else value <= goal)
        out.append({"target": name, "value": value, "goal": f"{op} {goal:.3g}", "met": met, "detail": detail})

    w = 1
    pwx_none = _no_filter_label(doc, "pwx")
    for c in sorted({r["connections"] for r in doc["results"]}):
        pa, ea = _find(doc, "pwx", "add-header×1", w, c), _find(doc, "envoy", "add-header×1", w, c)
        add(f"rps pwx/Envoy, add-header, 1 worker, c={c}",
            _ratio(pa and pa["rps"], ea and ea["rps"]), 2.0, ">=",
            "requests per CPU-second, pwx/Envoy (= Envoy's CPU µs/req ÷ pwx's): "
            + _fmt(_ratio(ea and ea["cpu_us_per_req"], pa and pa["cpu_us_per_req"])))
        add(f"p99 pwx/Envoy, add-header, 1 worker, c={c}",
            _ratio(pa and pa["p99_us"], ea and ea["p99_us"]), 0.5, "<=", "p99 latency ratio")
    for c in sorted({r["connections"] for r in doc["results"]}):
        pa, pn = _find(doc, "pwx", "add-header×1", w, c), _find(doc, "pwx", pwx_none, w, c)
        ea, en = _find(doc, "envoy", "add-header×1", w, c), _find(doc, "envoy", "none", w, c)
        ep = _find(doc, "envoy", "passthrough", w, c)
        cost = pa["cpu_us_per_req"] - pn["cpu_us_per_req"] if pa and pn else None
        env_cost = ea["cpu_us_per_req"] - en["cpu_us_per_req"] if ea and en else None
        env_cost_pt = ea["cpu_us_per_req"] - ep["cpu_us_per_req"] if ea and ep else None
        add(f"add-header CPU cost in pwx (µs/req), 1 worker, c={c}", cost, 2.0, "<=",
            f"pwx add-header×1 − pwx {pwx_none}; Envoy: "
            f"{_fmt(env_cost)} (vs no filter), {_fmt(env_cost_pt)} (vs passthrough)")
    ec, pc, pw = _cold(doc, "envoy", "none"), _cold(doc, "pwx", "empty"), _cold(doc, "pwx", "warm")
    add("cold start pwx/Envoy, add-header (pwx compile cache empty)", _ratio(pc, ec), 0.2, "<=",
        f"medians: pwx {_fmt(pc)} ms, Envoy {_fmt(ec)} ms")
    add("cold start pwx/Envoy, add-header (pwx compile cache warm)", _ratio(pw, ec), 0.2, "<=",
        f"medians: pwx {_fmt(pw)} ms, Envoy {_fmt(ec)} ms")
    cmax = max((r["connections"] for r in doc["results"]), default=None)
    pa, ea = _find(doc, "pwx", "add-header×1", w, cmax), _find(doc, "envoy", "add-header×1", w, cmax)
    add(f"RSS pwx/Envoy, add-header, 1 worker, after c={cmax}",
        _ratio(pa and pa["rss_kib"], ea and ea["rss_kib"]), 1 / 3, "<=",
        f"VmRSS pwx {_fmt(pa and pa['rss_kib'] / 1024)} MiB, Envoy {_fmt(ea and ea['rss_kib'] / 1024)} MiB; "
        f"VmHWM ratio {_fmt(_ratio(pa and pa['hwm_kib'], ea and ea['hwm_kib']))}")
    for c in sorted({r["connections"] for r in doc["results"]}):
        d = _find(doc, "direct", "none", w, c)
        pn, en = _find(doc, "pwx", pwx_none, w, c), _find(doc, "envoy", "none", w, c)
        add(f"rps pwx {pwx_none}/direct, 1 worker, c={c}", _ratio(pn and pn["rps"], d and d["rps"]),
            0.35, ">=", f"Envoy no filter/direct: {_fmt(_ratio(en and en['rps'], d and d['rps']))}")
    return out


def _fit(points):
    """Least squares y = a + b·x; returns (slope, intercept, r²)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    slope = sxy / sxx
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for _, y in points)
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in points)
    return slope, intercept, (1 - ss_res / ss_tot) if ss_tot else 1.0


def chain_fits(doc):
    """Per proxy and connection count: CPU µs/req and p50 µs against the number of add-header
    filters, fitted by least squares over every chain length that ran."""
    fits = []
    chains = sorted({r["chain"] for r in doc["results"] if r["filters"].startswith("add-header")})
    workers = min((r["workers"] for r in doc["results"] if r["proxy"] != "direct"), default=1)
    for proxy in ("envoy", "pwx"):
        for c in sorted({r["connections"] for r in doc["results"]}):
            rows = [_find(doc, proxy, f"add-header×{n}", workers, c) for n in chains]
            rows = [r for r in rows if r]
            if len(rows) < 2:
                continue
            entry = {"proxy": proxy, "workers": workers, "connections": c,
                     "points": [{"filters": r["chain"], "cpu_us_per_req": r["cpu_us_per_req"],
                                 "p50_us": r["p50_us"], "rps": r["rps"]} for r in rows]}
            for key in ("cpu_us_per_req", "p50_us"):
                s, i, r2 = _fit([(r["chain"], r[key]) for r in rows])
                entry[key] = {"slope_per_filter": s, "intercept": i, "r2": r2}
            fits.append(entry)
    return fits


def _fmt(v, digits=2):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _pct(v):
    return "—" if v is None else f"{v * 100:.0f}"


def markdown(doc):
    env = doc["environment"]
    pin = env["pinning"]
    lines = [
        f"# pwx vs Envoy — {env['started_utc']}",
        "",
        f"pwx {env['pwx_git']}; Envoy {env['envoy_version'] or 'not run'}; {env['wrk_version']}; "
        f"kernel {env['kernel']}, "
        f"{env['cpus_online']} CPUs; load average before {' '.join(env['loadavg_before'])}, "
        f"after {' '.join(env['loadavg_after'])}.",
        f"wrk -t1, {env['duration_s']:g} s measured after {env['warmup_s']:g} s warm-up. Pinning: proxy with 1 "
        f"worker on CPU {pin['proxy_1_worker']}, with more workers on CPUs {pin['proxy_more_workers']}; "
        f"wrk and the upstream on CPU {pin['wrk_and_upstream']}.",
        "proxy core % = the proxy's CPU time over the run's wall time (100 = one core); others % = what "
        "everything else used of the proxy's CPUs meanwhile (other work on the machine, and wrk + upstream "
        "where they share a CPU with the proxy; for direct: what else ran on the load CPU).",
        "pwx 'no filter' = "
        + ("`pwx run` without a filter." if env["no_filter_mode"] == "empty" else
           "the pass-through module bench/filters/passthrough (--no-filter-mode=passthrough)."),
        "",
        "| proxy | filters | workers | proxy CPUs | c | rps | p50 µs | p99 µs | CPU µs/req | proxy core % "
        "| others % | RSS MiB | HWM MiB | first 200 ms | non-2xx | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in doc["results"]:
        ok = r.get("status") == "ok"
        lines.append("| " + " | ".join([
            r["proxy"], r["filters"], "—" if r["proxy"] == "direct" else str(r["workers"]),
            r["proxy_cpus"] or "—", str(r["connections"]),
            _fmt(r.get("rps"), 0), _fmt(r.get("p50_us"), 0), _fmt(r.get("p99_us"), 0),
            _fmt(r.get("cpu_us_per_req"), 1),
            _pct(r.get("proxy_core_use")), _pct(r.get("others_core_use")),
            _fmt(r["rss_kib"] / 1024, 1) if r.get("rss_kib") else "—",
            _fmt(r["hwm_kib"] / 1024, 1) if r.get("hwm_kib") else "—",
            _fmt(r.get("cold_start_ms"), 0), _fmt(r.get("non_2xx")),
            "ok" if ok else "FAILED: " + r.get("error", "?").splitlines()[0][:120],
        ]) + " |")
    lines += ["", "## Targets", "", "| target | measured | goal | met | detail |", "|---|---|---|---|---|"]
    for t in doc["targets"]:
        met = {True: "yes", False: "**no**", None: "n/a"}[t["met"]]
        lines.append(f"| {t['target']} | {_fmt(t['value'])} | {t['goal']} | {met} | {t['detail']} |")
    lines += ["", "## Chain length (add-header × N, least squares)", "",
              "| proxy | workers | c | filters: CPU µs/req | CPU slope µs/filter | R² | p50 slope µs/filter | R² |",
              "|---|---|---|---|---|---|---|---|"]
    for f in doc["chain_fits"]:
        pts = ", ".join(f"{p['filters']}: {_fmt(p['cpu_us_per_req'], 1)}" for p in f["points"])
        lines.append(f"| {f['proxy']} | {f['workers']} | {f['connections']} | {pts} | "
                     f"{_fmt(f['cpu_us_per_req']['slope_per_filter'])} | {_fmt(f['cpu_us_per_req']['r2'], 3)} | "
                     f"{_fmt(f['p50_us']['slope_per_filter'])} | {_fmt(f['p50_us']['r2'], 3)} |")
    lines += ["", "## Cold start (spawn → first 200 through add-header, 1 worker)", "",
              "| proxy | compile cache | median ms | samples ms | RSS at first response MiB |", "|---|---|---|---|---|"]
    for c in doc["cold_starts"]:
        samples = ", ".join(f"{s['ms']:.0f}" for s in c["samples"]) or ("FAILED: " + (c["error"] or "?")[:100])
        rss = ", ".join(f"{s['rss_kib_at_first_response'] / 1024:.1f}" for s in c["samples"]) or "—"
        lines.append(f"| {c['proxy']} | {c['cache']} | {_fmt(c.get('median_ms'), 1)} | {samples} | {rss} |")
    lines.append("")
    return "\n".join(lines)
