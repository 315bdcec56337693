package trace

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/oar"
)

// Ref names a record of a node's log by its record hash, with its index where known.
type Ref struct {
	RecordHash string  `json:"record_hash"`
	Index      *uint64 `json:"index,omitempty"`
}

// PartRequest asks a node for records of its log (POST PartPath).
type PartRequest struct {
	Records []Ref `json:"records"`
}

// Part is one node's part of a trace: the records asked for and the records of the same
// log they link to, each with its inclusion proof into one signed checkpoint, and the
// node's enrolment certificate (and attestation evidence, when it has it).
type Part struct {
	Node        string               `json:"node"`
	Certificate identity.Certificate `json:"certificate"`
	Evidence    []byte               `json:"evidence,omitempty"`
	Checkpoint  string               `json:"checkpoint"`
	Records     []Record             `json:"records"`
}

// Source gives the parts of other nodes' logs (FleetSource, ReplicaSource, Sources).
type Source interface {
	// Part returns node's records named by req; kind says where they came from
	// (SourcePeer, SourceReplica).
	Part(ctx context.Context, node string, req PartRequest) (p *Part, kind string, err error)
}

// Builder gathers a trace on one node.
type Builder struct {
	// Certificate is this node's enrolment certificate, Evidence its attestation
	// evidence (the bytes of DIR/node.evidence; nil when it has none).
	Certificate identity.Certificate
	Evidence    []byte
	// Log is this node's own log, at a checkpoint that covers the subject.
	Log *ledger.Reader
	// Source gives other nodes' parts (nil: none can be had).
	Source Source
	// Certificates gives the enrolment certificate of a node whose signature a record
	// holds but whose log gives no part of the trace (the fleet log's identity records).
	Certificates func(node string) (identity.Certificate, bool)
	// Options are what the trace is verified with before it is returned.
	Options Options
}

// SubjectRef names the record to trace in the builder's own log: by index, or by hash.
type SubjectRef struct {
	Index *uint64
	Hash  string
}

// ParseSubject reads a record named on the command line: a log index, or a record
// hash in 64 lowercase hex digits.
func ParseSubject(s string) (SubjectRef, error) {
	if isHash(s) {
		return SubjectRef{Hash: s}, nil
	}
	var i uint64
	if _, err := fmt.Sscan(s, &i); err != nil || fmt.Sprint(i) != s {
		return SubjectRef{}, fmt.Errorf("record %q is neither a log index nor a record hash (64 lowercase hex digits)", short(s))
	}
	return SubjectRef{Index: &i}, nil
}

