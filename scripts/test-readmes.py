#!/usr/bin/env python3
"""Runs the shell commands of the README files, as written, and checks what they print.

Usage: scripts/test-readmes.py [README.md ...]   (default: README.md and examples/*/README.md)

A README is a script for this test. Its fenced blocks are read top to bottom; the words after
the fence's language (invisible on GitHub) say what to do with a block:

  ```sh                      commands, run by bash from the repository root; must exit 0
  ```sh background port=N    started in the background (a server, "in another terminal");
                             the test waits until 127.0.0.1:N accepts connections (ports
                             comma-separated); name=NAME lets a later directive stop it
  ```sh skip                 not run (the test suite itself)
  ```text output             what the command block just above prints on stdout; a line
                             "..." stands for any number of lines, "..." inside a line for
                             any text; trailing spaces and carriage returns are ignored
  ```text stderr             the same for what it prints on stderr
  ```json file=PATH          must be the same JSON value as the file PATH (repo-relative)

and HTML comments give directives:

  <!-- readme-test: stop NAME -->    stop the background block NAME (as Ctrl-C would)
  <!-- readme-test: expect-fail -->  the next command block must exit non-zero
  <!-- readme-test: rerun-envoy NAME ... -->
                                     run the command blocks named NAME again (now against
                                     Envoy) and check their outputs, less the headers Envoy
                                     adds: `server` and `x-envoy-upstream-service-time` in
                                     responses, `x-envoy-expected-rq-timeout-ms` in what the
                                     echo upstream shows; response headers are compared
                                     in any order

Blocks without these words (```json, ```yaml, ```text, other languages) are not run. At the
end of each README every background process group it started is stopped by its PID.

The commands use fixed ports (10000, 8080, 9001, 9901), so each README runs in a private
network namespace when `unshare -rn` and `ip` work (no clash with anything else on the
machine); otherwise on the host, after checking that its ports are free. The commands use
`target/fixtures/...`: when CARGO_TARGET_DIR is set and the repository has no `target`, the
test links `target` to it (the link is git-ignored like the directory).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IN_NETNS = "PWX_README_NETNS_INSIDE"
COMMAND_TIMEOUT_S = int(os.environ.get("PWX_README_TIMEOUT", "600"))  # a first `cargo run` may build pwx
PORT_TIMEOUT_S = COMMAND_TIMEOUT_S


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    lang: str
    words: dict[str, str]  # marker words: "background" -> "", "port" -> "10000", ...
    text: str
    expect_fail: bool = False
    output: Block | None = None  # the ```text output block that follows a command block
    stderr: Block | None = None  # the ```text stderr block that follows a command block


@dataclass
class Directive:
    line: int
    verb: str
    arg: str


@dataclass
class Readme:
    path: Path
    steps: list[Block | Directive] = field(default_factory=list)

    def ports(self) -> list[int]:
        return [
            int(p)
            for s in self.steps
            if isinstance(s, Block) and "port" in s.words
            for p in s.words["port"].split(",")
        ]


class Failure(Exception):
    pass


FENCE = re.compile(r"^(\s*)(`{3,})(.*)$")
DIRECTIVE = re.compile(r"^\s*<!--\s*readme-test:\s*(\S+)\s*(.*?)\s*-->\s*$")


def parse(path: Path) -> Readme:
    readme = Readme(path)
    lines = path.read_text().splitlines()
    i = 0
    pending_fail = False
    last_command: Block | None = None
    while i < len(lines):
        m = DIRECTIVE.match(lines[i])
        if m:
            verb, arg = m.group(1), m.group(2)
            if verb == "expect-fail":
                pending_fail = True
            elif verb in ("stop", "rerun-envoy"):
                readme.steps.append(Directive(i + 1, verb, arg))
            else:
                raise Failure(f"{path}:{i + 1}: unknown readme-test directive {verb!r}")
            i += 1
            continue
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.groups()
        start = i
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            line = lines[i]
            body.append(line[len(indent) :] if line.startswith(indent) else line)
            i += 1
        if i == len(lines):
            raise Failure(f"{path}:{start + 1}: code block is never closed")
        i += 1
        parts = info.split()
        lang = parts[0] if parts else ""
        words = {}
        for w in parts[1:]:
            k, _, v = w.partition("=")
            words[k] = v
        block = Block(start + 1, lang, words, "\n".join(body) + "\n")
        if lang == "sh" and words:
            unknown = set(words) - {"background", "port", "name", "skip"}
            if unknown:
                raise Failure(f"{path}:{start + 1}: unknown marker(s) {sorted(unknown)}")
            if "background" in words and not words.get("port"):
                raise Failure(f"{path}:{start + 1}: a background block needs port=N")
        if lang == "sh" and "skip" in words:
            last_command = None
        elif lang == "sh":
            block.expect_fail = pending_fail
            pending_fail = False
            readme.steps.append(block)
            last_command = block
        elif lang == "text" and ("output" in words or "stderr" in words):
            if last_command is None or "background" in last_command.words:
                raise Failure(
                    f"{path}:{start + 1}: an output block must follow a command block"
                )
            if "output" in words:
                last_command.output = block
            else:
                last_command.stderr = block
        elif lang == "json" and "file" in words:
            readme.steps.append(block)
            last_command = None
        else:
            last_command = None
    if pending_fail:
        raise Failure(f"{path}: expect-fail directive without a command block after it")
    return readme


def matches(expected: str, actual: str) -> bool:
    """Line-wise match with "..." wildcards (a whole line: any lines; inside a line: any text)."""
    exp = [line.rstrip() for line in expected.rstrip("\n").split("\n")]
    act = [line.rstrip("\r").rstrip() for line in actual.rstrip("\n").split("\n")]
    if actual.strip() == "":
        act = []
    patterns = [
        None if line == "..." else re.compile("^" + ".*".join(map(re.escape, line.split("..."))) + "$")
        for line in exp
    ]

    memo: dict[tuple[int, int], bool] = {}

    def go(p: int, a: int) -> bool:
        key = (p, a)
        if key in memo:
            return memo[key]
        if p == len(patterns):
            result = a == len(act)
        elif patterns[p] is None:
            result = any(go(p + 1, k) for k in range(a, len(act) + 1))
        else:
            result = a < len(act) and bool(patterns[p].match(act[a])) and go(p + 1, a + 1)
        memo[key] = result
        return result

    return go(0, 0)


class Runner:
    def __init__(self, readme: Readme) -> None:
        self.readme = readme
        self.background: dict[str, tuple[subprocess.Popen, Path, Block]] = {}
        self.logs = Path(tempfile.mkdtemp(prefix="pwx-readme-"))

    def where(self, step: Block | Directive) -> str:
        return f"{self.readme.path.relative_to(REPO)}:{step.line}"

    def run(self) -> None:
        try:
            for step in self.readme.steps:
                if isinstance(step, Directive) and step.verb == "stop":
                    self.stop(step)
                elif isinstance(step, Directive):
                    self.rerun_envoy(step)
                elif step.lang == "json":
                    self.check_json(step)
                elif "background" in step.words:
                    self.start(step)
                else:
                    self.command(step)
        finally:
            for name in list(self.background):
                self.terminate(name)
            shutil.rmtree(self.logs, ignore_errors=True)

    def check_json(self, block: Block) -> None:
        target = REPO / block.words["file"]
        try:
            shown = json.loads(block.text)
        except json.JSONDecodeError as e:
            raise Failure(f"{self.where(block)}: the block is not JSON: {e}") from None
        actual = json.loads(target.read_text())
        if shown != actual:
            raise Failure(
                f"{self.where(block)}: the block differs from {block.words['file']}:\n"
                f"{json.dumps(actual, indent=2)}"
            )

    def rerun_envoy(self, directive: Directive) -> None:
        for name in directive.arg.split():
            blocks = [
                s
                for s in self.readme.steps
                if isinstance(s, Block) and s.lang == "sh" and s.words.get("name") == name
            ]
            if not blocks or "background" in blocks[0].words:
                raise Failure(f"{self.where(directive)}: no command block named {name!r}")
            self.command(blocks[0], envoy=True)

    def command(self, block: Block, envoy: bool = False) -> None:
        again = " again, on Envoy" if envoy else ""
        print(f"  $ {block.text.strip().splitlines()[0]}{again}  ({self.where(block)})", flush=True)
        try:
            done = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", block.text],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise Failure(f"{self.where(block)}: still running after {COMMAND_TIMEOUT_S} s") from None
        failed = done.returncode != 0
        if failed != block.expect_fail:
            what = f"exited {done.returncode}" if failed else "succeeded but should fail"
            raise Failure(
                f"{self.where(block)}: {what}\n--- stdout\n{done.stdout}--- stderr\n{done.stderr}"
                + self.background_logs()
            )
        stdout = headers_sorted(without_envoy_additions(done.stdout)) if envoy else done.stdout
        expected = block.output and (
            headers_sorted(block.output.text) if envoy else block.output.text
        )
        if expected is not None and not matches(expected, stdout):
            raise Failure(
                f"{self.where(block)}: the output is not what {self.where(block.output)} shows\n"
                f"--- expected\n{expected}--- actual stdout{again}\n{stdout}"
                f"--- stderr\n{done.stderr}"
            )
        if block.stderr is not None and not matches(block.stderr.text, done.stderr):
            raise Failure(
                f"{self.where(block)}: stderr is not what {self.where(block.stderr)} shows\n"
                f"--- expected\n{block.stderr.text}--- actual stderr\n{done.stderr}"
            )

    def start(self, block: Block) -> None:
        name = block.words.get("name") or f"line-{block.line}"
        print(f"  $ {block.text.strip().splitlines()[0]} &  ({self.where(block)})", flush=True)
        log = self.logs / f"{name}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                ["bash", "-c", block.text],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, stopped as a whole
            )
        self.background[name] = (proc, log, block)
        ports = [int(p) for p in block.words["port"].split(",")]
        deadline = time.monotonic() + PORT_TIMEOUT_S
        for port in ports:
            while not port_open(port):
                if proc.poll() is not None:
                    raise Failure(
                        f"{self.where(block)}: exited ({proc.returncode}) before listening on "
                        f"127.0.0.1:{port}\n--- its output\n{log.read_text()}"
                    )
                if time.monotonic() > deadline:
                    raise Failure(f"{self.where(block)}: nothing listens on 127.0.0.1:{port}")
                time.sleep(0.05)

    def stop(self, directive: Directive) -> None:
        if directive.arg not in self.background:
            raise Failure(f"{self.where(directive)}: no background block named {directive.arg!r}")
        self.terminate(directive.arg)

    def terminate(self, name: str) -> None:
        proc, _, _ = self.background.pop(name)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in its terminal does
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def background_logs(self) -> str:
        return "".join(
            f"\n--- output of the background block at {self.where(block)}\n{log.read_text()}"
            for _, log, block in self.background.values()
        )


ENVOY_ADDITIONS = re.compile(
    r'^(server: envoy|x-envoy-upstream-service-time: \d+|\s*"x-envoy-expected-rq-timeout-ms": "\d+",)\r?$',
    re.IGNORECASE,
)


def without_envoy_additions(stdout: str) -> str:
    """stdout without the headers Envoy adds (the READMEs say so next to each rerun)."""
    return "".join(
        line for line in stdout.splitlines(keepends=True) if not ENVOY_ADDITIONS.match(line)
    )


def headers_sorted(text: str) -> str:
    """Each HTTP response head's header lines sorted by name (Envoy orders some differently)."""
    out, head = [], None
    for line in text.splitlines():
        if line.startswith("HTTP/"):
            out.append(line)
            head = []
        elif head is not None and line.strip():
            head.append(line)
        else:
            if head is not None:
                out.extend(sorted(head, key=lambda h: h.split(":", 1)[0].lower()))
                head = None
            out.append(line)
    if head is not None:
        out.extend(sorted(head, key=lambda h: h.split(":", 1)[0].lower()))
    return "\n".join(out) + "\n"


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def netns_available() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rn", "ip", "link", "set", "lo", "up"], capture_output=True
    )
    return probe.returncode == 0


