package admin

import (
	"errors"
	"net/http"
)

// TraceRequest names the record to trace: a log index or a record hash.
type TraceRequest struct {
	Record string `json:"record"`
}

// TraceResponse holds the trace's canonical bytes (base64 in JSON, so that no JSON
// encoder along the way can change them).
type TraceResponse struct {
	Trace []byte `json:"trace"`
}

func (d Deps) traceRoutes() []route {
	return []route{{"POST /admin/audit/trace", func(r *http.Request) (any, error) {
		var req TraceRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		if d.Trace == nil {
			return nil, errors.New("this node cannot build traces")
		}
		b, err := d.Trace(r.Context(), req.Record)
		if err != nil {
			return nil, err
		}
		return TraceResponse{Trace: b}, nil
	}}}
}
