package consent

import (
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/policy"
)

// TestVerifyRefusals: each way a grant can fail its receiver, with its code. The two
// stories' grants are used as made; each case changes one thing about the grant, the
// keys the verifier holds, or the use.
func TestVerifyRefusals(t *testing.T) {
	fx := newFixture()
	invoke := mustParse(t, mustSign(t, fx.hospital.node, fx.invokeGrant()))
	mem := mustParse(t, mustSign(t, fx.hospital.node, fx.memoryGrant()))
	other := mustParse(t, mustSign(t, fx.hospital.node, func() Grant { g := fx.invokeGrant(); g.ID = NewID(); return g }()))

	type tc struct {
		name   string
		grant  *Grant
		signer Signer
		use    func(u *Use)
		want   Code // "" for accepted
	}
	altered := func(g *Grant, f func(g *Grant)) *Grant { c := *g; f(&c); return &c }
	cases := []tc{
		{"first story as made", invoke, fx.hospital.signer(), nil, ""},
		{"second story as made", mem, fx.hospital.signer(), nil, ""},
		{"both subjects", mem, fx.hospital.signer(), func(u *Use) { u.Subjects = []string{"case-1187", "case-2290"} }, ""},
		{"lower classification", invoke, fx.hospital.signer(), func(u *Use) { u.Classification = policy.Official }, ""},
		{"just before expiry", invoke, fx.hospital.signer(), func(u *Use) { u.Time = invoke.ExpiresAt().Add(-time.Nanosecond) }, ""},
		{"issued a little ahead of the verifier's clock", invoke, fx.hospital.signer(), func(u *Use) { u.Time = t0.Add(-MaxClockSkew) }, ""},

		// consent_forged
		{"altered purpose", altered(invoke, func(g *Grant) { g.Purpose = "research" }), fx.hospital.signer(), nil, CodeForged},
		{"altered maximum", altered(invoke, func(g *Grant) { g.Scope.Max = policy.TopSecret }), fx.hospital.signer(), func(u *Use) { u.Classification = policy.Secret }, CodeForged},
		{"altered audience", altered(invoke, func(g *Grant) { g.Audience.Institution = fx.third.rootID }), fx.hospital.signer(), func(u *Use) { u.Institution = fx.third.rootID }, CodeForged},
		{"another grant's signature", altered(invoke, func(g *Grant) { g.Sig = other.Sig }), fx.hospital.signer(), nil, CodeForged},
		{"no signature", altered(invoke, func(g *Grant) { g.Sig = nil }), fx.hospital.signer(), nil, CodeForged},
		{"keys of another node", invoke, fx.practice.signer(), nil, CodeForged},
		{"no keys known", invoke, Signer{Institution: fx.hospital.rootID}, nil, CodeForged},
		{"origin of another institution", invoke, Signer{Key: fx.hospital.node.Public(), Institution: fx.third.rootID}, nil, CodeForged},
		{"Ed25519 signature alone altered", altered(invoke, func(g *Grant) {
			s := *g.Sig
			s.Ed25519 = append([]byte(nil), s.Ed25519...)
			s.Ed25519[0] ^= 1
			g.Sig = &s
		}), fx.hospital.signer(), nil, CodeForged},
		{"ML-DSA-65 signature alone altered", altered(invoke, func(g *Grant) {
			s := *g.Sig
			s.MLDSA65 = append([]byte(nil), s.MLDSA65...)
			s.MLDSA65[100] ^= 1
			g.Sig = &s
		}), fx.hospital.signer(), nil, CodeForged},
		{"signed by a node for another node", func() *Grant {
			// The practice signs a grant, then claims the hospital made it.
			g := fx.invokeGrant()
			g.Origin = Origin{Node: fx.practice.nodeID, Institution: fx.practice.rootID}
			p := mustParse(t, mustSign(t, fx.practice.node, g))
			p.Origin = Origin{Node: fx.hospital.nodeID, Institution: fx.hospital.rootID}
			return p
		}(), fx.hospital.signer(), nil, CodeForged},

		// consent_expired
		{"at expiry", invoke, fx.hospital.signer(), func(u *Use) { u.Time = invoke.ExpiresAt() }, CodeExpired},
		{"a year later", invoke, fx.hospital.signer(), func(u *Use) { u.Time = t0.AddDate(1, 0, 0) }, CodeExpired},
		{"not valid yet", invoke, fx.hospital.signer(), func(u *Use) { u.Time = t0.Add(-MaxClockSkew - time.Second) }, CodeExpired},

		// consent_wrong_audience
		{"a third institution replays it", invoke, fx.hospital.signer(), func(u *Use) { u.Institution, u.Node = fx.third.rootID, fx.third.nodeID }, CodeWrongAudience},
		{"another node of the audience", invoke, fx.hospital.signer(), func(u *Use) { u.Node = fx.third.nodeID }, CodeWrongAudience},
		{"another practice principal", mem, fx.hospital.signer(), func(u *Use) { u.Principal = "dr.ng@" + fx.practice.rootID }, CodeWrongAudience},
		{"the same name at another institution", mem, fx.hospital.signer(), func(u *Use) {
			u.Institution, u.Principal = fx.third.rootID, "dr.okafor@"+fx.third.rootID
		}, CodeWrongAudience},
		{"a brain call for a person's grant", mem, fx.hospital.signer(), func(u *Use) { u.Principal = "" }, CodeWrongAudience},

		// consent_out_of_scope
		{"another brain", invoke, fx.hospital.signer(), func(u *Use) { u.Brain = "clinical-coding" }, CodeOutOfScope},
		{"another action", invoke, fx.hospital.signer(), func(u *Use) { u.Action, u.Subjects = ActionMemoryRead, []string{"case-1187"} }, CodeOutOfScope},
		{"another subject", mem, fx.hospital.signer(), func(u *Use) { u.Subjects = []string{"case-9999"} }, CodeOutOfScope},
		{"one subject too many", mem, fx.hospital.signer(), func(u *Use) { u.Subjects = []string{"case-1187", "case-2290", "case-3000"} }, CodeOutOfScope},
		{"memory grant used for a brain", mem, fx.hospital.signer(), func(u *Use) { u.Action, u.Brain, u.Subjects = ActionInvoke, "oncology-mdt", nil }, CodeOutOfScope},
		{"data from another node", invoke, fx.hospital.signer(), func(u *Use) { u.From = fx.practice.nodeID }, CodeOutOfScope},
		{"another tenant's data", invoke, fx.hospital.signer(), func(u *Use) { u.Tenant = "cardiology" }, CodeOutOfScope},

		// consent_above_max
		{"SECRET data under an OFFICIAL-SENSITIVE grant", invoke, fx.hospital.signer(), func(u *Use) { u.Classification = policy.Secret }, CodeAboveMax},
		{"TOP-SECRET release", mem, fx.hospital.signer(), func(u *Use) { u.Classification = policy.TopSecret }, CodeAboveMax},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := useFor(fx, c.grant)
			if c.use != nil {
				c.use(&u)
			}
			err := Verify(c.grant, c.signer, u)
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			wantCode(t, err, c.want)
			if msg := err.Error(); !strings.Contains(msg, c.grant.ID) {
				t.Errorf("the refusal %q does not name the grant", msg)
			}
		})
	}
}

