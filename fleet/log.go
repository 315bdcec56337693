package fleet

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/identity/tpm"
)

// Trust is the set of institution roots this node's operator has pinned, and for each
// institution the TPM endorsement keys it accepts. A feed is accepted only if its
// identity certificate was issued by one of the roots, and, when the identity says
// attestation tpm, its evidence verifies under that institution's EK policy.
type Trust struct {
	roots map[string]identity.PublicKey // by root id
	eks   map[string]tpm.Policy         // by root id
}

// WithEKPolicy returns a copy of t in which institution rootID's nodes must show an
// endorsement key that p accepts (pinned by hash, or certified by a pinned EK CA).
func (t Trust) WithEKPolicy(rootID string, p tpm.Policy) Trust {
	eks := make(map[string]tpm.Policy, len(t.eks)+1)
	maps.Copy(eks, t.eks)
	eks[rootID] = p
	return Trust{roots: t.roots, eks: eks}
}

// EKPolicy is the endorsement keys accepted from institution rootID's nodes: none
// (every TPM identity refused with tpm.ErrUnknownEK) unless the operator pinned some.
func (t Trust) EKPolicy(rootID string) tpm.Policy { return t.eks[rootID] }

// NewTrust pins the given root public keys.
func NewTrust(roots ...identity.PublicKey) Trust {
	t := Trust{roots: make(map[string]identity.PublicKey, len(roots))}
	for _, r := range roots {
		t.roots[r.ID(identity.RootPrefix)] = r
	}
	return t
}

// Has reports whether the root with this id and these keys is pinned.
func (t Trust) Has(rootID string, key identity.PublicKey) bool {
	k, ok := t.roots[rootID]
	return ok && k.Equal(key)
}

// Status says what Add did with a record.
type Status int

const (
	Applied   Status = iota + 1 // appended to its feed (Applied in AddResult counts held records it released)
	Held                        // its predecessor is missing; kept until it arrives
	Duplicate                   // already held or applied: nothing changed
	Forked                      // a second record for a (node, seq) already taken: kept as evidence, node flagged
)

