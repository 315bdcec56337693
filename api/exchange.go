package api

import (
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/sios-project/sios/metrics"
	"github.com/sios-project/sios/oar"
)

// exchange is one request as the node's log line and metrics see it: the response
// writer that notes the status, the bytes sent, the principal and the request's audit
// record. It is passed down explicitly as the handlers' http.ResponseWriter.
type exchange struct {
	http.ResponseWriter
	status    int
	bytes     int64
	principal string
	record    string // hex hash of the request's audit record, once receipted
	index     uint64 // its index in the log
	full      bool   // the full receipt goes inline (FullReceiptHeader)
}

func (x *exchange) WriteHeader(code int) {
	if x.status == 0 {
		x.status = code
	}
	x.ResponseWriter.WriteHeader(code)
}

func (x *exchange) Write(b []byte) (int, error) {
	if x.status == 0 {
		x.status = http.StatusOK
	}
	n, err := x.ResponseWriter.Write(b)
	x.bytes += int64(n)
	return n, err
}

// Flush lets a streamed answer through (http.Flusher).
func (x *exchange) Flush() {
	if f, ok := x.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the connection's writer.
func (x *exchange) Unwrap() http.ResponseWriter { return x.ResponseWriter }

// setReceipt names the request's audit record in the X-Sios-Receipt header, adds the
// full receipt when the caller asked for it (or the node always sends it), and notes
// the record for the log line.
func setReceipt(h http.Header, w http.ResponseWriter, rc *oar.Receipt) {
	h.Set(ReceiptHeader, CompactReceipt(rc))
	x, ok := w.(*exchange)
	if !ok {
		h.Set(FullReceiptHeader, EncodeReceipt(rc))
		return
	}
	if x.full {
		h.Set(FullReceiptHeader, EncodeReceipt(rc))
	}
	x.record, x.index = rc.RecordHash, rc.Index
}

// notePrincipal notes who the request was authenticated as, for the log line.
func notePrincipal(w http.ResponseWriter, id string) {
	if x, ok := w.(*exchange); ok {
		x.principal = id
	}
}

// Mount serves h under the path prefix pattern (e.g. "/console/") beside the API, so
// that its requests are logged and counted as the API's are. Call it before serving.
func (s *Server) Mount(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// SetMetrics makes the server count every request in m. Call it before serving.
func (s *Server) SetMetrics(m *metrics.Metrics) { s.metrics = m }

// SetRequestLog makes the server write its request lines straight to w, each with one
// Write, as the log's handler would write them — slog's JSONHandler when json is set,
// its TextHandler otherwise, with level INFO and no other options — instead of through
// the log given to NewServer, whose level and options it then does not consult. Call
// it before serving.
func (s *Server) SetRequestLog(w io.Writer, json bool) { s.requests = &requestLog{w: w, json: json} }

// SetFullReceipts makes every answer carry its full receipt inline (config
// full_receipts), not only those whose request asks with 'X-Sios-Receipt: full'.
func (s *Server) SetFullReceipts(on bool) { s.fullReceipts = on }

// ServeHTTP implements http.Handler: it routes the request, then writes one log line
// for it — method, route, status, duration, bytes, principal and the hash and index of
// its audit record; never a header, a key, a token or a byte of the body — and counts
// it in the metrics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	x := &exchange{ResponseWriter: w, full: s.fullReceipts || r.Header.Get(ReceiptHeader) == "full"}
	s.mux.ServeHTTP(x, r)
	d := time.Since(start)
	route := r.Pattern // set by the mux
	if route == "" || route == "/" {
		route = "unmatched"
	}
	if x.status == 0 {
		x.status = http.StatusOK
	}
	s.metrics.HTTPRequest(route, x.status, d)
	line := &requestLine{time: start.Add(d), method: r.Method, route: route, status: x.status,
		durationMS: float64(d.Microseconds()) / 1000, bytes: x.bytes, principal: x.principal, record: x.record, index: x.index}
	if s.requests != nil {
		s.requests.write(line)
		return
	}
	if s.log != nil {
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", line.attrs()...)
	}
}

// attrs are the line's attributes for a slog handler.
func (l *requestLine) attrs() []slog.Attr {
	attrs := make([]slog.Attr, 0, 8)
	attrs = append(attrs, slog.String("method", l.method), slog.String("route", l.route), slog.Int("status", l.status),
		slog.Float64("duration_ms", l.durationMS), slog.Int64("bytes", l.bytes))
	if l.principal != "" {
		attrs = append(attrs, slog.String("principal", l.principal))
	}
	if l.record != "" {
		attrs = append(attrs, slog.String("record", l.record), slog.Uint64("index", l.index))
	}
	return attrs
}
