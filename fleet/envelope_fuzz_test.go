package fleet

import (
	"bytes"
	"testing"
	"time"

	"github.com/sios-project/sios/oar"
)

// FuzzParseEnvelope: whatever ParseEnvelope accepts re-encodes to exactly its input, and
// Verify never panics on it.
func FuzzParseEnvelope(f *testing.F) {
	fx := newFixture(f)
	e := testEnvelope(fx)
	f.Add(mustSealEnvelope(f, fx.a1.Key, e))
	e.Nonce, e.Principal, e.Expires = "", "bob@example.org", oar.FormatTime(t0.Add(MaxEnvelopeLifetime))
	f.Add(mustSealEnvelope(f, fx.b1.Key, e))
	e.V, e.Sig = EnvelopeVersion, fakeSig()
	f.Add(unsealed(f, &e))
	f.Add([]byte(`{"v":"fed-call/1"}`))
	e.Sig, e.Consent = nil, []byte(`{"id":"00112233445566778899aabbccddeeff","v":"consent-grant/1"}`)
	f.Add(mustSealEnvelope(f, fx.a1.Key, e))
	f.Add([]byte(`{"consent":{},"v":"fed-call/2"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEnvelope(b)
		if err != nil {
			return
		}
		again, err := encodeCall(e)
		if err != nil {
			t.Fatalf("accepted envelope does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("parse-then-encode changed the envelope:\n%s\n%s", b, again)
		}
		e.Verify(fx.a1.Public())
		NewReplayGuard(time.Time{}).Check(e, e.Target, t0)
	})
}

// FuzzParseReply: whatever ParseReply accepts re-encodes to exactly its input, and
// Verify never panics on it.
func FuzzParseReply(f *testing.F) {
	fx := newFixture(f)
	call := mustSealEnvelope(f, fx.a1.Key, testEnvelope(fx))
	r := testReply(fx, call)
	f.Add(mustSealReply(f, fx.a2.Key, r))
	r.Status, r.Error, r.Message, r.OutputDigest = ReplyDenied, "policy_denied", "no \"legal\" brain for tenant <acme>\n", ""
	r.Decision.Effect, r.Time = "deny", oar.FormatTime(t0.Add(time.Nanosecond))
	f.Add(mustSealReply(f, fx.a2.Key, r))
	r.Status, r.Decision, r.Record = ReplyError, nil, ""
	f.Add(mustSealReply(f, fx.a2.Key, r))
	r.V, r.Sig = ReplyVersion, fakeSig()
	f.Add(unsealed(f, &r))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReply(b)
		if err != nil {
			return
		}
		again, err := encodeCall(r)
		if err != nil {
			t.Fatalf("accepted reply does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("parse-then-encode changed the reply:\n%s\n%s", b, again)
		}
		r.Verify(fx.a2.Public())
	})
}