func (s Status) String() string {
	switch s {
	case Applied:
		return "applied"
	case Held:
		return "held"
	case Duplicate:
		return "duplicate"
	case Forked:
		return "forked"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// AddResult reports the outcome of Add.
type AddResult struct {
	Status  Status
	Node    string
	Seq     uint64
	Applied int // records appended to feeds by this call: this one and any held ones it released
}

// Errors callers branch on. Add wraps them with the record and the reason.
var (
	ErrUntrusted = errors.New("identity does not chain to a trusted institution root")
	ErrNodeFork  = errors.New("node's feed has forked: its records are refused")
	ErrHeldFull  = errors.New("too many records held for a missing predecessor")
	// ErrAttestation: an identity record says attestation tpm and its evidence does not
	// verify; the error also wraps identity/tpm's reason (tpm.ErrUnknownEK, …).
	ErrAttestation = errors.New("TPM attestation evidence does not verify")
)

// Fork is the evidence of a forked feed: two different records, both validly signed by
// the node, with one sequence number.
type Fork struct {
	Node  string
	Seq   uint64
	First []byte // the record this log held first
	Other []byte // the conflicting one
}

// Feed is one node's verified records in order: Records[i] has seq i.
type Feed struct {
	Node    string
	Records [][]byte
	Forked  bool
}

type feed struct {
	node   string
	key    identity.PublicKey
	recs   [][]byte
	hashes [][]byte
	view   NodeView
	forked bool
	// evidence is the node's verified TPM evidence (identity attestation tpm), for
	// challenging it: verified evidence alone does not make a node attested.
	evidence *tpm.Evidence
	evident  [][]byte // conflicting records, kept as fork evidence
}

// Log is the fleet-wide log: the union of the trusted feeds. It is safe for concurrent use.
type Log struct {
	mu    sync.Mutex
	feeds map[string]*feed               // guarded by mu
	held  map[string]map[uint64][][]byte // node → seq → candidate records; guarded by mu
	nheld int                            // guarded by mu
	forks []Fork                         // guarded by mu
}

// NewLog returns an empty log.
func NewLog() *Log {
	return &Log{feeds: map[string]*feed{}, held: map[string]map[uint64][][]byte{}}
}

// Add verifies rec and adds it to its node's feed. trust is consulted when a feed's
// identity record is verified (including one released from the held records by this call).
// A record already held is a no-op (Duplicate). A record that does not verify is refused
// with an error saying why; nothing changes.
func (l *Log) Add(rec []byte, trust Trust) (AddResult, error) {
	r, err := Parse(rec)
	if err != nil {
		return AddResult{}, err
	}
	rec = bytes.Clone(rec)
	l.mu.Lock()
	defer l.mu.Unlock()
	res := AddResult{Node: r.Node, Seq: r.Seq}
	f := l.feeds[r.Node]
	if f == nil && r.Seq > 0 || f != nil && r.Seq > uint64(len(f.recs)) {
		// The predecessor is missing. Verify what can be verified now, then hold it.
		if f != nil {
			if f.forked {
				return res, fmt.Errorf("record %s: %w", r.where(), ErrNodeFork)
			}
			if err := r.verifySig(f.key); err != nil {
				return res, err
			}
		}
		if err := l.holdLocked(r, rec); err != nil {
			return res, err
		}
		res.Status = Held
		return res, nil
	}
	if f != nil && r.Seq < uint64(len(f.recs)) {
		if bytes.Equal(f.recs[r.Seq], rec) || slices.ContainsFunc(f.evident, func(e []byte) bool { return bytes.Equal(e, rec) }) {
			res.Status = Duplicate
			return res, nil
		}
		if f.forked {
			return res, fmt.Errorf("record %s: %w", r.where(), ErrNodeFork)
		}
		if err := r.verifySig(f.key); err != nil {
			return res, err
		}
		l.forkLocked(f, r.Seq, rec)
		res.Status = Forked
		return res, nil
	}
	// r is the next record of its feed (seq 0 of a new feed, or len(f.recs)).
	if err := l.applyLocked(r, rec, trust); err != nil {
		return res, err
	}
	res.Status, res.Applied = Applied, 1+l.releaseLocked(r.Node, trust)
	return res, nil
}

// applyLocked verifies r as the next record of its feed and appends it.
func (l *Log) applyLocked(r *Record, rec []byte, trust Trust) error {
	f := l.feeds[r.Node]
	if f == nil {
		id := r.content.(*IdentityBody) // Parse: seq 0 is an identity record
		nodeKey, rootKey, err := id.Certificate.Verify()
		if err != nil {
			return fmt.Errorf("record %s: %v", r.where(), err)
		}
		if !trust.Has(id.Certificate.RootID, rootKey) {
			return fmt.Errorf("record %s: root %s: %w", r.where(), id.Certificate.RootID, ErrUntrusted)
		}
		if err := r.verifySig(nodeKey); err != nil {
			return err
		}
		f = &feed{node: r.Node, key: nodeKey}
		f.view = NodeView{Node: r.Node, Name: id.Certificate.Name, Institution: id.Certificate.RootID, Attestation: id.Attestation}
		if id.Attestation == AttestTPM {
			// Checked after the record's signature, so that only the node itself can
			// get a refusal of its evidence recorded.
			v, err := tpm.Verify(id.evidence, r.Node, nodeKey, trust.EKPolicy(id.Certificate.RootID))
			if err != nil {
				return fmt.Errorf("record %s: %w: %w", r.where(), ErrAttestation, err)
			}
			f.evidence, f.view.EKSHA256 = id.evidence, v.EKSHA256
		}
		l.feeds[r.Node] = f
	} else {
		if f.forked {
			return fmt.Errorf("record %s: %w", r.where(), ErrNodeFork)
		}
		if err := r.verifySig(f.key); err != nil {
			return err
		}
		if want := hex.EncodeToString(f.hashes[r.Seq-1]); r.Prev != want {
			return fmt.Errorf("record %s: prev %s is not the hash of seq %d (%s)", r.where(), r.Prev, r.Seq-1, want)
		}
	}
	f.recs = append(f.recs, rec)
	f.hashes = append(f.hashes, Hash(rec))
	f.view.apply(r)
	return nil
}

func (l *Log) holdLocked(r *Record, rec []byte) error {
	byseq := l.held[r.Node]
	for _, h := range byseq[r.Seq] {
		if bytes.Equal(h, rec) {
			return nil
		}
	}
	n := 0
	for _, c := range byseq {
		n += len(c)
	}
	if n >= MaxHeldPerNode {
		return fmt.Errorf("record %s: %d records held for this node (MaxHeldPerNode): %w", r.where(), n, ErrHeldFull)
	}
	if l.nheld >= MaxHeld {
		return fmt.Errorf("record %s: %d records held (MaxHeld): %w", r.where(), l.nheld, ErrHeldFull)
	}
	if byseq == nil {
		byseq = map[uint64][][]byte{}
		l.held[r.Node] = byseq
	}
	byseq[r.Seq] = append(byseq[r.Seq], rec)
	l.nheld++
	return nil
}

// releaseLocked applies held records of node that now follow its feed, and returns
// how many were applied. Held records that do not verify are dropped; a second valid
// candidate for one seq is a fork.
func (l *Log) releaseLocked(node string, trust Trust) int {
	n := 0
	for {
		f := l.feeds[node]
		byseq := l.held[node]
		if f == nil || byseq == nil {
			return n
		}
		seq := uint64(len(f.recs))
		cands := byseq[seq]
		if cands == nil {
			if f.forked {
				l.dropHeldLocked(node)
			}
			return n
		}
		delete(byseq, seq)
		l.nheld -= len(cands)
		if len(byseq) == 0 {
			delete(l.held, node)
		}
		applied := false
		for _, rec := range cands {
			r, err := Parse(rec)
			if err != nil {
				continue
			}
			if !applied {
				if l.applyLocked(r, rec, trust) == nil {
					applied = true
					n++
				}
				continue
			}
			if !f.forked && r.verifySig(f.key) == nil {
				l.forkLocked(f, seq, rec)
			}
		}
		if !applied {
			return n
		}
	}
}

func (l *Log) dropHeldLocked(node string) {
	for _, c := range l.held[node] {
		l.nheld -= len(c)
	}
	delete(l.held, node)
}

func (l *Log) forkLocked(f *feed, seq uint64, other []byte) {
	f.forked = true
	f.view.Forked = true
	f.evident = append(f.evident, other)
	l.forks = append(l.forks, Fork{Node: f.node, Seq: seq, First: f.recs[seq], Other: other})
	l.dropHeldLocked(f.node)
}

// Forks returns the evidence of every fork seen, in the order seen.
func (l *Log) Forks() []Fork {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.forks)
}

// Feed returns node's verified records in order.
func (l *Log) Feed(node string) (Feed, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.feeds[node]
	if f == nil {
		return Feed{}, false
	}
	return Feed{Node: node, Records: slices.Clone(f.recs), Forked: f.forked}, true
}

// Since returns node's records from seq on, at most MaxSinceBatch of them.
func (l *Log) Since(node string, seq uint64) [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.feeds[node]
	if f == nil || seq >= uint64(len(f.recs)) {
		return nil
	}
	return slices.Clone(f.recs[seq:min(uint64(len(f.recs)), seq+MaxSinceBatch)])
}

// Head is the tip of one feed in a Digest.
type Head struct {
	Seq    uint64 `json:"seq"`  // highest sequence number applied; the feed has Seq+1 records
	Hash   string `json:"hash"` // hex record hash of that record
	Forked bool   `json:"forked,omitempty"`
}

// Digest maps node id to the head of its feed: enough for two nodes to find what the
// other lacks (Missing).
type Digest map[string]Head

// Digest summarises the log.
func (l *Log) Digest() Digest {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := make(Digest, len(l.feeds))
	for id, f := range l.feeds {
		n := len(f.recs) - 1
		d[id] = Head{Seq: uint64(n), Hash: hex.EncodeToString(f.hashes[n]), Forked: f.forked}
	}
	return d
}

// Missing returns the records this log holds that a peer with digest other lacks:
// whole feeds it does not know (from seq 0) and the records after its head, at most
// MaxSinceBatch per feed. When the peer's head differs from this log's record at the same
// seq, that record is sent too, so that the peer detects the fork; and both records of
// every fork the peer has not flagged are sent as evidence.
func (l *Log) Missing(other Digest) [][]byte {
	var out [][]byte
	for _, id := range slices.Sorted(maps.Keys(l.Digest())) {
		h, ok := other[id]
		if !ok {
			out = append(out, l.Since(id, 0)...)
			continue
		}
		recs := l.Since(id, h.Seq)
		if len(recs) > 0 && hex.EncodeToString(Hash(recs[0])) == h.Hash {
			recs = recs[1:] // the peer holds this one
		}
		out = append(out, recs...)
		if !h.Forked {
			for _, fk := range l.Forks() {
				if fk.Node == id {
					out = append(out, fk.First, fk.Other)
				}
			}
		}
	}
	return out
}