def link_target_dir() -> None:
    custom = os.environ.get("CARGO_TARGET_DIR")
    target = REPO / "target"
    if not custom or target.exists() and target.resolve() == Path(custom).resolve():
        return
    if target.exists() or target.is_symlink():
        sys.exit(
            f"test-readmes: CARGO_TARGET_DIR={custom} but {target} is another directory; the "
            "README commands use target/: unset CARGO_TARGET_DIR or remove target/"
        )
    print(f"test-readmes: linking target -> {custom} (the READMEs use target/fixtures)")
    target.symlink_to(custom)


def main() -> int:
    args = sys.argv[1:]
    if not os.environ.get(IN_NETNS) and os.environ.get("PWX_README_NETNS", "1") != "0":
        if netns_available():
            link_target_dir()
            script = 'ip link set lo up && exec "$@"'
            cmd = ["unshare", "-rn", "sh", "-c", script, "sh", sys.executable, __file__, *args]
            return subprocess.run(cmd, env={**os.environ, IN_NETNS: "1"}).returncode
        print("test-readmes: no private network namespace (unshare -rn); using the host's ports")
    link_target_dir()
    paths = [Path(a).resolve() for a in args] or [REPO / "README.md"] + sorted(
        REPO.glob("examples/*/README.md")
    )
    failures = []
    started = time.monotonic()
    for path in paths:
        t0 = time.monotonic()
        print(f"== {path.relative_to(REPO)}", flush=True)
        try:
            readme = parse(path)
            if not os.environ.get(IN_NETNS):
                busy = [p for p in readme.ports() if port_open(p)]
                if busy:
                    raise Failure(f"{path}: ports {busy} are in use; free them and run again")
            Runner(readme).run()
            print(f"   ok ({time.monotonic() - t0:.1f} s)", flush=True)
        except Failure as e:
            print(f"FAIL {e}", flush=True)
            failures.append(path)
    print(
        f"test-readmes: {len(paths) - len(failures)} of {len(paths)} READMEs pass "
        f"({time.monotonic() - started:.0f} s)"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
