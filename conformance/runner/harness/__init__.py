"""Conformance harness: render a case into an Envoy bootstrap, run a proxy, record what happened."""
