package fleet

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sios-project/sios/identity"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fleetFixture is two institutions, A and B, with two nodes each.
type fleetFixture struct {
	rootA, rootB identity.PublicKey
	a1, a2, b1   *identity.Node
	both, onlyA  Trust
}

// newFixture makes the identities with identity.Init in a temporary directory.
func newFixture(t testing.TB) *fleetFixture {
	t.Helper()
	f, err := makeFixture(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func makeFixture(dir string) (*fleetFixture, error) {
	a1, err := identity.Init(filepath.Join(dir, "a1"), "a1", "", t0)
	if err != nil {
		return nil, err
	}
	a2, err := identity.Init(filepath.Join(dir, "a2"), "a2", a1.RootKeyFile, t0)
	if err != nil {
		return nil, err
	}
	b1, err := identity.Init(filepath.Join(dir, "b1"), "b1", "", t0)
	if err != nil {
		return nil, err
	}
	if a1.Node.Root.ID(identity.RootPrefix) != a2.Node.Root.ID(identity.RootPrefix) {
		return nil, errors.New("a1 and a2 should share a root")
	}
	f := &fleetFixture{rootA: a1.Node.Root, rootB: b1.Node.Root, a1: a1.Node, a2: a2.Node, b1: b1.Node}
	f.both = NewTrust(f.rootA, f.rootB)
	f.onlyA = NewTrust(f.rootA)
	return f, nil
}

// feedBuilder signs a node's records in order.
type feedBuilder struct {
	t    testing.TB
	node *identity.Node
	key  *identity.PrivateKey // signing key; the node's own unless a test swaps it
	recs [][]byte
}

func newFeed(t testing.TB, n *identity.Node) *feedBuilder {
	fb := &feedBuilder{t: t, node: n, key: n.Key}
	fb.add(KindIdentity, &IdentityBody{Attestation: AttestSoftware, Certificate: n.Cert})
	return fb
}

func (fb *feedBuilder) prev() []byte {
	if len(fb.recs) == 0 {
		return nil
	}
	return Hash(fb.recs[len(fb.recs)-1])
}

// next signs the next record without appending it.
func (fb *feedBuilder) next(kind string, body any) []byte {
	fb.t.Helper()
	seq := uint64(len(fb.recs))
	rec, err := NewRecord(fb.key, fb.node.ID(), seq, fb.prev(), kind, body, t0.Add(time.Duration(seq)*time.Second))
	if err != nil {
		fb.t.Fatal(err)
	}
	return rec
}

func (fb *feedBuilder) add(kind string, body any) []byte {
	rec := fb.next(kind, body)
	fb.recs = append(fb.recs, rec)
	return rec
}

// standard appends one record of every kind but withdraw.
func (fb *feedBuilder) standard() *feedBuilder {
	fb.add(KindPosture, &PostureBody{Classification: "SECRET"})
	fb.add(KindBrains, &BrainsBody{Brains: []Brain{
		{ID: "legal", Kind: "domain", Classification: "OFFICIAL"},
		{ID: "redact", Kind: "operational", Classification: "SECRET"},
	}})
	fb.add(KindLimits, &LimitsBody{RequestsPerMinute: 600})
	fb.add(KindAudit, &AuditBody{Schema: "oar/1"})
	fb.add(KindEndpoints, &EndpointsBody{API: "127.0.0.2:8080", Fleet: "127.0.0.2:7946"})
	return fb
}

func mustAdd(t testing.TB, l *Log, tr Trust, recs ...[]byte) {
	t.Helper()
	for i, r := range recs {
		if _, err := l.Add(r, tr); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
}

// replace swaps the first occurrence of old in b.
func replace(t testing.TB, b []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%q not in record", old)
	}
	return bytes.Replace(b, []byte(old), []byte(new), 1)
}

func slicesSort(s []string) { slices.Sort(s) }
