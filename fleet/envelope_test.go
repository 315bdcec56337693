package fleet

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
)

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// testEnvelope is a valid call from a1 to a2, issued at t0 for a minute.
func testEnvelope(fx *fleetFixture) Envelope {
	return Envelope{
		Nonce: "00112233445566778899aabbccddeeff", Origin: fx.a1.ID(), Target: fx.a2.ID(),
		Issued: oar.FormatTime(t0), Expires: oar.FormatTime(t0.Add(time.Minute)),
		Principal: "alice", Tenant: "acme", Clearance: "SECRET", Classification: "OFFICIAL",
		Brain: "legal", PayloadDigest: sha256Hex("payload"),
	}
}

// testReply is a valid ok answer from a2 to call.
func testReply(fx *fleetFixture, call []byte) Reply {
	return Reply{
		Call: CallHash(call), Responder: fx.a2.ID(), Time: oar.FormatTime(t0.Add(time.Second)),
		Status: ReplyOK, Decision: &oar.Decision{Effect: "allow", Policies: []string{"fleet-default"}},
		OutputDigest: sha256Hex("output"), Record: sha256Hex("record"),
	}
}

func mustSealEnvelope(t testing.TB, key *identity.PrivateKey, e Envelope) []byte {
	t.Helper()
	b, err := SealEnvelope(key, e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustSealReply(t testing.TB, key *identity.PrivateKey, r Reply) []byte {
	t.Helper()
	b, err := SealReply(key, r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// unsealed encodes m as it stands, with a well-formed but meaningless sig, so that Parse
// sees members that Seal would refuse to sign.
func unsealed(t testing.TB, m any) []byte {
	t.Helper()
	b, err := canonical(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fakeSig() *identity.Signature {
	return &identity.Signature{MLDSA65: []byte{1, 2, 3}, Ed25519: []byte{4, 5, 6}}
}

// withoutSig cuts the sig member out of canonical bytes b.
func withoutSig(t testing.TB, b []byte) []byte {
	t.Helper()
	i := bytes.Index(b, []byte(`"sig":{`))
	j := bytes.IndexByte(b[i:], '}')
	if i < 0 || j < 0 || b[i+j+1] != ',' {
		t.Fatalf("no sig member followed by another in %s", b)
	}
	return append(append([]byte(nil), b[:i]...), b[i+j+2:]...)
}

func TestEnvelopeRoundTrip(t *testing.T) {
	fx := newFixture(t)
	want := testEnvelope(fx)
	b := mustSealEnvelope(t, fx.a1.Key, want)
	e, err := ParseEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	if e.Sig == nil {
		t.Fatal("parsed envelope has no sig")
	}
	want.V, want.Sig = EnvelopeVersion, e.Sig
	if !reflect.DeepEqual(*e, want) {
		t.Fatalf("parsed %+v, want %+v", *e, want)
	}
	if err := e.Verify(fx.a1.Public()); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	again, err := encodeCall(e)
	if err != nil || !bytes.Equal(again, b) {
		t.Fatalf("envelope does not re-encode to itself: %v", err)
	}

	// Seal draws a fresh nonce when none is given.
	fresh := testEnvelope(fx)
	fresh.Nonce = ""
	n1, err := ParseEnvelope(mustSealEnvelope(t, fx.a1.Key, fresh))
	if err != nil {
		t.Fatal(err)
	}
	n2, err := ParseEnvelope(mustSealEnvelope(t, fx.a1.Key, fresh))
	if err != nil {
		t.Fatal(err)
	}
	if !isNonce(n1.Nonce) || n1.Nonce == n2.Nonce {
		t.Fatalf("Seal made nonces %q and %q", n1.Nonce, n2.Nonce)
	}
}

// TestEnvelopeInvalidMember: Seal refuses to sign, and Parse refuses to read, an envelope
// with any invalid member, naming it.
func TestEnvelopeInvalidMember(t *testing.T) {
	fx := newFixture(t)
	tests := []struct {
		name string
		edit func(e *Envelope)
		err  string
		only string // "parse" when Seal sets the member itself, "seal" when encoding would re-spell it
	}{
		{"v", func(e *Envelope) { e.V = "fed-call/2" }, `v is "fed-call/2"`, "parse"},
		{"short nonce", func(e *Envelope) { e.Nonce = "00112233" }, "nonce", ""},
		{"upper-case nonce", func(e *Envelope) { e.Nonce = strings.ToUpper(e.Nonce) }, "nonce", ""},
		{"origin", func(e *Envelope) { e.Origin = "Node_abc" }, "origin", ""},
		{"target", func(e *Envelope) { e.Target = "" }, "target", ""},
		{"issued", func(e *Envelope) { e.Issued = "2026-03-01 12:00:00" }, "issued", ""},
		{"issued not UTC", func(e *Envelope) { e.Issued = "2026-03-01T13:00:00+01:00" }, "issued", ""},
		{"expires", func(e *Envelope) { e.Expires = "2026-03-01T12:01:00.0Z" }, "expires", ""},
		{"expires at issued", func(e *Envelope) { e.Expires = e.Issued }, "expires", ""},
		{"expires before issued", func(e *Envelope) { e.Expires = oar.FormatTime(t0.Add(-time.Second)) }, "expires", ""},
		{"lifetime", func(e *Envelope) { e.Expires = oar.FormatTime(t0.Add(MaxEnvelopeLifetime + 1)) }, "MaxEnvelopeLifetime", ""},
		{"empty principal", func(e *Envelope) { e.Principal = "" }, "principal", ""},
		{"long principal", func(e *Envelope) { e.Principal = strings.Repeat("p", MaxIDLen+1) }, "principal must be 1 to 128 bytes (MaxIDLen)", ""},
		{"control in principal", func(e *Envelope) { e.Principal = "alice\nroot" }, "principal", ""},
		{"invalid UTF-8 principal", func(e *Envelope) { e.Principal = "alice\xff" }, "principal", "seal"},
		{"empty tenant", func(e *Envelope) { e.Tenant = "" }, "tenant", ""},
		{"long tenant", func(e *Envelope) { e.Tenant = strings.Repeat("t", MaxIDLen+1) }, "tenant", ""},
		{"clearance", func(e *Envelope) { e.Clearance = "SECRET-ISH" }, "clearance", ""},
		{"classification", func(e *Envelope) { e.Classification = "" }, "classification", ""},
		{"brain", func(e *Envelope) { e.Brain = "Legal" }, "brain", ""},
		{"brain dash", func(e *Envelope) { e.Brain = "legal-" }, "brain", ""},
		{"payload_digest", func(e *Envelope) { e.PayloadDigest = "" }, "payload_digest", ""},
		{"upper-case payload_digest", func(e *Envelope) { e.PayloadDigest = strings.ToUpper(e.PayloadDigest) }, "payload_digest", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := testEnvelope(fx)
			e.V = EnvelopeVersion
			tc.edit(&e)
			if tc.only != "parse" {
				if _, err := SealEnvelope(fx.a1.Key, e); err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("SealEnvelope = %v, want %q", err, tc.err)
				}
			}
			if tc.only == "seal" {
				return
			}
			e.Sig = fakeSig()
			if _, err := ParseEnvelope(unsealed(t, &e)); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseEnvelope = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestParseEnvelope(t *testing.T) {
	fx := newFixture(t)
	b := mustSealEnvelope(t, fx.a1.Key, testEnvelope(fx))
	tests := []struct {
		name string
		env  []byte
		err  string
	}{
		{"not canonical", replace(t, b, `{"brain"`, `{ "brain"`), "not in canonical form"},
		{"trailing newline", append(append([]byte(nil), b...), '\n'), "not in canonical form"},
		{"duplicate member", replace(t, b, `"brain":"legal",`, `"brain":"legal","brain":"legal",`), "not in canonical form"},
		{"unknown member", replace(t, b, `,"v":"fed-call/1"}`, `,"v":"fed-call/1","w":1}`), `unknown object member name "w"`},
		{"differently cased member", replace(t, b, `"payload_digest":`, `"payload_Digest":`), `unknown object member name "payload_Digest"`},
		{"missing member", replace(t, b, `"tenant":"acme",`, ``), "tenant"},
		{"wrong type", replace(t, b, `"brain":"legal"`, `"brain":7`), "brain"},
		{"missing sig", withoutSig(t, b), "sig is required"},
		{"null sig", replace(t, withoutSig(t, b), `"target"`, `"sig":null,"target"`), "sig is required"},
		{"unknown sig member", replace(t, b, `"sig":{`, `"sig":{"a":"AA==",`), `unknown object member name "a" within "/sig"`},
		{"too big", append(bytes.Repeat([]byte(" "), MaxEnvelopeSize2), b...), "MaxEnvelopeSize2"},
		{"not JSON", []byte("fed-call/1"), "not in canonical form"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseEnvelope(tc.env)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("ParseEnvelope = %v, want %q", err, tc.err)
			}
		})
	}
}

// flip changes the first character of the string member name in canonical bytes b to
// another character of the same alphabet (lowercase hex, or base64 letters).
func flip(t testing.TB, b []byte, name string) []byte {
	t.Helper()
	i := bytes.Index(b, []byte(`"`+name+`":"`))
	if i < 0 {
		t.Fatalf("no string member %q", name)
	}
	i += len(name) + 4
	c := append([]byte(nil), b...)
	if c[i] == 'a' {
		c[i] = 'b'
	} else {
		c[i] = 'a'
	}
	return c
}

func TestEnvelopeVerify(t *testing.T) {
	fx := newFixture(t)
	good := mustSealEnvelope(t, fx.a1.Key, testEnvelope(fx))
	byA2 := mustSealEnvelope(t, fx.a2.Key, testEnvelope(fx)) // claims to be from a1
	tests := []struct {
		name string
		env  []byte
		pub  identity.PublicKey
		err  string // "" when Verify must succeed
	}{
		{"origin's key", good, fx.a1.Public(), ""},
		{"signed by another node's key", byA2, fx.a1.Public(), "signature does not verify"},
		{"key of another node given", good, fx.a2.Public(), "the key given is " + fx.a2.ID()},
		{"flipped byte in principal", replace(t, good, `"principal":"alice"`, `"principal":"alicf"`), fx.a1.Public(), "signature does not verify"},
		{"flipped byte in payload_digest", flip(t, good, "payload_digest"), fx.a1.Public(), "signature does not verify"},
		{"flipped byte in nonce", flip(t, good, "nonce"), fx.a1.Public(), "signature does not verify"},
		{"flipped byte in ed25519 signature", flip(t, good, "ed25519"), fx.a1.Public(), "Ed25519 signature does not verify"},
		{"flipped byte in ml-dsa-65 signature", flip(t, good, "ml-dsa-65"), fx.a1.Public(), "ML-DSA-65 signature does not verify"},
		{"incomplete key", good, identity.PublicKey{}, "incomplete public key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ParseEnvelope(tc.env)
			if err != nil {
				t.Fatal(err)
			}
			checkVerify(t, e.Verify(tc.pub), tc.err)
		})
	}
	e, _ := ParseEnvelope(good)
	e.Sig = nil
	checkVerify(t, e.Verify(fx.a1.Public()), "sig is required")
}

func checkVerify(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
		t.Fatalf("Verify = %v, want %q", err, want)
	}
	if strings.Contains(want, "does not verify") && !errors.Is(err, identity.ErrBadSignature) {
		t.Fatalf("Verify = %v, does not wrap identity.ErrBadSignature", err)
	}
}

func TestCallHashDomain(t *testing.T) {
	if got, want := CallHash([]byte("{}")), sha256Hex("fed-call/1 hash\n{}"); got != want {
		t.Fatalf("CallHash = %s, want %s", got, want)
	}
}

func TestReplayGuard(t *testing.T) {
	fx := newFixture(t)
	self := fx.a2.ID()
	env := func(edit func(e *Envelope)) *Envelope {
		e := testEnvelope(fx)
		e.V = EnvelopeVersion
		if edit != nil {
			edit(&e)
		}
		return &e
	}
	at := func(d time.Duration) string { return oar.FormatTime(t0.Add(d)) }
	base := env(nil) // issued t0, expires t0+1m
	type check struct {
		e    *Envelope
		now  time.Time
		want error  // sentinel, or nil
		text string // part of the message; "" to accept
	}
	tests := []struct {
		name   string
		max    int // 0: MaxNonces
		checks []check
	}{
		{"fresh accepted", 0, []check{{base, t0, nil, ""}}},
		{"replay refused", 0, []check{
			{base, t0, nil, ""},
			{base, t0.Add(59 * time.Second), ErrReplayed, "envelope nonce was already used"},
		}},
		{"same nonce with another expiry refused", 0, []check{
			{base, t0, nil, ""},
			{env(func(e *Envelope) { e.Issued, e.Expires = at(10*time.Second), at(2*time.Minute) }), t0.Add(10 * time.Second), ErrReplayed, ""},
		}},
		{"expired refused", 0, []check{{base, t0.Add(time.Minute), ErrExpired, "envelope has expired"}}},
		{"expired replay refused as expired", 0, []check{
			{base, t0, nil, ""},
			{base, t0.Add(2 * time.Minute), ErrExpired, ""},
		}},
		{"future issued refused", 0, []check{
			{env(func(e *Envelope) { e.Issued, e.Expires = at(MaxClockSkew+time.Nanosecond), at(2*time.Minute) }), t0, nil, "MaxClockSkew"},
		}},
		{"issued within clock skew accepted", 0, []check{
			{env(func(e *Envelope) { e.Issued, e.Expires = at(MaxClockSkew), at(2*time.Minute) }), t0, nil, ""},
		}},
		{"too long lifetime refused", 0, []check{
			{env(func(e *Envelope) { e.Expires = at(MaxEnvelopeLifetime + time.Nanosecond) }), t0, nil, "MaxEnvelopeLifetime"},
		}},
		{"longest lifetime accepted", 0, []check{
			{env(func(e *Envelope) { e.Expires = at(MaxEnvelopeLifetime) }), t0, nil, ""},
		}},
		{"wrong target refused", 0, []check{
			{env(func(e *Envelope) { e.Target = fx.b1.ID() }), t0, ErrNotForUs, "addressed to another node"},
		}},
		{"same nonce from another origin accepted", 0, []check{
			{base, t0, nil, ""},
			{env(func(e *Envelope) { e.Origin = fx.b1.ID() }), t0, nil, ""},
		}},
		{"nonce accepted again after expiry", 0, []check{
			{base, t0, nil, ""},
			{env(func(e *Envelope) { e.Issued, e.Expires = at(time.Minute), at(2*time.Minute) }), t0.Add(time.Minute), nil, ""},
			{env(func(e *Envelope) { e.Issued, e.Expires = at(time.Minute), at(3*time.Minute) }), t0.Add(time.Minute), ErrReplayed, ""},
		}},
		{"full refused, then room after expiry", 2, []check{
			{env(func(e *Envelope) { e.Nonce = strings.Repeat("1", 32) }), t0, nil, ""},
			{env(func(e *Envelope) { e.Nonce = strings.Repeat("2", 32); e.Expires = at(2 * time.Minute) }), t0, nil, ""},
			{env(func(e *Envelope) { e.Nonce = strings.Repeat("3", 32) }), t0, ErrReplayFull, "MaxNonces"},
			{env(func(e *Envelope) { e.Nonce = strings.Repeat("3", 32); e.Expires = at(2 * time.Minute) }), t0.Add(time.Minute), nil, ""},
			{env(func(e *Envelope) { e.Nonce = strings.Repeat("4", 32); e.Expires = at(2 * time.Minute) }), t0.Add(time.Minute), ErrReplayFull, ""},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewReplayGuard(time.Time{})
			if tc.max > 0 {
				g.max = tc.max
			}
			for i, c := range tc.checks {
				err := g.Check(c.e, self, c.now)
				refuse := c.want != nil || c.text != ""
				if !refuse && err != nil || refuse && err == nil {
					t.Fatalf("check %d: Check = %v", i, err)
				}
				if c.want != nil && !errors.Is(err, c.want) {
					t.Fatalf("check %d: Check = %v, want %v", i, err, c.want)
				}
				if c.text != "" && !strings.Contains(err.Error(), c.text) {
					t.Fatalf("check %d: Check = %v, want %q", i, err, c.text)
				}
			}
		})
	}
}

// TestReplayGuardConcurrent: of many goroutines presenting the same envelopes, exactly one
// gets each accepted.
// A restarted node refuses envelopes issued before it started: its previous run's
// nonces are gone, so one it accepted then could otherwise be replayed now.
func TestReplayGuardRefusesEnvelopesFromBeforeItsStart(t *testing.T) {
	fx := newFixture(t)
	e := testEnvelope(fx)
	issued, _ := time.Parse(time.RFC3339Nano, e.Issued)
	if err := NewReplayGuard(issued.Add(time.Second)).Check(&e, fx.a2.ID(), issued.Add(2*time.Second)); !errors.Is(err, ErrBeforeStart) {
		t.Fatalf("got %v", err)
	}
	if err := NewReplayGuard(issued).Check(&e, fx.a2.ID(), issued.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
}

func TestReplayGuardConcurrent(t *testing.T) {
	fx := newFixture(t)
	const n = 200
	envs := make([]*Envelope, n)
	for i := range envs {
		e := testEnvelope(fx)
		e.Nonce = hex.EncodeToString([]byte(strings.Repeat("x", 12) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + "zz"))
		envs[i] = &e
	}
	g := NewReplayGuard(time.Time{})
	var mu sync.Mutex
	accepted := make(map[int]int)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Go(func() {
			for i, e := range envs {
				if err := g.Check(e, fx.a2.ID(), t0.Add(time.Duration(i)*time.Millisecond)); err == nil {
					mu.Lock()
					accepted[i]++
					mu.Unlock()
				} else if !errors.Is(err, ErrReplayed) {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for i := range envs {
		if accepted[i] != 1 {
			t.Fatalf("envelope %d accepted %d times", i, accepted[i])
		}
	}
}

func TestReplyRoundTrip(t *testing.T) {
	fx := newFixture(t)
	call := mustSealEnvelope(t, fx.a1.Key, testEnvelope(fx))
	ok := testReply(fx, call)
	denied := Reply{Call: ok.Call, Responder: ok.Responder, Time: ok.Time, Status: ReplyDenied,
		Decision: &oar.Decision{Effect: "deny", Policies: []string{"forbid-secret"}}, Error: "policy_denied",
		Message: "the tenant may not use this brain", Record: ok.Record}
	failed := Reply{Call: ok.Call, Responder: ok.Responder, Time: ok.Time, Status: ReplyError, Error: "backend_unavailable"}
	lateDenial := denied // policy allowed, a later check refused
	lateDenial.Decision, lateDenial.Error = &oar.Decision{Effect: "allow"}, "egress_refused"
	for _, want := range []Reply{ok, denied, failed, lateDenial} {
		t.Run(want.Status+" "+want.Error, func(t *testing.T) {
			b := mustSealReply(t, fx.a2.Key, want)
			r, err := ParseReply(b)
			if err != nil {
				t.Fatal(err)
			}
			if r.Sig == nil || r.V != ReplyVersion || r.Call != CallHash(call) || r.Status != want.Status ||
				r.Error != want.Error || r.Message != want.Message || r.OutputDigest != want.OutputDigest ||
				r.Record != want.Record || (r.Decision == nil) != (want.Decision == nil) {
				t.Fatalf("parsed %+v, want %+v", *r, want)
			}
			if err := r.Verify(fx.a2.Public()); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			again, err := encodeCall(r)
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("reply does not re-encode to itself: %v", err)
			}
		})
	}
}

func TestReplyInvalidMember(t *testing.T) {
	fx := newFixture(t)
	call := mustSealEnvelope(t, fx.a1.Key, testEnvelope(fx))
	denied := func(r *Reply) {
		r.Status, r.Error, r.OutputDigest, r.Decision = ReplyDenied, "policy_denied", "", &oar.Decision{Effect: "deny"}
	}
	tests := []struct {
		name string
		edit func(r *Reply)
		err  string
		only string // "parse" when Seal sets the member itself, "seal" when encoding would re-spell it
	}{
		{"v", func(r *Reply) { r.V = "fed-reply/0" }, `v is "fed-reply/0"`, "parse"},
		{"call", func(r *Reply) { r.Call = "" }, "call", ""},
		{"upper-case call", func(r *Reply) { r.Call = strings.ToUpper(r.Call) }, "call", ""},
		{"responder", func(r *Reply) { r.Responder = "node_" }, "responder", ""},
		{"time", func(r *Reply) { r.Time = "yesterday" }, "time", ""},
		{"status", func(r *Reply) { r.Status = "OK" }, "status", ""},
		{"error when ok", func(r *Reply) { r.Error = "oops" }, "error", ""},
		{"no output_digest when ok", func(r *Reply) { r.OutputDigest = "" }, "output_digest", ""},
		{"bad output_digest", func(r *Reply) { r.OutputDigest = "abc" }, "output_digest", ""},
		{"no error when denied", func(r *Reply) { denied(r); r.Error = "" }, "error", ""},
		{"error code spelling", func(r *Reply) { denied(r); r.Error = "Policy Denied" }, "error", ""},
		{"long error code", func(r *Reply) { denied(r); r.Error = strings.Repeat("e", MaxIDLen+1) }, "error", ""},
		{"output_digest when denied", func(r *Reply) { denied(r); r.OutputDigest = sha256Hex("x") }, "output_digest", ""},
		{"decision effect", func(r *Reply) { r.Decision.Effect = "maybe" }, "decision.effect", ""},
		{"decision contradicts ok", func(r *Reply) { r.Decision.Effect = "deny" }, "decision.effect", ""},
		{"empty policy", func(r *Reply) { r.Decision.Policies = []string{""} }, "decision.policies[0]", ""},
		{"long message", func(r *Reply) { r.Message = strings.Repeat("m", MaxReplyMessage+1) }, "MaxReplyMessage", ""},
		{"invalid UTF-8 message", func(r *Reply) { r.Message = "caf\xe9" }, "message", "seal"},
		{"record", func(r *Reply) { r.Record = "12" }, "record", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := testReply(fx, call)
			r.V = ReplyVersion
			tc.edit(&r)
			if tc.only != "parse" {
				if _, err := SealReply(fx.a2.Key, r); err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("SealReply = %v, want %q", err, tc.err)
				}
			}
			if tc.only == "seal" {
				return
			}
			r.Sig = fakeSig()
			if _, err := ParseReply(unsealed(t, &r)); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseReply = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestParseReply(t *testing.T) {
	fx := newFixture(t)
	call := mustSealEnvelope(t, fx.a1.Key, testEnvelope(fx))
	b := mustSealReply(t, fx.a2.Key, testReply(fx, call))
	tests := []struct {
		name  string
		reply []byte
		err   string
	}{
		{"not canonical", replace(t, b, `{"call"`, `{ "call"`), "not in canonical form"},
		{"unknown member", replace(t, b, `,"v":"fed-reply/1"}`, `,"v":"fed-reply/1","w":null}`), `unknown object member name "w"`},
		{"unknown decision member", replace(t, b, `"decision":{`, `"decision":{"by":"x",`), `unknown object member name "by" within "/decision"`},
		{"empty policies", replace(t, b, `,"policies":["fleet-default"]`, `,"policies":[]`), "not part of fed-reply/1"},
		{"null decision", replace(t, b, `"decision":{"effect":"allow","policies":["fleet-default"]}`, `"decision":null`), "not part of fed-reply/1"},
		{"empty optional member", replace(t, b, `"call"`, `"error":"","call"`), "not in canonical form"},
		{"empty optional member sorted", replace(t, b, `"output_digest"`, `"message":"","output_digest"`), "not part of fed-reply/1"},
		{"missing member", replace(t, b, `"status":"ok",`, ``), "status"},
		{"missing sig", withoutSig(t, b), "sig is required"},
		{"wrong version", replace(t, b, `"v":"fed-reply/1"`, `"v":"fed-call/1"`), `v is "fed-call/1"`},
		{"too big", append(bytes.Repeat([]byte(" "), MaxReplySize), b...), "MaxReplySize"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseReply(tc.reply)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("ParseReply = %v, want %q", err, tc.err)
			}
		})
	}
	// An envelope is not a reply, nor a reply an envelope.
	if _, err := ParseReply(call); err == nil {
		t.Fatal("ParseReply accepted an envelope")
	}
	if _, err := ParseEnvelope(b); err == nil {
		t.Fatal("ParseEnvelope accepted a reply")
	}
}

func TestReplyVerify(t *testing.T) {
	fx := newFixture(t)
	call := mustSealEnvelope(t, fx.a1.Key, testEnvelope(fx))
	good := mustSealReply(t, fx.a2.Key, testReply(fx, call))
	byA1 := mustSealReply(t, fx.a1.Key, testReply(fx, call)) // claims to be from a2
	tests := []struct {
		name  string
		reply []byte
		pub   identity.PublicKey
		err   string // "" when Verify must succeed
	}{
		{"responder's key", good, fx.a2.Public(), ""},
		{"signed by another node's key", byA1, fx.a2.Public(), "signature does not verify"},
		{"key of another node given", good, fx.b1.Public(), "the key given is " + fx.b1.ID()},
		{"flipped byte in call", flip(t, good, "call"), fx.a2.Public(), "signature does not verify"},
		{"flipped byte in output_digest", flip(t, good, "output_digest"), fx.a2.Public(), "signature does not verify"},
		{"flipped byte in ed25519 signature", flip(t, good, "ed25519"), fx.a2.Public(), "Ed25519 signature does not verify"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseReply(tc.reply)
			if err != nil {
				t.Fatal(err)
			}
			checkVerify(t, r.Verify(tc.pub), tc.err)
		})
	}
	// A reply signature is not an envelope signature: the domains differ.
	r, _ := ParseReply(good)
	signed, err := r.signedBytes()
	if err != nil {
		t.Fatal(err)
	}
	if fx.a2.Public().Verify(EnvelopeDomain, signed, *r.Sig) == nil {
		t.Fatal("reply signature verifies under the envelope domain")
	}
}

// A fed-call/2 envelope carries a consent grant as an opaque canonical object: signed
// and hashed under its own domains, so that neither signature nor call hash can be
// taken for a fed-call/1 envelope's, and refused when its grant is missing, too large
// or not canonical.
func TestEnvelopeVersion2CarriesConsent(t *testing.T) {
	fx := newFixture(t)
	grant := []byte(`{"id":"00112233445566778899aabbccddeeff","v":"consent-grant/1"}`)
	e := testEnvelope(fx)
	e.Consent = grant
	b := mustSealEnvelope(t, fx.a1.Key, e)
	got, err := ParseEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.V != EnvelopeVersion2 || !bytes.Equal(got.Consent, grant) {
		t.Fatalf("parsed %s with consent %s", got.V, got.Consent)
	}
	if err := got.Verify(fx.a1.Public()); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(b, []byte(`"v":"fed-call/2"}`)) {
		t.Fatalf("v is not the last member of %s", b)
	}
	// The call hash is under the fed-call/2 domain.
	h := sha256.New()
	h.Write([]byte(CallHashDomain2 + "\n"))
	h.Write(b)
	if CallHash(b) != hex.EncodeToString(h.Sum(nil)) {
		t.Fatal("a fed-call/2 envelope is not hashed under its own domain")
	}
	// The signature is under the fed-call/2 domain: relabelled fed-call/1 (without the
	// grant), it does not verify.
	v1 := *got
	v1.V, v1.Consent = EnvelopeVersion, nil
	if err := v1.Verify(fx.a1.Public()); err == nil {
		t.Fatal("a fed-call/2 signature verifies for a fed-call/1 envelope")
	}
	// Without a grant, SealEnvelope writes fed-call/1, hashed as before.
	plain := mustSealEnvelope(t, fx.a1.Key, testEnvelope(fx))
	if p, err := ParseEnvelope(plain); err != nil || p.V != EnvelopeVersion {
		t.Fatalf("no grant: %v %v", p, err)
	}
	h = sha256.New()
	h.Write([]byte(CallHashDomain + "\n"))
	h.Write(plain)
	if CallHash(plain) != hex.EncodeToString(h.Sum(nil)) {
		t.Fatal("a fed-call/1 envelope's call hash changed")
	}
	for name, c := range map[string]struct {
		consent []byte
		v       string
		want    string
	}{
		"v2 without consent": {nil, EnvelopeVersion2, "consent is required"},
		"v1 with consent":    {grant, EnvelopeVersion, "no consent member"},
	} {
		e := testEnvelope(fx)
		e.V, e.Consent, e.Sig = c.v, c.consent, fakeSig()
		_, err := ParseEnvelope(unsealed(t, &e))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", name, err, c.want)
		}
	}
	for name, c := range map[string]struct {
		consent []byte
		want    string
	}{
		"consent not an object": {[]byte(`["x"]`), "canonical"},
		"consent not canonical": {[]byte(`{"v":"x", "a":1}`), "canonical"},
		"consent too big":       {[]byte(`{"a":"` + strings.Repeat("x", MaxConsentSize) + `"}`), "MaxConsentSize"},
	} {
		e := testEnvelope(fx)
		e.Consent = c.consent
		if _, err := SealEnvelope(fx.a1.Key, e); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", name, err, c.want)
		}
	}
}
