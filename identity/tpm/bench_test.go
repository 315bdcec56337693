package tpm

import (
	"testing"
	"time"
)

// Targets (issue 17): start-up with a TPM under 2 s on swtpm; a fresh attestation
// exchange under 100 ms. Run: go test ./identity/tpm -run XXX -bench . -benchtime 20x

// BenchmarkStartup is what a TPM adds to a node's start: open the TPM, unseal the
// key, load and check the identity and the evidence, load the AK and the EK. With
// "ek=provisioned" the EK sits at its persistent handle (swtpm_setup, as on most
// machines); with "ek=derived" the TPM derives the RSA-2048 EK from its seed each time.
func BenchmarkStartup(b *testing.B) {
	for _, c := range []struct {
		name string
		opt  simOptions
	}{{"ek=provisioned", simOptions{EKCert: true}}, {"ek=derived", simOptions{}}} {
		b.Run(c.name, func(b *testing.B) {
			sim := startSimulator(b, c.opt)
			tp := sim.open(b)
			dir := b.TempDir()
			if _, err := Init(tp, dir, "bench", "", nil, time.Now()); err != nil {
				b.Fatal(err)
			}
			tp.Close()
			for b.Loop() {
				t, err := Open(sim.Addr)
				if err != nil {
					b.Fatal(err)
				}
				n, err := Load(t, dir)
				if err != nil {
					b.Fatal(err)
				}
				n.Close()
				t.Close()
			}
		})
	}
}

// BenchmarkUnseal is the unsealing alone (the TPM open): derive the SRK, load the
// sealed object, unseal in a salted session.
func BenchmarkUnseal(b *testing.B) {
	tp := startSimulator(b, simOptions{}).open(b)
	kf, err := tp.Seal(newNodeKey(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := tp.Unseal(kf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAttestationExchange is one fresh attestation, both sides, over the wire
// encodings: the verifier makes a challenge (TPM2_MakeCredential in software), the
// node activates it and quotes over the nonce, the verifier checks the answer.
func BenchmarkAttestationExchange(b *testing.B) {
	a := newAttestedNode(b, simOptions{EKCert: true})
	v, err := a.verify(a.policyCA(b))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		ch, p, err := v.Challenge(time.Now())
		if err != nil {
			b.Fatal(err)
		}
		cb, err := ch.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		ch2, err := ParseChallenge(cb)
		if err != nil {
			b.Fatal(err)
		}
		ans, err := a.node.Attestor.Answer(ch2)
		if err != nil {
			b.Fatal(err)
		}
		ab, err := ans.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		ans2, err := ParseAnswer(ab)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Check(ans2, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyEvidence is a peer checking a node's evidence (parse, AK signature,
// EK certificate chain), done once per peer at admission.
func BenchmarkVerifyEvidence(b *testing.B) {
	a := newAttestedNode(b, simOptions{EKCert: true})
	policy := a.policyCA(b)
	raw, err := a.node.Evidence.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		ev, err := ParseEvidence(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Verify(ev, a.node.ID(), a.node.Public(), policy); err != nil {
			b.Fatal(err)
		}
	}
}
