package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/encoding/protojson"
)

func uitoa(v uint64) string { return strconv.FormatUint(v, 10) }

// HTTPServer serves a process's observability endpoints: /metrics
// (Prometheus), /debug/pprof/, and whatever extra handlers are given (PD's
// JSON API).
type HTTPServer struct {
	srv  *http.Server
	addr string
}

// StartHTTP listens on addr and serves reg's metrics, pprof and extra.
func StartHTTP(addr string, reg *prometheus.Registry, extra map[string]http.Handler, log *slog.Logger) (*HTTPServer, error) {
	lis, err := Listen(addr)
	if err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	for path, h := range extra {
		mux.Handle(path, h)
	}
	h := &HTTPServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, addr: lis.Addr().String()}
	go func() {
		if err := h.srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) && log != nil {
			log.Error("http serve", "err", err)
		}
	}()
	return h, nil
}

// Addr is the address served on.
func (h *HTTPServer) Addr() string { return h.addr }

// Close stops serving.
func (h *HTTPServer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	h.srv.Shutdown(ctx)
}

// HTTPHandlers are PD's JSON endpoints: /pd/api/v1/stores and
// /pd/api/v1/regions (the routing view with leaders), plus
// /pd/api/v1/operators.
func (s *PD) HTTPHandlers() map[string]http.Handler {
	return map[string]http.Handler{
		"/pd/api/v1/stores": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var out []json.RawMessage
			err := s.do(r.Context(), func() {
				for _, st := range storesOf(s.core.Stores()) {
					b, _ := protojson.Marshal(st)
					out = append(out, b)
				}
			})
			writeJSON(w, map[string]any{"cluster_id": s.clusterID, "stores": out}, err)
		}),
		"/pd/api/v1/regions": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var out []json.RawMessage
			err := s.do(r.Context(), func() {
				for _, ri := range s.core.RegionInfos() {
					b, _ := protojson.Marshal(ri)
					out = append(out, b)
				}
			})
			writeJSON(w, map[string]any{"cluster_id": s.clusterID, "count": len(out), "regions": out}, err)
		}),
		"/pd/api/v1/operators": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var out any
			err := s.do(r.Context(), func() { out = s.core.Operators() })
			writeJSON(w, map[string]any{"cluster_id": s.clusterID, "operators": out}, err)
		}),
	}
}

func writeJSON(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