// Build gathers the trace of one record of this node's log (see the package comment)
// and returns its canonical bytes after checking that it verifies: a trace is never
// handed out that would not.
func (b *Builder) Build(ctx context.Context, s SubjectRef) ([]byte, error) {
	self := b.Certificate.NodeID
	ref := Ref{RecordHash: s.Hash, Index: s.Index}
	if s.Index != nil {
		if *s.Index >= b.Log.Size() {
			return nil, fmt.Errorf("record %d is beyond this node's checkpointed log of %d entries", *s.Index, b.Log.Size())
		}
		e, err := b.Log.Entry(ctx, *s.Index)
		if err != nil {
			return nil, err
		}
		ref.RecordHash = hex.EncodeToString(oar.RecordHash(e))
	}
	own, err := gather(ctx, b.Log, []Ref{ref}, nil)
	if err != nil {
		return nil, fmt.Errorf("this node's log: %w", err)
	}
	subj := own[0]
	t := &Trace{Subject: Subject{Node: self, Index: subj.Index, RecordHash: ref.RecordHash},
		Logs:    []Log{{Node: self, Source: SourceOwn, Checkpoint: string(b.Log.Checkpoint().Raw)}},
		Records: own}
	certs := map[string]identity.Certificate{self: b.Certificate}
	evidence := map[string][]byte{self: b.Evidence}

	// Other nodes' records of their part.
	remote := map[string][]Ref{}
	for _, r := range own {
		e, _ := oar.Parse(r.Entry) // gather parsed it
		for node, refs := range remoteRefs(e.Record) {
			if node != self {
				remote[node] = append(remote[node], refs...)
			}
		}
	}
	for _, node := range sortedKeys(remote) {
		if b.Source == nil {
			return nil, fmt.Errorf("node %s's record of its part is needed, and this node can reach no peer or replica", node)
		}
		p, kind, err := b.Source.Part(ctx, node, PartRequest{Records: remote[node]})
		if err != nil {
			return nil, fmt.Errorf("node %s's record of its part: %w", node, err)
		}
		if p.Node != node || p.Certificate.NodeID != node {
			return nil, fmt.Errorf("node %s's part names node %s", node, p.Node)
		}
		t.Logs = append(t.Logs, Log{Node: node, Source: kind, Checkpoint: p.Checkpoint})
		t.Records = append(t.Records, p.Records...)
		certs[node], evidence[node] = p.Certificate, p.Evidence
	}
	// Every signer of every party, and every node of every record, with its certificate.
	for _, r := range t.Records {
		e, err := oar.Parse(r.Entry)
		if err != nil {
			return nil, fmt.Errorf("record %d of %s: %v", r.Index, r.Node, err)
		}
		for _, n := range append(Parties(e.Record), r.Node) {
			if _, ok := certs[n]; ok {
				continue
			}
			c, ok := b.certificate(n)
			if !ok {
				return nil, fmt.Errorf("record %d of %s holds a signature of node %s, whose enrolment certificate this node does not hold", r.Index, r.Node, n)
			}
			certs[n] = c
		}
	}
	roots := map[string]identity.PublicKeyJSON{}
	for _, n := range sortedKeys(certs) {
		c := certs[n]
		t.Nodes = append(t.Nodes, Node{ID: n, Certificate: c, Evidence: evidence[n]})
		roots[c.RootID] = c.Root
	}
	for _, id := range sortedKeys(roots) {
		t.Roots = append(t.Roots, Root{ID: id, Key: roots[id]})
	}
	if len(t.Records) > MaxRecords {
		return nil, fmt.Errorf("the trace would hold %d records, more than %d (MaxRecords)", len(t.Records), MaxRecords)
	}
	out, err := Encode(t)
	if err != nil {
		return nil, err
	}
	if _, err := Verify(out, b.Options); err != nil {
		return nil, fmt.Errorf("the trace gathered does not verify: %w", err)
	}
	return out, nil
}

func (b *Builder) certificate(node string) (identity.Certificate, bool) {
	if b.Certificates == nil {
		return identity.Certificate{}, false
	}
	return b.Certificates(node)
}

// remoteRefs are the records of other nodes that a record names: where a decision's
// ballots are recorded (decision.outcome), and a remote call's target's record of it
// (the reply's record in brain.complete).
func remoteRefs(rec *oar.Record) map[string][]Ref {
	out := map[string][]Ref{}
	switch rec.Action {
	case oar.ActionDecisionOutcome:
		var d struct {
			Ballots []struct {
				Node       string `json:"node"`
				Index      uint64 `json:"index"`
				RecordHash string `json:"record_hash"`
			} `json:"ballots"`
		}
		json.Unmarshal(rec.Detail, &d)
		for _, b := range d.Ballots {
			if validNodeID(b.Node) && isHash(b.RecordHash) {
				idx := b.Index
				out[b.Node] = append(out[b.Node], Ref{RecordHash: b.RecordHash, Index: &idx})
			}
		}
	case oar.ActionBrainComplete:
		for _, raw := range rec.Parties {
			if p := parseParty(raw); p.reply != nil && p.reply.Record != "" {
				out[p.reply.Responder] = append(out[p.reply.Responder], Ref{RecordHash: p.reply.Record})
			}
		}
	}
	return out
}

// ErrNotAvailable answers a request for a record the node does not hold, or that the
// requester is not a party to: the same answer for both, so that it confirms nothing.
var ErrNotAvailable = errors.New("no record with that hash that you are a party to")

