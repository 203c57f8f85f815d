"""pytest wiring: one test per case file under conformance/cases, named by its path."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CONFORMANCE = HERE.parent
CASES = CONFORMANCE / "cases"
REPO = CONFORMANCE.parent


def case_files():
    return sorted(p for p in CASES.rglob("*.yaml"))


def case_id(path):
    return path.relative_to(CASES).with_suffix("").as_posix()


def pytest_generate_tests(metafunc):
    if "case_path" in metafunc.fixturenames:
        files = case_files()
        metafunc.parametrize("case_path", files, ids=[case_id(p) for p in files])


def wasm_dir():
    if os.environ.get("CONFORMANCE_WASM_DIR"):
        return Path(os.environ["CONFORMANCE_WASM_DIR"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "wasm32-wasip1" / "wasm"


def fixtures_dir():
    """Where scripts/build-fixtures.sh puts its modules (examples included)."""
    if os.environ.get("PWX_FIXTURES_DIR"):
        return Path(os.environ["PWX_FIXTURES_DIR"])
    return Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "fixtures"


@pytest.fixture(scope="session")
def modules(tmp_path_factory):
    """Resolves a case's `module:` value to a .wasm path (WAT sources compiled once)."""
    built = {}
    out = tmp_path_factory.mktemp("wat")

    def resolve(name):
        if name in built:
            return built[name]
        if name.startswith("wat/"):
            src = CONFORMANCE / "filters" / f"{name}.wat"
            dst = out / (name.replace("/", "_") + ".wasm")
            tool = shutil.which("wat2wasm")
            if tool is None:
                pytest.fail("wat2wasm (Debian package wabt) is needed for WAT filters")
            subprocess.run([tool, str(src), "-o", str(dst)], check=True)
            path = dst
        elif name.startswith("example:"):
            # examples/<name>, built by scripts/build-fixtures.sh into <fixtures>/<name>.wasm
            path = fixtures_dir() / f"{name.removeprefix('example:')}.wasm"
            if not path.exists():
                pytest.fail(f"example module {path} is missing: run scripts/build-fixtures.sh"
                            " (conformance/run.sh does; the AssemblyScript one needs node/npm)")
        else:
            path = wasm_dir() / f"{name}.wasm"
        if not path.exists():
            pytest.fail(f"filter module {path} is missing: build it (conformance/run.sh does)")
        built[name] = str(path)
        return built[name]

    return resolve
