"""Every examples/<name>/envoy.yaml is accepted by real Envoy (`envoy --mode validate`, which
also loads the module and runs its on_configure) and embeds that example's config.json."""

import json
import os
import subprocess

import pytest
import yaml

from conftest import REPO, fixtures_dir
from harness.proxy import Envoy

EXAMPLES = sorted(p.parent for p in (REPO / "examples").glob("*/envoy.yaml"))


def wasm_plugins(doc):
    """The `config` of every envoy.filters.http.wasm filter in a bootstrap."""
    out = []
    for listener in doc["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for f in chain["filters"]:
                if f["name"] == "envoy.filters.network.wasm":
                    out.append(f["typed_config"]["config"])
                for hf in f["typed_config"].get("http_filters", []):
                    if hf["name"] == "envoy.filters.http.wasm":
                        out.append(hf["typed_config"]["config"])
    return out


def is_filter_example(path):
    """A filter (a Rust cdylib or an AssemblyScript package), not a host program such as
    examples/axum-embed."""
    cargo = path / "Cargo.toml"
    return (path / "package.json").exists() or (
        cargo.exists() and "cdylib" in cargo.read_text()
    )


def test_every_example_has_an_envoy_yaml():
    dirs = sorted(p for p in (REPO / "examples").iterdir() if p.is_dir() and is_filter_example(p))
    assert [d.name for d in dirs] == [d.name for d in EXAMPLES]


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_envoy_validates_example(example, tmp_path):
    if os.environ.get("CONFORMANCE_TARGET", "envoy") != "envoy":
        pytest.skip("validated with Envoy only")
    doc = yaml.safe_load((example / "envoy.yaml").read_text())
    plugins = wasm_plugins(doc)
    assert len(plugins) == 1, "one wasm filter per example"
    plugin = plugins[0]
    module = plugin["vm_config"]["code"]["local"]["filename"]
    assert module == f"target/fixtures/{example.name}.wasm", "paths are relative to the repo root"
    embedded = json.loads(plugin["configuration"]["value"])
    assert embedded == json.loads((example / "config.json").read_text()), \
        "envoy.yaml's configuration must equal config.json"
    built = fixtures_dir() / f"{example.name}.wasm"
    if not built.exists():
        pytest.fail(f"{built} is missing: run scripts/build-fixtures.sh")
    # The file names target/fixtures/… relative to the repo root; point that at the fixtures
    # directory actually in use (CARGO_TARGET_DIR may move it).
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "fixtures").symlink_to(fixtures_dir())
    run = subprocess.run(
        [Envoy().binary, "--mode", "validate", "-c", str(example / "envoy.yaml"),
         "--disable-hot-restart", "-l", "warning"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"envoy rejected {example.name}/envoy.yaml:\n{run.stdout}{run.stderr}"
