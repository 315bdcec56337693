// Package trace is the trail of one audited action across machines (trace/1): a
// record of this node — a decision's outcome, a remote brain call, any record — with
// everything needed to check it offline, by anyone, with nothing else: the record and
// the records it links to, each with an RFC 6962 inclusion proof into a signed
// checkpoint of its own node's log; for every other node involved, that node's own
// record of its part, proven into a signed checkpoint of its log; every party's signed
// bytes (they are inside the records); each node's enrolment certificate and, where a
// node has it, its hardware attestation evidence; and the institution roots that
// enrolled them.
//
// Build gathers a trace from this node's log and from each other node — over the fleet
// API, served only to a node that is a party to the record asked for, or from a local
// replica of that node's log (Source). Verify checks a trace: every signature, every
// inclusion proof, every cross-reference (call and decision hashes, output digests,
// ballots and the records that hold them), and that every identity chains to a root
// the trace names; it returns the chain — who contributed what, under which policy,
// recorded where — or an error naming the first part that does not hold.
//
// The format is canonical JSON (RFC 8785) with exactly its own members, read strictly;
// it is published in docs/trace.md with a test vector in testdata/.
package trace

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/jcs"
)

// Version is the "v" of a trace.
const Version = "trace/1"

// Caps on a trace, the same when it is written and when it is read; errors name them.
const (
	// MaxTraceSize is the largest trace file in bytes.
	MaxTraceSize = 8 << 20
	// MaxRecords is the most records a trace holds.
	MaxRecords = 64
	// MaxNodes is the most nodes (and logs, and roots) a trace names.
	MaxNodes = 16
	// MaxProofLen is the longest inclusion proof: a log of 2^63 entries.
	MaxProofLen = 63
	// MaxEvidenceSize is the largest attestation evidence of one node, in bytes.
	MaxEvidenceSize = 64 << 10
	// MaxCheckpointSize is the largest checkpoint note (ledger.MaxCheckpointSize).
	MaxCheckpointSize = 64 << 10
)

// Where a log's copy came from. Only append to this list.
const (
	SourceOwn     = "own"     // the node that built the trace, its own log
	SourcePeer    = "peer"    // the node itself, over the fleet API
	SourceReplica = "replica" // a replica of the node's log kept by the node that built the trace
)

var sources = []string{SourceOwn, SourcePeer, SourceReplica}

// Trace is a trace/1 document.
type Trace struct {
	V       string   `json:"v"`
	Subject Subject  `json:"subject"`
	Roots   []Root   `json:"roots"`
	Nodes   []Node   `json:"nodes"`
	Logs    []Log    `json:"logs"`
	Records []Record `json:"records"`
}

// Subject names the record the trace is of.
type Subject struct {
	Node       string `json:"node"`
	Index      uint64 `json:"index"`
	RecordHash string `json:"record_hash"`
}

// Root is an institution root the trace names: every node's certificate must be
// signed by one of them. A verifier compares them with the roots it trusts.
type Root struct {
	ID  string                 `json:"root_id"`
	Key identity.PublicKeyJSON `json:"key"`
}

// Node is one node involved: its enrolment certificate and, when the node has it, its
// hardware attestation evidence (the bytes of its DIR/node.evidence).
type Node struct {
	ID          string               `json:"node"`
	Certificate identity.Certificate `json:"certificate"`
	Evidence    []byte               `json:"evidence,omitempty"`
}

// Log is the signed checkpoint of one node's log that its records are proven into.
type Log struct {
	Node       string `json:"node"`
	Source     string `json:"source"` // SourceOwn, SourcePeer or SourceReplica
	Checkpoint string `json:"checkpoint"`
}

// Record is one log entry with its inclusion proof into its node's checkpoint.
type Record struct {
	Node           string   `json:"node"`
	Index          uint64   `json:"index"`
	Entry          []byte   `json:"entry"`           // the entry exactly as logged
	InclusionProof []string `json:"inclusion_proof"` // hex hashes, RFC 6962
}

// Encode checks a trace's form and returns its canonical bytes.
func Encode(t *Trace) ([]byte, error) {
	c := *t
	c.V = Version
	if err := c.validate(); err != nil {
		return nil, err
	}
	b, err := jcs.Marshal(&c)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxTraceSize {
		return nil, fmt.Errorf("trace is %d bytes, more than %d (MaxTraceSize)", len(b), MaxTraceSize)
	}
	return b, nil
}

