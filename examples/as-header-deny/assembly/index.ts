// as-header-deny: refuses requests that carry any configured header (e.g. debug or internal
// headers that must not come from outside). AssemblyScript, proxy-runtime 0.1.8.
//
// Plugin configuration (JSON, required):
//   {"deny_headers": ["x-debug", "x-internal-token"], "status": 403}
// deny_headers: non-empty list of header names (case-insensitive); status: 400..599, default 403.
// A refused request gets `status`, body "request refused: header <name> is not allowed\n" and
// the header `x-denied-by: as-header-deny`. Invalid configuration: one error line, and
// onConfigure returns false so the proxy refuses to start.
export * from "@solo-io/proxy-runtime/proxy"; // the proxy_* exports and `malloc`
import {
  RootContext,
  Context,
  registerRootContext,
  FilterHeadersStatusValues,
  GrpcStatusValues,
  HeaderPair,
  stream_context,
  send_local_response,
  log,
  LogLevelValues,
} from "@solo-io/proxy-runtime";
import { BufferTypeValues, get_buffer_bytes } from "@solo-io/proxy-runtime/runtime";
import { JsonParser, JsonValue, Kind, kindName } from "./json";

const NAME = "as-header-deny";

class Config {
  denyHeaders: Array<string> = new Array<string>();
  status: u32 = 403;
}

// Header names as RFC 9110 tokens limited to what real names use.
function isHeaderName(s: string): bool {
  if (s.length == 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39)
      || c == 0x2d || c == 0x5f;
    if (!ok) return false;
  }
  return true;
}

// Fills `out` from the configuration text; returns "" or what is wrong.
function parseConfig(text: string, out: Config): string {
  const parser = new JsonParser(text);
  const parsed = parser.parse();
  if (parsed === null) return parser.error;
  const root = parsed;
  if (root.kind != Kind.Object) return "expected an object, got " + kindName(root.kind);
  let sawDeny = false;
  for (let i = 0; i < root.keys.length; i++) {
    const key = root.keys[i];
    const v = root.items[i];
    if (key == "deny_headers") {
      if (v.kind != Kind.Array) return "deny_headers must be an array, got " + kindName(v.kind);
      if (v.items.length == 0) return "deny_headers is empty: nothing to deny";
      for (let j = 0; j < v.items.length; j++) {
        const h = v.items[j];
        if (h.kind != Kind.String || !isHeaderName(h.str)) {
          return "deny_headers[" + j.toString() + "] is not a header name";
        }
        out.denyHeaders.push(h.str.toLowerCase());
      }
      sawDeny = true;
    } else if (key == "status") {
      if (v.kind != Kind.Number || v.num != Math.floor(v.num) || v.num < 400 || v.num > 599) {
        return "status must be an integer in 400..599";
      }
      out.status = <u32>v.num;
    } else {
      return "unknown field \"" + key + "\", expected \"deny_headers\" or \"status\"";
    }
  }
  if (!sawDeny) return "missing field \"deny_headers\"";
  return "";
}

class HeaderDenyRoot extends RootContext {
  config: Config = new Config();

  createContext(context_id: u32): Context {
    return new HeaderDeny(context_id, this);
  }

  // Reads the configuration itself: the runtime's own onConfigure passes a wrong out-pointer.
  onConfigure(configuration_size: u32): bool {
    if (configuration_size == 0) {
      log(LogLevelValues.error, NAME + ": configuration: none given; give {\"deny_headers\": [...]}");
      return false;
    }
    const bytes = get_buffer_bytes(BufferTypeValues.PluginConfiguration, 0, configuration_size);
    const config = new Config();
    const error = parseConfig(String.UTF8.decode(bytes), config);
    if (error.length > 0) {
      log(LogLevelValues.error, NAME + ": configuration: " + error);
      return false;
    }
    this.config = config;
    return true;
  }
}

class HeaderDeny extends Context {
  root: HeaderDenyRoot;

  constructor(context_id: u32, root: HeaderDenyRoot) {
    super(context_id, root);
    this.root = root;
  }

  onRequestHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const present = stream_context.headers.request.get_headers();
    const deny = this.root.config.denyHeaders;
    for (let i = 0; i < present.length; i++) {
      const name = String.UTF8.decode(present[i].key).toLowerCase();
      if (!deny.includes(name)) continue;
      log(LogLevelValues.info, NAME + ": " + this.root.config.status.toString() + ": request carries " + name);
      const extra = new Array<HeaderPair>();
      extra.push(new HeaderPair(String.UTF8.encode("x-denied-by"), String.UTF8.encode(NAME)));
      send_local_response(this.root.config.status, "",
        String.UTF8.encode("request refused: header " + name + " is not allowed\n"),
        extra, GrpcStatusValues.InvalidCode); // -1: not a gRPC reply
      return FilterHeadersStatusValues.StopIteration;
    }
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32) => { return new HeaderDenyRoot(context_id); }, "");
