package tpm

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/sios-project/sios/identity"
)

// attestedNode is a node initialised with a TPM, loaded, and the verifier's view of it.
type attestedNode struct {
	sim  simulator
	dir  string
	node *Node
}

func newAttestedNode(t testing.TB, opt simOptions) *attestedNode {
	t.Helper()
	sim := startSimulator(t, opt)
	tp := sim.open(t)
	dir := t.TempDir()
	if _, err := Init(tp, dir, "n", "", nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	n, err := Load(tp, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return &attestedNode{sim: sim, dir: dir, node: n}
}

func (a *attestedNode) policyCA(t testing.TB) Policy {
	t.Helper()
	pool, _, err := ParseEKCAs(a.sim.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	return Policy{CAs: pool}
}

func (a *attestedNode) verify(policy Policy) (*Verified, error) {
	return Verify(a.node.Evidence, a.node.ID(), a.node.Public(), policy)
}

// roundTrip is the evidence as a peer receives it: encoded, then parsed.
func roundTrip(t testing.TB, ev *Evidence) *Evidence {
	t.Helper()
	b, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseEvidence(b)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestEvidenceVerifies(t *testing.T) {
	a := newAttestedNode(t, simOptions{EKCert: true})
	ev := roundTrip(t, a.node.Evidence)
	v, err := Verify(ev, a.node.ID(), a.node.Public(), a.policyCA(t))
	if err != nil {
		t.Fatalf("evidence with an EK certificate from a pinned CA: %v", err)
	}
	if v.Pinned || v.EKSHA256 != a.node.EKSHA256 || v.EKCertificate == nil {
		t.Fatalf("verified %+v: want accepted by certificate, EK %s", v, a.node.EKSHA256)
	}
	if want, _ := EKSHA256(v.EKCertificate.PublicKey); want != v.EKSHA256 {
		t.Fatal("the EK hash is not the hash of the certificate's key")
	}
	v, err = Verify(ev, a.node.ID(), a.node.Public(), Policy{EKSHA256: []string{"00" + a.node.EKSHA256[2:], a.node.EKSHA256}})
	if err != nil || !v.Pinned {
		t.Fatalf("evidence with a pinned EK: %v (pinned %v)", err, v != nil && v.Pinned)
	}
}

func TestEvidenceRefusals(t *testing.T) {
	a := newAttestedNode(t, simOptions{EKCert: true})
	other := newAttestedNode(t, simOptions{EKCert: true})
	pinned := Policy{EKSHA256: []string{a.node.EKSHA256}}
	otherKey := newNodeKey(t)

	cases := []struct {
		name   string
		alter  func(ev *Evidence)
		nodeID string
		keys   identity.PublicKey
		policy Policy
		want   error
	}{
		{name: "altered binding statement: node id", want: ErrBindingSignature, policy: pinned,
			alter: func(ev *Evidence) { ev.Binding.NodeID = otherKey.Public().ID(identity.NodePrefix) }},
		{name: "altered binding statement: keys", want: ErrBindingSignature, policy: pinned,
			alter: func(ev *Evidence) { ev.Binding.PublicKeyJSON = otherKey.Public().JSON() }},
		{name: "altered binding statement: EK hash", want: ErrBindingSignature, policy: pinned,
			alter: func(ev *Evidence) { ev.Binding.EKSHA256 = other.node.EKSHA256 }},
		{name: "another TPM's AK", want: ErrBindingSignature, policy: pinned,
			alter: func(ev *Evidence) { ev.AKPublic = other.node.Evidence.AKPublic }},
		{name: "evidence of another node", want: ErrBindingMismatch, policy: pinned,
			nodeID: other.node.ID(), keys: other.node.Public()},
		{name: "expected keys differ", want: ErrBindingMismatch, policy: pinned, keys: otherKey.Public()},
		{name: "another TPM's EK", want: ErrBindingMismatch, policy: Policy{EKSHA256: []string{other.node.EKSHA256}},
			alter: func(ev *Evidence) { ev.EKPublic, ev.EKCertificate = other.node.Evidence.EKPublic, nil }},
		{name: "another TPM's EK certificate", want: ErrEKCertificate, policy: pinned,
			alter: func(ev *Evidence) { ev.EKCertificate = other.node.Evidence.EKCertificate }},
		{name: "unknown EK: not pinned, no CA", want: ErrUnknownEK, policy: Policy{EKSHA256: []string{other.node.EKSHA256}}},
		{name: "unknown EK: certificate from another CA", want: ErrUnknownEK, policy: other.policyCA(t)},
		{name: "unknown EK: pinned CA but no certificate", want: ErrUnknownEK, policy: a.policyCA(t),
			alter: func(ev *Evidence) { ev.EKCertificate = nil }},
		{name: "unknown EK: certificate not yet valid by the policy's clock", want: ErrUnknownEK,
			policy: Policy{CAs: a.policyCA(t).CAs, Time: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := roundTrip(t, a.node.Evidence)
			if c.alter != nil {
				c.alter(ev)
			}
			nodeID, keys := a.node.ID(), a.node.Public()
			if c.nodeID != "" {
				nodeID = c.nodeID
			}
			if c.keys.MLDSA65 != nil {
				keys = c.keys
			}
			_, err := Verify(ev, nodeID, keys, c.policy)
			t.Log(err)
			if !errors.Is(err, c.want) {
				t.Fatalf("Verify: %v, want %v", err, c.want)
			}
		})
	}
}

func TestExchange(t *testing.T) {
	a := newAttestedNode(t, simOptions{EKCert: true})
	b := newAttestedNode(t, simOptions{})
	va, err := a.verify(a.policyCA(t))
	if err != nil {
		t.Fatal(err)
	}
	vb, err := b.verify(Policy{EKSHA256: []string{b.node.EKSHA256}})
	if err != nil {
		t.Fatal(err)
	}
	// exchange runs challenge → answer over the wire encodings.
	exchange := func(v *Verified, att *Attestor) (*Challenge, *Pending, *Answer) {
		t.Helper()
		ch, p, err := v.Challenge(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cb, err := ch.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		ch2, err := ParseChallenge(cb)
		if err != nil {
			t.Fatal(err)
		}
		ans, err := att.Answer(ch2)
		if err != nil {
			t.Fatal(err)
		}
		ab, err := ans.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		ans2, err := ParseAnswer(ab)
		if err != nil {
			t.Fatal(err)
		}
		return ch, p, ans2
	}

	t.Run("fresh answer is accepted", func(t *testing.T) {
		_, p, ans := exchange(va, a.node.Attestor)
		got, err := p.Check(ans, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if got.NodeID != a.node.ID() || got.EKSHA256 != a.node.EKSHA256 || len(got.PCRs) != 8 {
			t.Fatalf("attested %+v", got)
		}
		if _, err := p.Check(ans, time.Now()); !errors.Is(err, ErrChallengeExpired) {
			t.Fatalf("a second check of one challenge: %v, want ErrChallengeExpired", err)
		}
	})
	t.Run("stale nonce", func(t *testing.T) {
		_, p1, old := exchange(va, a.node.Attestor)
		if _, err := p1.Check(old, time.Now()); err != nil {
			t.Fatal(err)
		}
		_, p2, _ := exchange(va, a.node.Attestor)
		_, err := p2.Check(old, time.Now())
		t.Log(err)
		if !errors.Is(err, ErrStaleNonce) {
			t.Fatalf("an old answer replayed: %v, want ErrStaleNonce", err)
		}
	})
	t.Run("expired challenge", func(t *testing.T) {
		_, p, ans := exchange(va, a.node.Attestor)
		_, err := p.Check(ans, time.Now().Add(MaxChallengeAge+time.Second))
		t.Log(err)
		if !errors.Is(err, ErrChallengeExpired) {
			t.Fatalf("a late answer: %v, want ErrChallengeExpired", err)
		}
	})
	t.Run("quote from another TPM", func(t *testing.T) {
		chA, pA, ansA := exchange(va, a.node.Attestor)
		// B's TPM quotes over A's nonce, as a node without A's TPM could at best.
		chB, _, err := vb.Challenge(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		chB.Nonce = chA.Nonce
		ansB, err := b.node.Attestor.Answer(chB)
		if err != nil {
			t.Fatal(err)
		}
		forged := *ansA
		forged.Quote, forged.QuoteSignature, forged.PCRs = ansB.Quote, ansB.QuoteSignature, ansB.PCRs
		_, err = pA.Check(&forged, time.Now())
		t.Log(err)
		if !errors.Is(err, ErrQuoteSignature) {
			t.Fatalf("a quote from another TPM: %v, want ErrQuoteSignature", err)
		}
	})
	t.Run("credential for another TPM does not activate", func(t *testing.T) {
		ch, _, err := va.Challenge(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.node.Attestor.Answer(ch)
		t.Log(err)
		if err == nil {
			t.Fatal("another TPM activated a credential made for A's EK")
		}
		// B's TPM still answers its own verifier.
		_, p, ans := exchange(vb, b.node.Attestor)
		if _, err := p.Check(ans, time.Now()); err != nil {
			t.Fatalf("B after refusing A's credential: %v", err)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		_, p, ans := exchange(va, a.node.Attestor)
		ans.Secret = bytes.Repeat([]byte{7}, 32)
		_, err := p.Check(ans, time.Now())
		if !errors.Is(err, ErrActivation) {
			t.Fatalf("a wrong credential secret: %v, want ErrActivation", err)
		}
	})
	t.Run("PCR values not the quoted ones", func(t *testing.T) {
		_, p, ans := exchange(va, a.node.Attestor)
		ans.PCRs[7] = hex.EncodeToString(bytes.Repeat([]byte{1}, 32))
		_, err := p.Check(ans, time.Now())
		if !errors.Is(err, ErrQuotePCRs) {
			t.Fatalf("doctored PCR values: %v, want ErrQuotePCRs", err)
		}
	})
}

// The ECC NIST P-256 EK (template L-2): swtpm_setup provisions RSA-2048 and P-384 EKs
// only, so the test has the TPM derive the P-256 one. The verifier's credential is
// then an ECDH-encrypted seed instead of an RSA-OAEP one.
func TestExchangeWithECCEK(t *testing.T) {
	tp := startSimulator(t, simOptions{}).open(t)
	key := newNodeKey(t)
	kf, err := tp.Seal(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, note, err := tp.evidence(kf, key.Public(), ekKinds()[1:])
	if err != nil || note != "" {
		t.Fatalf("evidence with the P-256 EK: %v %s", err, note)
	}
	ev = roundTrip(t, ev)
	if p, _ := ev.parts(); p == nil || p.ek.Type != tpm2.TPMAlgECC {
		t.Fatal("the evidence's EK is not the ECC one")
	}
	nodeID := key.Public().ID(identity.NodePrefix)
	v, err := Verify(ev, nodeID, key.Public(), Policy{EKSHA256: []string{ev.Binding.EKSHA256}})
	if err != nil {
		t.Fatal(err)
	}
	att, err := tp.Attestor(kf, ev)
	if err != nil {
		t.Fatal(err)
	}
	defer att.Close()
	ch, p, err := v.Challenge(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ans, err := att.Answer(ch)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Check(ans, time.Now()); err != nil {
		t.Fatalf("exchange with an ECC EK: %v", err)
	}
}
