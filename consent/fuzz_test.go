package consent

import (
	"bytes"
	"testing"

	"github.com/sios-project/sios/policy"
)

// fuzzSeeds are grants of every shape: both actions, every optional member present and
// absent, and bytes one edit away from a grant.
func fuzzSeeds(f *testing.F, fx *fixture) [][]byte {
	inv := fx.invokeGrant()
	mem := fx.memoryGrant()
	bare := fx.invokeGrant()
	bare.Audience.Node, bare.Uses, bare.Retain = "", 0, true
	bare.Purpose = "care \"quoted\" \\ é € 😀"
	bare.Issued, bare.Expires = "2026-03-02T09:00:00.5Z", "2026-03-02T09:00:01Z"
	full := fx.memoryGrant()
	full.Audience.Node, full.Uses, full.Scope.Max = fx.practice.nodeID, MaxUses, policy.TopSecret
	var out [][]byte
	for _, g := range []Grant{inv, mem, bare, full} {
		out = append(out, mustSign(f, fx.hospital.node, g))
	}
	out = append(out, unsigned(f, inv), []byte(`{"v":"consent-grant/1"}`), []byte(`{}`))
	return out
}

// FuzzParseGrant: whatever Parse accepts re-encodes to exactly its input, and Verify,
// Check, CedarAttrs and the release rule never panic on it.
func FuzzParseGrant(f *testing.F) {
	fx := newFixture()
	for _, b := range fuzzSeeds(f, fx) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := Parse(b)
		if err != nil {
			if CodeOf(err) != CodeMalformed {
				t.Fatalf("Parse refused with %v, not %s", err, CodeMalformed)
			}
			return
		}
		again, err := g.Encode()
		if err != nil {
			t.Fatalf("accepted grant does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("parse-then-encode changed the grant:\n%s\n%s", b, again)
		}
		Verify(g, fx.hospital.signer(), fx.invokeUse())
		g.Check(fx.memoryUse())
		g.CedarAttrs()
		if max, err := ReleaseMax(g, policy.Secret, policy.Secret, policy.Secret); err == nil {
			Releasable(g, max, []Item{{Tenant: g.Grantor.Tenant, Subject: "case-1187", Classification: policy.Official}}, func(i Item) Item { return i })
		}
	})
}

// FuzzParseState: whatever ParseState accepts re-encodes to exactly its input.
func FuzzParseState(f *testing.F) {
	fx := newFixture()
	for i, b := range fuzzSeeds(f, fx)[:4] {
		e := &Entry{Grant: mustParse(f, b), Raw: b, Used: i}
		if i%2 == 1 {
			e.Revoked = t0
		}
		sb, err := EncodeState(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sb)
	}
	f.Add([]byte(`{"grant":{},"used":0,"v":"consent-state/1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseState(b)
		if err != nil {
			return
		}
		again, err := EncodeState(e)
		if err != nil {
			t.Fatalf("accepted store file does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("parse-then-encode changed the store file:\n%s\n%s", b, again)
		}
		e.State(t0)
		e.Remaining()
	})
}
