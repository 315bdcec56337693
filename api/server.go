package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/metrics"
	"github.com/sios-project/sios/policy"
)

// Server serves the OpenAI-compatible API over a Gateway.
type Server struct {
	gw      Gateway
	log     *slog.Logger
	mux     *http.ServeMux
	metrics *metrics.Metrics // nil: none
	// fullReceipts puts the full receipt in every answer (SetFullReceipts).
	fullReceipts bool
	ready        func() []Check // nil: ready whenever serving
	// requests, when set, writes the request lines in place of log (SetRequestLog).
	requests *requestLog
}

// NewServer builds the API's handler. log receives one line per request (ServeHTTP),
// and the error of each that failed inside the node.
func NewServer(gw Gateway, log *slog.Logger) *Server {
	s := &Server{gw: gw, log: log, mux: http.NewServeMux()}
	s.mux.HandleFunc("POST /v1/chat/completions", s.authed(s.chat))
	s.mux.HandleFunc("GET /v1/models", s.authed(s.models))
	s.mux.HandleFunc("POST /v1/embeddings", s.authed(s.embeddings))
	if mg, ok := gw.(MemoryGateway); ok {
		s.memoryRoutes(mg)
	}
	if rg, ok := gw.(RoleGateway); ok {
		s.roleRoutes(rg) // roles.go
	}
	if rg, ok := gw.(ReceiptGateway); ok {
		s.mux.HandleFunc("GET /v1/receipts/{index}", s.authed(func(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
			idx, err := strconv.ParseUint(r.PathValue("index"), 10, 63)
			if err != nil {
				return Errorf(http.StatusBadRequest, "invalid_index", "the receipt index must be a record's index in the log, a decimal integer")
			}
			rc, err := rg.Receipt(r.Context(), p, idx)
			if err != nil {
				return err
			}
			w.Header().Set("Content-Type", "application/json")
			return json.NewEncoder(w).Encode(rc)
		}))
	}
	if cg, ok := gw.(ConsentGateway); ok {
		s.consentRoutes(cg)
	}
	if dg, ok := gw.(DecisionGateway); ok {
		s.decisionRoutes(dg)
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`+"\n")
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, Errorf(http.StatusNotFound, "not_found", "no route for %s %s", r.Method, r.URL.Path))
	})
	return s
}

type authedHandler func(w http.ResponseWriter, r *http.Request, p *policy.Principal) error

// authed checks the bearer key, runs h, and turns its error into a response.
func (s *Server) authed(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := s.authenticate(w, r, func(p *policy.Principal) error { return h(w, r, p) })
		if err == nil {
			return
		}
		ae, ok := asError(err)
		if !ok {
			if errors.Is(err, context.Canceled) {
				return // the caller went away
			}
			s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			ae = Errorf(http.StatusInternalServerError, "internal_error", "the node could not complete the request; see its log")
		} else if ae.Status >= 500 {
			s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", ae.Status, "err", ae.Message)
		}
		writeError(w, ae)
	}
}

func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, next func(*policy.Principal) error) error {
	auth := r.Header.Get("Authorization")
	key, ok := strings.CutPrefix(auth, "Bearer ")
	refuse := func(code, reason, msg string) error {
		if !s.gw.RefuseAuthentication(r.Context(), r.RemoteAddr, reason) {
			return Errorf(http.StatusServiceUnavailable, "audit_unavailable", "the audit ledger could not record this request")
		}
		return Errorf(http.StatusUnauthorized, code, "%s", msg)
	}
	if auth == "" {
		return refuse("missing_api_key", "no API key", "no API key: send 'Authorization: Bearer KEY'")
	}
	if !ok {
		return refuse("invalid_api_key", "malformed Authorization header", "the Authorization header must be 'Bearer KEY'")
	}
	p, err := s.gw.Authenticate(r.Context(), strings.TrimSpace(key))
	if err != nil {
		ae, ok := asError(err)
		if !ok {
			return err
		}
		reason := map[string]string{"invalid_api_key": "a key the node does not know", "invalid_token": "a token no configured identity provider issued, or expired"}[ae.Code]
		if reason == "" { // recorded by the pipeline (an unmapped user), or not a refusal at all
			return ae
		}
		if !s.gw.RefuseAuthentication(r.Context(), r.RemoteAddr, reason) {
			return Errorf(http.StatusServiceUnavailable, "audit_unavailable", "the audit ledger could not record this request")
		}
		return ae
	}
	notePrincipal(w, p.ID)
	return next(p)
}

// ClassificationHeader is where a caller declares the classification of the data it
// sends.
const ClassificationHeader = "X-Sios-Classification"

// classificationHeader is the X-Sios-Classification the request carries: every value,
// joined by ", " when there is more than one, for the pipeline to refuse (a proxy
// that appends the true marking must not be bypassed by a first, lower one).
func classificationHeader(r *http.Request) string {
	return strings.Join(r.Header.Values(ClassificationHeader), ", ")
}

// decodeBody reads a JSON body of at most MaxBodyBytes into v, strictly
// (jcs.DecodeStrict): a member the endpoint does not take, one differently cased or
// one given twice is a 400 naming it, not a setting silently dropped or read two ways.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	data, err := readBody(w, r)
	if err != nil {
		return err
	}
	if err := jcs.DecodeStrict(data, v); err != nil {
		return strictProblem(err, "the request body is not valid JSON for this endpoint")
	}
	return nil
}

// readBody reads a request body of at most MaxBodyBytes, within ReadBodyTimeout.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(ReadBodyTimeout))
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	var data []byte
	var err error
	if n := r.ContentLength; n > 0 && n <= MaxBodyBytes {
		// The length is known: read into a buffer of that size at once (and see EOF
		// after it, so that a body longer than it said is an error, as net/http makes it).
		data = make([]byte, n, n+1)
		if _, err = io.ReadFull(body, data); err == nil {
			var extra [1]byte
			if m, rerr := body.Read(extra[:]); m > 0 || (rerr != nil && rerr != io.EOF) {
				err = cmp.Or(rerr, io.ErrUnexpectedEOF)
			}
		}
	} else {
		data, err = io.ReadAll(body)
	}
	if err != nil {
		// The connection cannot be reused: close it rather than wait for the rest.
		w.Header().Set("Connection", "close")
	} else {
		rc.SetReadDeadline(time.Time{}) // the handler may run long; the client need not send more
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, Errorf(http.StatusRequestEntityTooLarge, "request_too_large", "request body is larger than %d bytes (MaxBodyBytes)", MaxBodyBytes)
		}
		return nil, Errorf(http.StatusBadRequest, "invalid_body", "could not read the request body")
	}
	if len(data) == 0 {
		return nil, Errorf(http.StatusBadRequest, "invalid_body", "the request body is empty; send a JSON object")
	}
	return data, nil
}

// jsonProblem describes a decoding error without echoing the body.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "syntax error at byte " + itoa(se.Offset)
	case errors.As(err, &te):
		return "member " + te.Field + " must be " + te.Type.String()
	}
	return "malformed"
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer // encoding/json holds the whole value before writing anyway
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
	writeJSONBytes(w, status, b.Bytes())
}

// writeJSONBytes writes b, a JSON body, with its Content-Type and Content-Length.
func writeJSONBytes(w http.ResponseWriter, status int, b []byte) error {
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(WriteStallTimeout))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, err := w.Write(b)
	return err
}
