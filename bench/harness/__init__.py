"""The load harness behind bench/run.py: tools, proxies, measurements and the report."""
