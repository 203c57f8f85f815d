// {{name}}: a proxy-wasm HTTP filter (Go >= 1.24, GOOS=wasip1, proxy-wasm-go-sdk).
//
//   - adds the configured headers to every request before it goes upstream, and to every
//     response;
//   - refuses requests whose path starts with one of deny_path_prefixes with a 403 local reply,
//     logs the refusal and counts it in the {{name_snake}}_denied_total counter.
//
// The configuration is JSON (config.json); an invalid one makes OnPluginStart fail, so the proxy
// refuses the filter at start-up with the reason in its log.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"
)

func init() {
	proxywasm.SetVMContext(&vmContext{})
}

// main is required by the Go toolchain; the proxy calls the exported callbacks.
func main() {}

type config struct {
	RequestHeaders   map[string]string `json:"request_headers"`
	ResponseHeaders  map[string]string `json:"response_headers"`
	DenyPathPrefixes []string          `json:"deny_path_prefixes"`
}

func parseConfig(data []byte) (config, error) {
	var c config
	if len(data) == 0 {
		return c, nil
	}
	decoder := json.NewDecoder(bytes.NewReader(data))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&c); err != nil {
		return c, err
	}
	for _, headers := range []map[string]string{c.RequestHeaders, c.ResponseHeaders} {
		for name := range headers {
			if name == "" || strings.HasPrefix(name, ":") {
				return c, fmt.Errorf("header name %q is empty or a pseudo-header", name)
			}
		}
	}
	for _, prefix := range c.DenyPathPrefixes {
		if !strings.HasPrefix(prefix, "/") {
			return c, fmt.Errorf("deny_path_prefixes: %q does not start with '/'", prefix)
		}
	}
	return c, nil
}

type vmContext struct {
	types.DefaultVMContext
}

func (*vmContext) NewPluginContext(contextID uint32) types.PluginContext {
	return &pluginContext{}
}

type pluginContext struct {
	types.DefaultPluginContext
	config config
	denied proxywasm.MetricCounter
}

func (p *pluginContext) OnPluginStart(pluginConfigurationSize int) types.OnPluginStartStatus {
	data, err := proxywasm.GetPluginConfiguration()
	if err != nil && err != types.ErrorStatusNotFound {
		proxywasm.LogErrorf("{{name}}: configuration: cannot read it: %v", err)
		return types.OnPluginStartStatusFailed
	}
	c, err := parseConfig(data)
	if err != nil {
		proxywasm.LogErrorf("{{name}}: configuration: %v", err)
		return types.OnPluginStartStatusFailed
	}
	p.config = c
	p.denied = proxywasm.DefineCounterMetric("{{name_snake}}_denied_total")
	return types.OnPluginStartStatusOK
}

func (p *pluginContext) NewHttpContext(contextID uint32) types.HttpContext {
	return &httpContext{plugin: p}
}

type httpContext struct {
	types.DefaultHttpContext
	plugin *pluginContext
}

func (h *httpContext) OnHttpRequestHeaders(numHeaders int, endOfStream bool) types.Action {
	path, _ := proxywasm.GetHttpRequestHeader(":path")
	for _, prefix := range h.plugin.config.DenyPathPrefixes {
		if strings.HasPrefix(path, prefix) {
			proxywasm.LogInfof("{{name}}: denied %s", path)
			h.plugin.denied.Increment(1)
			headers := [][2]string{{"x-denied-by", "{{name}}"}}
			if err := proxywasm.SendHttpResponse(403, headers, []byte("forbidden\n"), -1); err != nil {
				proxywasm.LogErrorf("{{name}}: cannot send the local reply: %v", err)
			}
			return types.ActionPause
		}
	}
	for name, value := range h.plugin.config.RequestHeaders {
		if err := proxywasm.AddHttpRequestHeader(name, value); err != nil {
			proxywasm.LogErrorf("{{name}}: cannot add request header %s: %v", name, err)
		}
	}
	return types.ActionContinue
}

func (h *httpContext) OnHttpResponseHeaders(numHeaders int, endOfStream bool) types.Action {
	for name, value := range h.plugin.config.ResponseHeaders {
		if err := proxywasm.AddHttpResponseHeader(name, value); err != nil {
			proxywasm.LogErrorf("{{name}}: cannot add response header %s: %v", name, err)
		}
	}
	return types.ActionContinue
}
