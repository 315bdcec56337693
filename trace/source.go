package trace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/oar"
)

// PartPath is where a node serves its parts of other nodes' traces (POST, fleet API).
const PartPath = "/fleet/v1/audit/trace"

// EvidenceFile is the name, in a data directory, of the node's hardware attestation
// evidence, which a trace carries when the node has it.
const EvidenceFile = "node.evidence"

// PartWait bounds how long a node waits for its checkpoint to cover records it has
// just written before it answers for them.
const PartWait = 10 * time.Second

// ReadEvidence reads DIR/node.evidence: nil when the node has none.
func ReadEvidence(dataDir string) ([]byte, error) {
	f, err := os.Open(filepath.Join(dataDir, EvidenceFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxEvidenceSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxEvidenceSize {
		return nil, fmt.Errorf("%s is more than %d bytes (MaxEvidenceSize)", filepath.Join(dataDir, EvidenceFile), MaxEvidenceSize)
	}
	return b, nil
}

// Server answers other nodes' requests for their parts of a trace from this node's
// log: a record is given only to a node whose signed bytes it holds (Parties), with
// the records of this log it links to that the same node is a party to.
type Server struct {
	Identity *identity.Node
	DataDir  string
	// OpenLog opens this node's log at its latest checkpoint.
	OpenLog func() (*ledger.Reader, error)
	// Size is the number of entries this node has written (ledger.Ledger.Size): the
	// checkpoint is waited for until it covers them.
	Size func() uint64
}

// Part answers requester's request.
func (s *Server) Part(ctx context.Context, requester string, req PartRequest) (*Part, error) {
	if err := checkRequest(req); err != nil {
		return nil, err
	}
	if requester == s.Identity.ID() {
		return nil, ErrNotAvailable
	}
	allow := func(rec *oar.Record) bool { return slices.Contains(Parties(rec), requester) }
	r, err := s.covering(ctx)
	if err != nil {
		return nil, err
	}
	recs, err := gather(ctx, r, req.Records, allow)
	if err != nil {
		return nil, err
	}
	ev, err := ReadEvidence(s.DataDir)
	if err != nil {
		return nil, err
	}
	return &Part{Node: s.Identity.ID(), Certificate: s.Identity.Cert, Evidence: ev, Checkpoint: string(r.Checkpoint().Raw), Records: recs}, nil
}

// covering opens the log at a checkpoint that covers every entry written so far.
func (s *Server) covering(ctx context.Context) (*ledger.Reader, error) {
	return OpenCovering(ctx, s.OpenLog, s.Size())
}

// OpenCovering opens a node's own log at a checkpoint of at least size entries,
// waiting up to PartWait for the node to publish one; past that, at the checkpoint
// there is.
func OpenCovering(ctx context.Context, open func() (*ledger.Reader, error), size uint64) (*ledger.Reader, error) {
	deadline := time.Now().Add(PartWait)
	for {
		r, err := open()
		if err == nil && r.Size() >= size {
			return r, nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return nil, err
			}
			return r, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func checkRequest(req PartRequest) error {
	if n := len(req.Records); n == 0 || n > MaxRecords {
		return fmt.Errorf("a part request names 1 to %d records (MaxRecords), not %d", MaxRecords, n)
	}
	for i, r := range req.Records {
		if !isHash(r.RecordHash) {
			return fmt.Errorf("records[%d]: record_hash is not 64 lowercase hex digits", i)
		}
	}
	return nil
}

// MaxPartRequest bounds a peer's request for parts of a trace, read and parsed alike.
const MaxPartRequest = 16 << 10

// ParsePartRequest reads a part request strictly: at most 16 KiB of JSON with exactly
// its members, 1 to MaxRecords record hashes.
func ParsePartRequest(b []byte) (PartRequest, error) {
	var req PartRequest
	if len(b) > MaxPartRequest {
		return req, fmt.Errorf("a part request is at most %d bytes (MaxPartRequest)", MaxPartRequest)
	}
	// jcs.DecodeStrict: a peer's unknown, differently cased or repeated member is
	// refused naming it.
	if err := jcs.DecodeStrict(b, &req); err != nil {
		return req, fmt.Errorf("a part request is {\"records\": [{\"record_hash\", \"index\"?}]}: %s", oar.Bounded(strings.TrimPrefix(err.Error(), "jcs: "), 300))
	}
	return req, checkRequest(req)
}

// Fleet is what FleetSource needs of the fleet (fleet.Fleet).
type Fleet interface {
	Peer(node string) (fleet.Peer, bool)
	Post(ctx context.Context, node, addr, path string, body []byte) (*http.Response, error)
}

// FleetSource asks the node itself, over the fleet API's mutual TLS.
type FleetSource struct{ Fleet Fleet }

// Part implements Source.
func (f FleetSource) Part(ctx context.Context, node string, req PartRequest) (*Part, string, error) {
	if f.Fleet == nil {
		return nil, "", errors.New("this node is not in a fleet")
	}
	peer, ok := f.Fleet.Peer(node)
	if !ok || peer.Addr == "" {
		return nil, "", fmt.Errorf("%s is not a peer this node can reach", node)
	}
	if peer.State == fleet.StateDead {
		return nil, "", fmt.Errorf("%s is dead", node)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, PartWait+10*time.Second)
	defer cancel()
	resp, err := f.Fleet.Post(ctx, node, peer.Addr, PartPath, body)
	if err != nil {
		return nil, "", fmt.Errorf("%s could not be reached: %v", node, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxTraceSize+1))
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("%s answered %d: %s", node, resp.StatusCode, short(strings.TrimSpace(string(raw))))
	}
	if len(raw) > MaxTraceSize {
		return nil, "", fmt.Errorf("%s's answer is more than %d bytes (MaxTraceSize)", node, MaxTraceSize)
	}
	// Strictly (jcs.DecodeStrict): a peer's answer with an unknown, differently cased
	// or repeated member is refused naming it.
	var p Part
	if err := jcs.DecodeStrict(raw, &p); err != nil {
		return nil, "", fmt.Errorf("%s's answer is not a part of a trace: %s", node, oar.Bounded(strings.TrimPrefix(err.Error(), "jcs: "), 300))
	}
	return &p, SourcePeer, nil
}

// ReplicaSource reads the copy of a node's log that this node keeps as its replica
// (DIR/replicas/NODEID, package replication).
type ReplicaSource struct {
	Dir string // DIR/replicas
	// Certificate gives the node's enrolment certificate (from the fleet log).
	Certificate func(node string) (identity.Certificate, bool)
}

// Part implements Source.
func (s ReplicaSource) Part(ctx context.Context, node string, req PartRequest) (*Part, string, error) {
	if err := checkRequest(req); err != nil {
		return nil, "", err
	}
	cert, ok := s.Certificate(node)
	if !ok {
		return nil, "", fmt.Errorf("no enrolment certificate of %s is known", node)
	}
	pub, _, err := cert.Verify()
	if err != nil {
		return nil, "", fmt.Errorf("%s's enrolment certificate: %v", node, err)
	}
	dir := filepath.Join(s.Dir, node)
	if _, err := os.Stat(dir); err != nil {
		return nil, "", fmt.Errorf("this node keeps no replica of %s's log", node)
	}
	r, err := ledger.OpenReplicaReader(dir, node, pub)
	if err != nil {
		return nil, "", fmt.Errorf("the replica of %s's log: %v", node, err)
	}
	recs, err := gather(ctx, r, req.Records, nil)
	if err != nil {
		return nil, "", fmt.Errorf("the replica of %s's log: %w", node, err)
	}
	return &Part{Node: node, Certificate: cert, Checkpoint: string(r.Checkpoint().Raw), Records: recs}, SourceReplica, nil
}

// Sources tries each source in turn: the first that gives the part wins.
type Sources []Source

// Part implements Source.
func (ss Sources) Part(ctx context.Context, node string, req PartRequest) (*Part, string, error) {
	var errs []string
	for _, s := range ss {
		p, kind, err := s.Part(ctx, node, req)
		if err == nil {
			return p, kind, nil
		}
		errs = append(errs, err.Error())
	}
	if len(errs) == 0 {
		return nil, "", errors.New("no source of other nodes' logs")
	}
	return nil, "", errors.New(strings.Join(errs, "; "))
}