// gather finds the records refs name in r's log, then the records of the same log they
// link to (transitively), each with its inclusion proof into r's checkpoint. allow, if
// set, decides which records may be given: a ref it refuses is ErrNotAvailable, a
// linked record it refuses is left out.
func gather(ctx context.Context, r *ledger.Reader, refs []Ref, allow func(*oar.Record) bool) ([]Record, error) {
	var out []Record
	have := map[string]bool{}
	var queue []Ref
	for _, ref := range refs {
		queue = append(queue, ref)
	}
	asked := len(queue)
	for k := 0; k < len(queue); k++ {
		ref := queue[k]
		if have[ref.RecordHash] {
			continue
		}
		idx, entry, err := locate(ctx, r, ref)
		if err != nil {
			if k < asked {
				return nil, err
			}
			continue // a link to another log: the builder resolves those
		}
		e, err := oar.Parse(entry)
		switch {
		case err != nil:
			return nil, fmt.Errorf("entry %d does not parse: %v", idx, err)
		case e.Record == nil:
			return nil, fmt.Errorf("entry %d is a seal, not a record: trace a record ('sios audit tail' lists them)", idx)
		}
		if allow != nil && !allow(e.Record) {
			if k < asked {
				return nil, ErrNotAvailable
			}
			continue
		}
		path, err := r.InclusionProof(ctx, idx)
		if err != nil {
			return nil, fmt.Errorf("inclusion proof of entry %d: %v", idx, err)
		}
		have[ref.RecordHash] = true
		out = append(out, Record{Node: e.Record.Node, Index: idx, Entry: entry, InclusionProof: oar.HexHashes(path)})
		if len(out) > MaxRecords {
			return nil, fmt.Errorf("more than %d records are linked (MaxRecords)", MaxRecords)
		}
		// Links to records of other logs (a decision's remote ballots) are the
		// builder's to resolve: they are not searched for here.
		elsewhere := map[string]bool{}
		for node, refs := range remoteRefs(e.Record) {
			for _, r := range refs {
				elsewhere[r.RecordHash] = node != e.Record.Node
			}
		}
		for _, l := range e.Record.Links {
			if !elsewhere[l.RecordHash] {
				queue = append(queue, Ref{RecordHash: l.RecordHash})
			}
		}
	}
	return out, nil
}

// locate finds a record by hash: at its index when given, else scanning the log from
// its newest entry back.
func locate(ctx context.Context, r *ledger.Reader, ref Ref) (uint64, []byte, error) {
	want, err := hex.DecodeString(ref.RecordHash)
	if err != nil || len(want) != 32 {
		return 0, nil, fmt.Errorf("record hash %q is not 64 hex digits", short(ref.RecordHash))
	}
	if ref.Index != nil && *ref.Index < r.Size() {
		e, err := r.Entry(ctx, *ref.Index)
		if err == nil && slices.Equal(oar.RecordHash(e), want) {
			return *ref.Index, e, nil
		}
	}
	const chunk = 256
	for end := r.Size(); end > 0; {
		from := end - min(end, chunk)
		es, err := r.Entries(ctx, from, end)
		if err != nil {
			return 0, nil, err
		}
		for i := len(es) - 1; i >= 0; i-- {
			if slices.Equal(oar.RecordHash(es[i]), want) {
				return from + uint64(i), es[i], nil
			}
		}
		end = from
	}
	return 0, nil, fmt.Errorf("%w: %.16s… is not in the log's %d checkpointed entries", ErrNotAvailable, ref.RecordHash, r.Size())
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// CertificateOf reads a node's enrolment certificate from its identity record in the
// fleet log (what a builder's Certificates can use).
func CertificateOf(l *fleet.Log, node string) (identity.Certificate, bool) {
	f, ok := l.Feed(node)
	if !ok {
		return identity.Certificate{}, false
	}
	for _, raw := range f.Records {
		r, err := fleet.Parse(raw)
		if err != nil {
			continue
		}
		if body, ok := r.Content().(*fleet.IdentityBody); ok {
			return body.Certificate, true
		}
	}
	return identity.Certificate{}, false
}