// Parse reads a trace strictly: at most MaxTraceSize bytes of canonical JSON with
// exactly the members of trace/1, every member of the right form. It checks the form
// only; Verify checks everything else.
func Parse(b []byte) (*Trace, error) {
	if len(b) > MaxTraceSize {
		return nil, fmt.Errorf("trace is %d bytes, more than %d (MaxTraceSize)", len(b), MaxTraceSize)
	}
	var t Trace
	err := jcs.Unmarshal(b, &t)
	switch {
	case errors.Is(err, jcs.ErrNotCanonical):
		return nil, fmt.Errorf("trace is not in canonical form (RFC 8785): %v", err)
	case errors.Is(err, jcs.ErrNotExact):
		if verr := t.validate(); verr != nil {
			return nil, verr
		}
		return nil, fmt.Errorf("trace holds members that are not part of %s (unknown, misspelt, missing or spelt another way): %v", Version, err)
	case err != nil:
		return nil, fmt.Errorf("trace: %v", err)
	}
	if err := t.validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

func (t *Trace) validate() error {
	if t.V != Version {
		return fmt.Errorf("trace v is %q, want %q", short(t.V), Version)
	}
	if !validNodeID(t.Subject.Node) || !isHash(t.Subject.RecordHash) {
		return errors.New("subject: node must be a node id and record_hash 64 lowercase hex digits")
	}
	for _, c := range []struct {
		name string
		n    int
	}{{"roots", len(t.Roots)}, {"nodes", len(t.Nodes)}, {"logs", len(t.Logs)}} {
		if c.n == 0 || c.n > MaxNodes {
			return fmt.Errorf("%s: %d given; a trace names 1 to %d (MaxNodes)", c.name, c.n, MaxNodes)
		}
	}
	if n := len(t.Records); n == 0 || n > MaxRecords {
		return fmt.Errorf("records: %d given; a trace holds 1 to %d (MaxRecords)", n, MaxRecords)
	}
	seen := map[string]bool{}
	for i, r := range t.Roots {
		if !strings.HasPrefix(r.ID, identity.RootPrefix+"_") || seen["root "+r.ID] {
			return fmt.Errorf("roots[%d]: %q is not a root id, or is named twice", i, short(r.ID))
		}
		seen["root "+r.ID] = true
	}
	for i, n := range t.Nodes {
		if !validNodeID(n.ID) || seen["node "+n.ID] {
			return fmt.Errorf("nodes[%d]: %q is not a node id, or is named twice", i, short(n.ID))
		}
		seen["node "+n.ID] = true
		if len(n.Evidence) > MaxEvidenceSize {
			return fmt.Errorf("nodes[%d] (%s): evidence is %d bytes, more than %d (MaxEvidenceSize)", i, n.ID, len(n.Evidence), MaxEvidenceSize)
		}
	}
	for i, l := range t.Logs {
		if !validNodeID(l.Node) || seen["log "+l.Node] {
			return fmt.Errorf("logs[%d]: %q is not a node id, or its log is given twice", i, short(l.Node))
		}
		seen["log "+l.Node] = true
		if !slices.Contains(sources, l.Source) {
			return fmt.Errorf("logs[%d] (%s): source %q is not one of %s", i, l.Node, short(l.Source), strings.Join(sources, ", "))
		}
		if l.Checkpoint == "" || len(l.Checkpoint) > MaxCheckpointSize {
			return fmt.Errorf("logs[%d] (%s): checkpoint must be 1 to %d bytes (MaxCheckpointSize)", i, l.Node, MaxCheckpointSize)
		}
	}
	for i, r := range t.Records {
		if !validNodeID(r.Node) {
			return fmt.Errorf("records[%d]: node %q is not a node id", i, short(r.Node))
		}
		k := fmt.Sprintf("record %s %d", r.Node, r.Index)
		if seen[k] {
			return fmt.Errorf("records[%d]: record %d of %s is given twice", i, r.Index, r.Node)
		}
		seen[k] = true
		if len(r.Entry) == 0 {
			return fmt.Errorf("records[%d]: entry is empty", i)
		}
		if len(r.InclusionProof) > MaxProofLen {
			return fmt.Errorf("records[%d]: inclusion_proof has %d hashes, more than %d (MaxProofLen)", i, len(r.InclusionProof), MaxProofLen)
		}
		for j, h := range r.InclusionProof {
			if !isHash(h) {
				return fmt.Errorf("records[%d]: inclusion_proof[%d] is not 64 lowercase hex digits", i, j)
			}
		}
	}
	return nil
}

func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// validNodeID accepts what identity.PublicKey.ID makes with identity.NodePrefix.
func validNodeID(s string) bool {
	rest, ok := strings.CutPrefix(s, identity.NodePrefix+"_")
	return ok && len(rest) == 26 && strings.Trim(rest, "abcdefghijklmnopqrstuvwxyz234567") == ""
}

// short keeps outside text in errors readable.
func short(s string) string {
	if len(s) > 64 {
		return strings.ToValidUTF8(s[:64], "") + "…"
	}
	return s
}
