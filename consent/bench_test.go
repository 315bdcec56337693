package consent

import (
	"testing"
	"time"
)

// BenchmarkUse is one durable use at the origin: the grant's file read, checked and
// verified under the lock, and written back with two fsyncs (file and directory).
func BenchmarkUse(b *testing.B) {
	fx := newFixture()
	s := openStore(b, fx, b.TempDir())
	e := addGrant(b, fx, s, fx.memoryGrant())
	for b.Loop() {
		if _, err := s.Use(e.Grant.ID, t0.Add(time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify is what a target spends on a grant it receives.
func BenchmarkVerify(b *testing.B) {
	fx := newFixture()
	raw := mustSign(b, fx.hospital.node, fx.invokeGrant())
	u := fx.invokeUse()
	for b.Loop() {
		g, err := Parse(raw)
		if err != nil {
			b.Fatal(err)
		}
		if err := Verify(g, fx.hospital.signer(), u); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFind is the origin choosing a grant for a request among 1,000 held.
func BenchmarkFind(b *testing.B) {
	fx := newFixture()
	s := openStore(b, fx, b.TempDir())
	for range 999 {
		g := fx.memoryGrant()
		g.ID = NewID()
		addGrant(b, fx, s, g)
	}
	addGrant(b, fx, s, fx.invokeGrant())
	u := fx.invokeUse()
	for b.Loop() {
		if _, err := s.Find("dr.adeyemi", u); err != nil {
			b.Fatal(err)
		}
	}
}
