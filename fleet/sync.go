package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/jcs"
)

// Anti-entropy over the fleet API: POST /fleet/v1/sync with this node's digest and any
// records the peer lacks; the answer holds the records this node lacks and the peer's
// digest. Two exchanges at most bring both logs to the union of what they hold.

type syncMsg struct {
	Node    string            `json:"node"`
	Addr    string            `json:"addr"`
	Digest  Digest            `json:"digest"`
	Records []json.RawMessage `json:"records,omitempty"`
}

// withinSync is the first of recs that fit in half of MaxSyncSize, leaving the other
// half to the digest, so that a request or an answer stays within what the other side
// reads; the rest goes in a later round.
func withinSync(recs [][]byte) [][]byte {
	size := 0
	for i, rec := range recs {
		if size += len(rec) + 1; size > MaxSyncSize/2 {
			return recs[:i]
		}
	}
	return recs
}

// parseSync reads an anti-entropy request or answer strictly (jcs.DecodeStrict): a
// repeated, differently cased or unknown member is refused, naming it. Its records are
// checked one by one by the log.
func parseSync(b []byte) (*syncMsg, error) {
	if len(b) > MaxSyncSize {
		return nil, fmt.Errorf("%d bytes, more than %d (MaxSyncSize)", len(b), MaxSyncSize)
	}
	var m syncMsg
	if err := jcs.DecodeStrict(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Marshal encodes v as JSON without escaping <, > and &: records, envelopes and
// replies embedded as json.RawMessage must keep their canonical bytes, which
// encoding/json's default HTML escaping would change.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// syncWith exchanges records with the peer at addr (node "" accepts any trusted peer).
func (f *Fleet) syncWith(ctx context.Context, node, addr string) error {
	if addr == "" {
		return errors.New("no address")
	}
	for round := 0; round < 8; round++ {
		var push [][]byte
		if round > 0 {
			// The peer's digest came back last round: send what it lacks.
			push = f.cfg.Log.Missing(f.lastDigest(node, addr))
		}
		got, err := f.syncOnce(ctx, node, addr, push)
		if err != nil {
			return err
		}
		applied, _, _ := f.addRecords(rawList(got.Records))
		f.rememberDigest(node, addr, got.Digest)
		if len(f.cfg.Log.Missing(got.Digest)) == 0 && (applied == 0 || !f.lacks(got.Digest)) {
			return nil
		}
	}
	return nil
}

func (f *Fleet) syncOnce(ctx context.Context, node, addr string, push [][]byte) (*syncMsg, error) {
	req := syncMsg{Node: f.ID(), Addr: f.Addr(), Digest: f.cfg.Log.Digest()}
	for _, r := range withinSync(push) {
		req.Records = append(req.Records, r)
	}
	body, err := Marshal(req)
	if err != nil {
		return nil, err
	}
	resp, err := f.Post(ctx, node, addr, "/fleet/v1/sync", body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxSyncSize+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("peer answered %d: %s", resp.StatusCode, short(string(bytes.TrimSpace(b))))
	}
	if len(b) > MaxSyncSize {
		return nil, fmt.Errorf("sync answer is more than %d bytes (MaxSyncSize)", MaxSyncSize)
	}
	got, err := parseSync(b)
	if err != nil {
		return nil, fmt.Errorf("sync answer from %s: %v", addr, err)
	}
	return got, nil
}

// The last digest each peer sent, so that the next round pushes what it lacks.
func (f *Fleet) lastDigest(node, addr string) Digest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.digests[node+"@"+addr]
}

func (f *Fleet) rememberDigest(node, addr string, d Digest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.digests == nil || len(f.digests) > 4096 {
		f.digests = map[string]Digest{}
	}
	f.digests[node+"@"+addr] = d
}

func rawList(rs []json.RawMessage) [][]byte {
	out := make([][]byte, len(rs))
	for i, r := range rs {
		out[i] = r
	}
	return out
}

// handleSync answers a peer's sync: it adds the records pushed (each verified by the
// log) and returns what the peer's digest lacks.
func (f *Fleet) handleSync(w http.ResponseWriter, r *http.Request) {
	peer, err := f.PeerOf(r)
	if err != nil {
		http.Error(w, "peer identity: "+err.Error(), http.StatusForbidden)
		return
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxSyncSize+1))
	if err != nil {
		return
	}
	if len(b) > MaxSyncSize {
		http.Error(w, fmt.Sprintf("sync request is more than %d bytes (MaxSyncSize)", MaxSyncSize), http.StatusRequestEntityTooLarge)
		return
	}
	req, err := parseSync(b)
	if err != nil {
		http.Error(w, "sync request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if req.Node != peer.NodeID {
		http.Error(w, fmt.Sprintf("sync request names node %s but the connection is from %s", short(req.Node), peer.NodeID), http.StatusForbidden)
		return
	}
	if _, _, errs := f.addRecords(rawList(req.Records)); len(errs) > 0 {
		f.log.Debug("fleet sync: records refused", "peer", peer.NodeID, "count", len(errs), "first", errs[0])
	}
	if req.Addr != "" {
		if _, _, err := net.SplitHostPort(req.Addr); err == nil {
			f.rememberDigest(req.Node, req.Addr, req.Digest)
		}
	}
	resp := syncMsg{Node: f.ID(), Addr: f.Addr(), Digest: f.cfg.Log.Digest()}
	for _, rec := range withinSync(f.cfg.Log.Missing(req.Digest)) {
		resp.Records = append(resp.Records, rec)
	}
	out, err := Marshal(resp)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(out)
}

// PeerOf returns the verified enrolment certificate of the peer that made r.
func (f *Fleet) PeerOf(r *http.Request) (*identity.Certificate, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, errors.New("no client certificate")
	}
	return f.verifier.Peer(*r.TLS)
}

// Post sends body to path on the peer (node "" accepts any trusted peer) over the
// fleet's mutual TLS and returns the answer; the caller closes its body.
func (f *Fleet) Post(ctx context.Context, node, addr, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return f.client(node, addr).Do(req)
}

// Get fetches path from the peer over the fleet's mutual TLS; the caller closes the
// answer's body.
func (f *Fleet) Get(ctx context.Context, node, addr, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+path, nil)
	if err != nil {
		return nil, err
	}
	return f.client(node, addr).Do(req)
}

// Peer returns what this node knows of one peer.
func (f *Fleet) Peer(node string) (Peer, bool) {
	for _, p := range f.Peers() {
		if p.NodeID == node {
			return p, true
		}
	}
	return Peer{}, false
}

// client returns the HTTP client for one peer: connections are kept and reused.
func (f *Fleet) client(node, addr string) *http.Client {
	key := node + "@" + addr
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.clients[key]; ok {
		return c
	}
	if len(f.clients) >= 4096 {
		for _, c := range f.clients {
			c.CloseIdleConnections()
		}
		clear(f.clients)
	}
	c := &http.Client{Transport: &http.Transport{
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return f.tr.DialHTTP(ctx, node, addr)
		},
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}}
	f.clients[key] = c
	return c
}
