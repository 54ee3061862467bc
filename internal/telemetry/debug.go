package telemetry

import (
	"net/http"
	"net/http/pprof"
)

// DebugHandler serves Go's profiles under /debug/pprof/. It belongs on a
// listener of its own (debug.addr), reachable from inside the pod only (kubectl
// port-forward): profiles reveal the code and cost CPU to take, so they must
// never share the public port.
func DebugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
