package admin

import (
	"bytes"
	"fmt"
	"net/http"
	"runtime/pprof"
	"strconv"
	"time"
)

// MaxProfileSeconds bounds one CPU profile taken through the admin socket.
const MaxProfileSeconds = 300

// raw is an answer that is not JSON: its bytes are written as they are.
type raw struct {
	contentType string
	body        []byte
}

// profile is GET /admin/debug/profile?seconds=N: a CPU profile of the running node over
// the next N seconds (default 10), in pprof's format — for the operator, and for
// 'sios bench gateway --cpuprofile', which profiles the node under load.
func (d Deps) profile(r *http.Request) (any, error) {
	secs := 10
	if s := r.URL.Query().Get("seconds"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxProfileSeconds {
			return nil, fmt.Errorf("%w: seconds=%q: want 1 to %d (MaxProfileSeconds)", errBadRequest, s, MaxProfileSeconds)
		}
		secs = n
	}
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		return nil, fmt.Errorf("%w: %v (one profile at a time)", errConflict, err)
	}
	select {
	case <-time.After(time.Duration(secs) * time.Second):
	case <-r.Context().Done():
	}
	pprof.StopCPUProfile()
	return raw{contentType: "application/octet-stream", body: buf.Bytes()}, nil
}