// TestVerifyMalformed: bytes that are not a grant are refused before any check.
func TestVerifyMalformed(t *testing.T) {
	fx := newFixture()
	b := mustSign(t, fx.hospital.node, fx.invokeGrant())
	b[len(b)/2] = '{'
	_, err := Parse(b)
	wantCode(t, err, CodeMalformed)
}

// TestIncompleteUse: a use with a member missing is the caller's bug, never a pass.
func TestIncompleteUse(t *testing.T) {
	fx := newFixture()
	g := mustParse(t, mustSign(t, fx.hospital.node, fx.invokeGrant()))
	for name, f := range map[string]func(u *Use){
		"institution":    func(u *Use) { u.Institution = "" },
		"node":           func(u *Use) { u.Node = "" },
		"from":           func(u *Use) { u.From = "" },
		"tenant":         func(u *Use) { u.Tenant = "" },
		"action":         func(u *Use) { u.Action = "" },
		"brain":          func(u *Use) { u.Brain = "" },
		"time":           func(u *Use) { u.Time = time.Time{} },
		"classification": func(u *Use) { u.Classification = 0 },
		"subjects":       func(u *Use) { u.Action, u.Brain = ActionMemoryRead, "" },
	} {
		u := fx.invokeUse()
		f(&u)
		err := Verify(g, fx.hospital.signer(), u)
		if err == nil || CodeOf(err) != "" {
			t.Errorf("use without %s: %v; want an error without a consent code", name, err)
		}
	}
}

// TestSignatureDomain: a grant's signature is over the domain-separated canonical bytes
// without sig, so the same key's signature for another format never verifies as a grant.
func TestSignatureDomain(t *testing.T) {
	fx := newFixture()
	g := mustParse(t, mustSign(t, fx.hospital.node, fx.invokeGrant()))
	signed, _ := g.SignedBytes()
	if err := fx.hospital.node.Public().Verify(SignDomain, signed, *g.Sig); err != nil {
		t.Fatalf("the signature is not over %q || 0x0A || the grant without sig: %v", SignDomain, err)
	}
	envelopeSig := fx.hospital.node.Sign("fed-call/1 envelope", signed)
	g.Sig = &envelopeSig
	if err := Verify(g, fx.hospital.signer(), fx.invokeUse()); CodeOf(err) != CodeForged {
		t.Fatalf("a signature under another domain verified as a grant's: %v", err)
	}
}

// TestCheckNeedsParse: a grant built by hand has unchecked times and never passes.
func TestCheckNeedsParse(t *testing.T) {
	fx := newFixture()
	g := fx.invokeGrant()
	wantCode(t, g.Check(fx.invokeUse()), CodeMalformed)
}
