#!/usr/bin/env python3
"""Summarise the imports and exports of wasm modules (standard library only).

Usage:
  scripts/wasm-info.py MODULE.wasm...             one block per module: imports and exports with signatures
  scripts/wasm-info.py --table MODULE.wasm...     the markdown table kept in fixtures/README.md
  scripts/wasm-info.py --json MODULE.wasm...      everything as JSON
"""

import json
import os
import sys

VALTYPES = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128", 0x70: "funcref", 0x6F: "externref"}
KINDS = {0: "func", 1: "table", 2: "memory", 3: "global", 4: "tag"}
MARKERS = ("proxy_abi_version_0_1_0", "proxy_abi_version_0_2_0", "proxy_abi_version_0_2_1")


class Reader:
    def __init__(self, data, pos=0, end=None):
        self.data, self.pos, self.end = data, pos, len(data) if end is None else end

    def byte(self):
        b = self.data[self.pos]
        self.pos += 1
        return b

    def uleb(self):
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return result

    def name(self):
        n = self.uleb()
        s = self.data[self.pos:self.pos + n].decode("utf-8")
        self.pos += n
        return s

    def limits(self):
        flags = self.byte()
        lo = self.uleb()
        hi = self.uleb() if flags & 1 else None
        return lo, hi


def valtype(b):
    return VALTYPES.get(b, hex(b))


def parse(path):
    data = open(path, "rb").read()
    if data[:4] != b"\0asm":
        raise SystemExit(f"{path}: not a wasm module")
    r = Reader(data, 8)
    types, imports, funcs, exports = [], [], [], []
    memory, has_start_section = None, False
    while r.pos < len(data):
        sid = r.byte()
        size = r.uleb()
        end = r.pos + size
        s = Reader(data, r.pos, end)
        if sid == 1:  # type
            for _ in range(s.uleb()):
                form = s.byte()
                assert form == 0x60, f"unsupported type form {form:#x}"
                params = [valtype(s.byte()) for _ in range(s.uleb())]
                results = [valtype(s.byte()) for _ in range(s.uleb())]
                types.append((params, results))
        elif sid == 2:  # import
            for _ in range(s.uleb()):
                module, field, kind = s.name(), s.name(), s.byte()
                desc = None
                if kind == 0:
                    desc = s.uleb()
                elif kind == 1:
                    s.byte()
                    s.limits()
                elif kind == 2:
                    desc = s.limits()
                elif kind == 3:
                    s.byte()
                    s.byte()
                elif kind == 4:
                    s.byte()
                    desc = s.uleb()
                imports.append((module, field, KINDS.get(kind, str(kind)), desc))
        elif sid == 3:  # function
            funcs = [s.uleb() for _ in range(s.uleb())]
        elif sid == 5:  # memory
            n = s.uleb()
            if n:
                memory = s.limits()
        elif sid == 7:  # export
            for _ in range(s.uleb()):
                exports.append((s.name(), KINDS.get(s.byte(), "?"), s.uleb()))
        elif sid == 8:
            has_start_section = True
        r.pos = end

    imported_funcs = [i for i in imports if i[2] == "func"]

    def sig(type_index):
        params, results = types[type_index]
        return f"({', '.join(params)}) -> ({', '.join(results)})"

    def func_sig(index):
        if index < len(imported_funcs):
            return sig(imported_funcs[index][3])
        return sig(funcs[index - len(imported_funcs)])

    for imp in imports:
        if imp[2] == "memory":
            memory = imp[3]
    export_list = [
        {"name": name, "kind": kind, "signature": func_sig(idx) if kind == "func" else None}
        for name, kind, idx in exports
    ]
    names = [e["name"] for e in export_list if e["kind"] == "func"]
    marker = next((n for n in names if n in MARKERS), None)
    start = [n for n in ("_initialize", "_start") if n in names]
    if has_start_section:
        start.append("start section")
    alloc = [n for n in ("malloc", "proxy_on_memory_allocate") if n in names]
    return {
        "module": os.path.basename(path),
        "size": len(data),
        "abi_marker": marker[len("proxy_abi_version_"):].replace("_", ".") if marker else None,
        "start": start,
        "allocator": alloc,
        "memory_pages": {"min": memory[0], "max": memory[1]} if memory else None,
        "imports": [
            {"module": m, "name": f, "kind": k, "signature": sig(d) if k == "func" else None}
            for m, f, k, d in imports
        ],
        "exports": export_list,
    }


def table(infos):
    rows = [
        "| module | size | ABI marker | start | allocator | imports (env / WASI) | WASI imports |",
        "|---|---:|---|---|---|---|---|",
    ]
    for i in infos:
        env = sum(1 for x in i["imports"] if x["module"] == "env")
        wasi = [x for x in i["imports"] if x["module"].startswith("wasi")]
        wasi_names = ", ".join(f"`{x['module']}.{x['name']}`" for x in wasi) or "none"
        rows.append(
            f"| `{i['module']}` | {i['size']:,} B | {i['abi_marker'] or 'none'} "
            f"| {', '.join('`' + s + '`' if s.startswith('_') else s for s in i['start']) or 'none'} "
            f"| {', '.join('`' + a + '`' for a in i['allocator']) or 'none'} "
            f"| {len(i['imports'])} ({env} / {len(wasi)}) | {wasi_names} |"
        )
    return "\n".join(rows)


def main(argv):
    mode = "text"
    if argv and argv[0] in ("--table", "--json"):
        mode, argv = argv[0][2:], argv[1:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    infos = [parse(p) for p in argv]
    if mode == "json":
        print(json.dumps(infos, indent=2))
    elif mode == "table":
        print(table(infos))
    else:
        for i in infos:
            print(f"== {i['module']} ({i['size']} bytes) marker={i['abi_marker']} start={i['start']} "
                  f"allocator={i['allocator']} memory={i['memory_pages']}")
            for x in i["imports"]:
                print(f"  import {x['module']}.{x['name']} {x['kind']} {x['signature'] or ''}")
            for x in i["exports"]:
                print(f"  export {x['name']} {x['kind']} {x['signature'] or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
