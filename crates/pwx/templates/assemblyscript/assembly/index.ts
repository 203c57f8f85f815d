// {{name}}: a proxy-wasm HTTP filter (AssemblyScript 0.14, @solo-io/proxy-runtime 0.1.8).
//
// - adds the configured headers to every request before it goes upstream, and to every response;
// - refuses requests whose path starts with one of `deny_path_prefixes` with a 403 local reply,
//   logs the refusal and counts it in the `{{name_snake}}_denied_total` counter.
//
// The configuration is JSON (see config.json and README.md); an invalid one makes onConfigure
// return false, so the proxy refuses the filter at start-up with the reason in its log.
export * from "@solo-io/proxy-runtime/proxy"; // the proxy_* exports and `malloc`
import {
  RootContext,
  Context,
  registerRootContext,
  FilterHeadersStatusValues,
  GrpcStatusValues,
  HeaderPair,
  Counter,
  stream_context,
  send_local_response,
  log,
  LogLevelValues,
} from "@solo-io/proxy-runtime";
import { BufferTypeValues, get_buffer_bytes } from "@solo-io/proxy-runtime/runtime";
import { JsonParser, JsonValue, Kind, kindName } from "./json";

const NAME = "{{name}}";

class Config {
  requestNames: Array<string> = new Array<string>();
  requestValues: Array<string> = new Array<string>();
  responseNames: Array<string> = new Array<string>();
  responseValues: Array<string> = new Array<string>();
  denyPathPrefixes: Array<string> = new Array<string>();
}

// Reads an object of header name -> string value; returns "" or what is wrong.
function readHeaders(field: string, v: JsonValue, names: Array<string>, values: Array<string>): string {
  if (v.kind != Kind.Object) return field + " must be an object, got " + kindName(v.kind);
  for (let i = 0; i < v.keys.length; i++) {
    const name = v.keys[i];
    if (name.length == 0 || name.charCodeAt(0) == 0x3a) {
      return field + ": header name \"" + name + "\" is empty or a pseudo-header";
    }
    if (v.items[i].kind != Kind.String) return field + "." + name + " must be a string";
    names.push(name.toLowerCase());
    values.push(v.items[i].str);
  }
  return "";
}

// Fills `out` from the configuration text; returns "" or what is wrong.
function parseConfig(text: string, out: Config): string {
  const parser = new JsonParser(text);
  const parsed = parser.parse();
  if (parsed === null) return parser.error;
  const root = parsed;
  if (root.kind != Kind.Object) return "expected an object, got " + kindName(root.kind);
  for (let i = 0; i < root.keys.length; i++) {
    const key = root.keys[i];
    const v = root.items[i];
    let error = "";
    if (key == "request_headers") {
      error = readHeaders(key, v, out.requestNames, out.requestValues);
    } else if (key == "response_headers") {
      error = readHeaders(key, v, out.responseNames, out.responseValues);
    } else if (key == "deny_path_prefixes") {
      if (v.kind != Kind.Array) return "deny_path_prefixes must be an array, got " + kindName(v.kind);
      for (let j = 0; j < v.items.length; j++) {
        const p = v.items[j];
        if (p.kind != Kind.String) return "deny_path_prefixes[" + j.toString() + "] must be a string";
        if (!p.str.startsWith("/")) return "deny_path_prefixes: \"" + p.str + "\" does not start with '/'";
        out.denyPathPrefixes.push(p.str);
      }
    } else {
      error = "unknown field \"" + key + "\", expected request_headers, response_headers or deny_path_prefixes";
    }
    if (error.length > 0) return error;
  }
  return "";
}

class FilterRoot extends RootContext {
  config: Config = new Config();
  denied: Counter | null = null;

  createContext(context_id: u32): Context {
    return new Filter(context_id, this);
  }

  // Reads the configuration itself: the runtime's own onConfigure passes a wrong out-pointer
  // (and crashes on an empty configuration), so this filter requires one.
  onConfigure(configuration_size: u32): bool {
    if (configuration_size == 0) {
      log(LogLevelValues.error, NAME + ": configuration: none given; see config.json");
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
    this.denied = new Counter("{{name_snake}}_denied_total");
    return true;
  }
}

class Filter extends Context {
  root: FilterRoot;

  constructor(context_id: u32, root: FilterRoot) {
    super(context_id, root);
    this.root = root;
  }

  onRequestHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const config = this.root.config;
    const path = stream_context.headers.request.get(":path");
    for (let i = 0; i < config.denyPathPrefixes.length; i++) {
      if (!path.startsWith(config.denyPathPrefixes[i])) continue;
      log(LogLevelValues.info, NAME + ": denied " + path);
      const denied = this.root.denied;
      if (denied !== null) denied.increment(1);
      const extra = new Array<HeaderPair>();
      extra.push(new HeaderPair(String.UTF8.encode("x-denied-by"), String.UTF8.encode(NAME)));
      send_local_response(403, "", String.UTF8.encode("forbidden\n"), extra,
        GrpcStatusValues.InvalidCode); // -1: not a gRPC reply
      return FilterHeadersStatusValues.StopIteration;
    }
    for (let i = 0; i < config.requestNames.length; i++) {
      stream_context.headers.request.add(config.requestNames[i], config.requestValues[i]);
    }
    return FilterHeadersStatusValues.Continue;
  }

  onResponseHeaders(headers: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const config = this.root.config;
    for (let i = 0; i < config.responseNames.length; i++) {
      stream_context.headers.response.add(config.responseNames[i], config.responseValues[i]);
    }
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32) => { return new FilterRoot(context_id); }, "");
