package fleet

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/internal/files"
)

// recordExt ends the name of each record file: <seq, 20 decimal digits>.json.
const recordExt = ".json"

// Publisher keeps a node's own feed: it signs the next record, writes it to its own file
// in the feed directory (atomically) and only then counts it as published, so the feed
// survives a restart. It is safe for concurrent use.
type Publisher struct {
	dir  string
	node *identity.Node

	mu   sync.Mutex
	recs [][]byte // guarded by mu
	prev []byte   // record hash of the last record; guarded by mu
}

// OpenPublisher loads the feed in dir, checking that it is a chain of records signed by
// node, or starts one with the node's identity record (attestation software).
func OpenPublisher(dir string, node *identity.Node, now time.Time) (*Publisher, error) {
	return OpenAttestedPublisher(dir, node, nil, now)
}

// OpenAttestedPublisher is OpenPublisher for a node whose keys are sealed to a TPM when
// evidence (its canonical identity/tpm.Evidence) is not nil: a new feed starts with an
// identity record of attestation tpm carrying it. An existing feed's identity record
// must state the same attestation: a node's identity record is never rewritten, and a
// node bound to a TPM has other keys, so another id, than any node that was not.
func OpenAttestedPublisher(dir string, node *identity.Node, evidence []byte, now time.Time) (*Publisher, error) {
	want := &IdentityBody{Attestation: AttestSoftware, Certificate: node.Cert}
	if evidence != nil {
		want.Attestation, want.Evidence = AttestTPM, evidence
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &Publisher{dir: dir, node: node}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, recordExt) {
			continue // temporary files of an interrupted write, and anything else
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, recordExt), 10, 64)
		if err != nil || recordFile(seq) != name {
			return nil, fmt.Errorf("feed %s: %s is not a record file (want <seq, 20 digits>%s)", dir, name, recordExt)
		}
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	for i, seq := range seqs {
		path := filepath.Join(dir, recordFile(seq))
		if seq != uint64(i) {
			return nil, fmt.Errorf("feed %s: record %d is missing (next file is %s)", dir, i, path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		r, err := Parse(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		if r.Seq != seq || r.Node != node.ID() || r.Prev != hex.EncodeToString(p.prev) {
			return nil, fmt.Errorf("%s: record does not continue the feed of node %s at seq %d", path, node.ID(), seq)
		}
		if err := r.verifySig(node.Public()); err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		if id, ok := r.content.(*IdentityBody); ok && id.Attestation != want.Attestation {
			return nil, fmt.Errorf("%s: the feed's identity record states attestation %s, but this node's is %s", path, id.Attestation, want.Attestation)
		}
		p.recs = append(p.recs, b)
		p.prev = Hash(b)
	}
	if len(p.recs) == 0 {
		if _, err := p.Publish(KindIdentity, want, now); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func recordFile(seq uint64) string { return fmt.Sprintf("%020d%s", seq, recordExt) }

// Publish signs and persists the next record of the feed and returns its bytes.
func (p *Publisher) Publish(kind string, body any, now time.Time) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	seq := uint64(len(p.recs))
	rec, err := NewRecord(p.node.Key, p.node.ID(), seq, p.prev, kind, body, now)
	if err != nil {
		return nil, err
	}
	if err := files.Replace(filepath.Join(p.dir, recordFile(seq)), rec, 0o644); err != nil {
		return nil, fmt.Errorf("feed %s: %v", p.dir, err)
	}
	p.recs = append(p.recs, rec)
	p.prev = Hash(rec)
	return bytes.Clone(rec), nil
}

// Records returns the feed from seq on.
func (p *Publisher) Records(seq uint64) [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if seq >= uint64(len(p.recs)) {
		return nil
	}
	return slices.Clone(p.recs[seq:])
}

// Next is the sequence number the next record will get.
func (p *Publisher) Next() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return uint64(len(p.recs))
}
