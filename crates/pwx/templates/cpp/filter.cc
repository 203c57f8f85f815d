// {{name}}: a proxy-wasm HTTP filter (C++, proxy-wasm-cpp-sdk, clang for wasm32-wasi).
//
// - adds the header `x-{{name}}: on` to every request before it goes upstream and
//   `x-served-by: {{name}}` to every response;
// - refuses requests whose path starts with a prefix in the configuration with a 403 local
//   reply, logs the refusal and counts it in the `{{name_snake}}_denied_total` counter.
//
// The C++ template keeps configuration parsing dependency-free: the configuration is JSON with
// one field, {"deny_path_prefixes": ["/admin", ...]}, read by a small strict scanner below. The
// full config.json (request/response headers) of the other templates is what the Rust,
// AssemblyScript and Go templates parse; extend parse_config() to read those fields too.
#include <string>
#include <string_view>
#include <vector>

#include "proxy_wasm_intrinsics.h"

namespace {

// Parses {"deny_path_prefixes": ["/a", "/b"]}; returns "" or what is wrong.
std::string parse_config(std::string_view text, std::vector<std::string>* prefixes) {
  size_t i = 0;
  auto skip = [&] { while (i < text.size() && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r')) ++i; };
  auto expect = [&](char c) { skip(); if (i < text.size() && text[i] == c) { ++i; return true; } return false; };
  auto string = [&](std::string* out) {
    skip();
    if (i >= text.size() || text[i] != '"') return false;
    size_t end = text.find('"', i + 1);
    if (end == std::string_view::npos) return false;
    out->assign(text.substr(i + 1, end - i - 1));
    i = end + 1;
    return true;
  };
  if (text.empty()) return "";
  if (!expect('{')) return "expected an object";
  if (expect('}')) return "";
  do {
    std::string key;
    if (!string(&key)) return "expected a member name at character " + std::to_string(i + 1);
    if (key != "deny_path_prefixes") return "unknown field \"" + key + "\", expected deny_path_prefixes";
    if (!expect(':') || !expect('[')) return "deny_path_prefixes must be an array";
    if (!expect(']')) {
      do {
        std::string prefix;
        if (!string(&prefix)) return "deny_path_prefixes must hold strings";
        if (prefix.empty() || prefix[0] != '/') return "deny_path_prefixes: \"" + prefix + "\" does not start with '/'";
        prefixes->push_back(prefix);
      } while (expect(','));
      if (!expect(']')) return "expected ',' or ']' at character " + std::to_string(i + 1);
    }
  } while (expect(','));
  if (!expect('}')) return "expected ',' or '}' at character " + std::to_string(i + 1);
  skip();
  if (i != text.size()) return "unexpected text after the object";
  return "";
}

}  // namespace

class FilterRoot : public RootContext {
 public:
  explicit FilterRoot(uint32_t id, std::string_view root_id) : RootContext(id, root_id) {}

  bool onConfigure(size_t size) override {
    auto data = getBufferBytes(WasmBufferType::PluginConfiguration, 0, size);
    std::vector<std::string> prefixes;
    std::string error = parse_config(data->view(), &prefixes);
    if (!error.empty()) {
      LOG_ERROR("{{name}}: configuration: " + error);
      return false;
    }
    deny_path_prefixes_ = std::move(prefixes);
    if (defineMetric(MetricType::Counter, "{{name_snake}}_denied_total", &denied_metric_) != WasmResult::Ok) {
      LOG_WARN("{{name}}: cannot define the denied counter");
    }
    return true;
  }

  std::vector<std::string> deny_path_prefixes_;
  uint32_t denied_metric_ = 0;
};

class Filter : public Context {
 public:
  explicit Filter(uint32_t id, RootContext* root) : Context(id, root), root_(static_cast<FilterRoot*>(root)) {}

  FilterHeadersStatus onRequestHeaders(uint32_t, bool) override {
    auto path = getRequestHeader(":path");
    std::string p(path->view());
    for (const auto& prefix : root_->deny_path_prefixes_) {
      if (p.rfind(prefix, 0) != 0) continue;
      LOG_INFO("{{name}}: denied " + p);
      incrementMetric(root_->denied_metric_, 1);
      sendLocalResponse(403, "", "forbidden\n", {{"x-denied-by", "{{name}}"}});
      return FilterHeadersStatus::StopIteration;
    }
    addRequestHeader("x-{{name}}", "on");
    return FilterHeadersStatus::Continue;
  }

  FilterHeadersStatus onResponseHeaders(uint32_t, bool) override {
    addResponseHeader("x-served-by", "{{name}}");
    return FilterHeadersStatus::Continue;
  }

 private:
  FilterRoot* root_;
};

static RegisterContextFactory register_filter(CONTEXT_FACTORY(Filter), ROOT_FACTORY(FilterRoot), "");
