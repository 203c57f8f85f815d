"""Unit tests of the harness's parsing and arithmetic: `python3 -m unittest discover bench`."""

import json
import unittest

from harness import proxies, report, wrk
from harness.proxies import Filter

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8080/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   250.00us  100.00us   5.00ms   90.00%
    Req/Sec    30.00k     1.00k   32.00k    70.00%
  Latency Distribution
     50%  229.00us
     75%  300.00us
     90%    1.20ms
     99%    5.04s
  298765 requests in 10.00s, 40.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  29876.50
Transfer/sec:      4.00MB
"""


class WrkParse(unittest.TestCase):
    def test_reads_rate_count_latency_units_and_errors(self):
        r = wrk.parse(WRK_OUTPUT)
        self.assertEqual(r["rps"], 29876.5)
        self.assertEqual(r["requests"], 298765)
        self.assertEqual(r["seconds"], 10.0)
        self.assertEqual(r["p50_us"], 229.0)
        self.assertEqual(r["p90_us"], 1200.0)
        self.assertEqual(r["p99_us"], 5.04e6)
        self.assertEqual(r["non_2xx"], 7)
        self.assertEqual(r["socket_errors"], {"connect": 0, "read": 2, "write": 0, "timeout": 1})

    def test_clean_run_has_zero_errors(self):
        text = "\n".join(line for line in WRK_OUTPUT.splitlines()
                         if "Socket errors" not in line and "Non-2xx" not in line)
        r = wrk.parse(text)
        self.assertEqual(r["non_2xx"], 0)
        self.assertEqual(sum(r["socket_errors"].values()), 0)

    def test_output_without_latency_block_is_an_error(self):
        text = "\n".join(line for line in WRK_OUTPUT.splitlines() if "%" not in line)
        with self.assertRaisesRegex(wrk.WrkError, "50% latency"):
            wrk.parse(text)


class ChainFit(unittest.TestCase):
    def test_exact_line_gives_its_slope_and_r2_of_one(self):
        slope, intercept, r2 = report._fit([(1, 12.0), (4, 18.0), (16, 42.0)])
        self.assertAlmostEqual(slope, 2.0)
        self.assertAlmostEqual(intercept, 10.0)
        self.assertAlmostEqual(r2, 1.0)

    def test_bent_points_give_r2_below_one(self):
        _, _, r2 = report._fit([(1, 10.0), (4, 40.0), (16, 41.0)])
        self.assertLess(r2, 0.9)


class EnvoyBootstrap(unittest.TestCase):
    def test_filters_in_order_then_router_and_one_static_cluster(self):
        filters = [Filter(f"add-header-{i}", "add-header", "/m.wasm", '{"x":1}', "x-wasm-custom")
                   for i in (1, 2)]
        doc = json.loads(json.dumps(proxies.envoy_bootstrap(filters, 1000, 2000)))
        listener = doc["static_resources"]["listeners"][0]
        self.assertEqual(listener["address"]["socket_address"]["port_value"], 1000)
        hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
        names = [f["typed_config"].get("config", {}).get("name") for f in hcm["http_filters"]]
        self.assertEqual(names, ["add-header-1", "add-header-2", None])
        plugin = hcm["http_filters"][0]["typed_config"]["config"]
        self.assertEqual(plugin["vm_config"]["vm_id"], "add-header")
        self.assertEqual(plugin["vm_config"]["runtime"], "envoy.wasm.runtime.v8")
        self.assertEqual(plugin["configuration"]["value"], '{"x":1}')
        cluster = doc["static_resources"]["clusters"][0]
        self.assertEqual(cluster["type"], "STATIC")
        endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        self.assertEqual(endpoint["address"]["socket_address"]["port_value"], 2000)

    def test_filter_without_configuration_sends_none(self):
        doc = proxies.envoy_bootstrap([Filter("p", "p", "/p.wasm", "", None)], 1, 2)
        hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        self.assertNotIn("configuration", hcm["http_filters"][0]["typed_config"]["config"])


if __name__ == "__main__":
    unittest.main()
