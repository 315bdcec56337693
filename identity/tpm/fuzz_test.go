package tpm

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
)

func tpm2Marshal(pub *tpm2.TPMTPublic) []byte { return tpm2.Marshal(pub) }

func mustPublic(t *testing.T, b []byte) tpm2.TPMTPublic {
	pub, err := parsePublic(b)
	if err != nil {
		t.Fatal(err)
	}
	return *pub
}

// The fuzzers' seeds are the test vectors (real swtpm outputs) and a few near misses.

func readVectors(f testing.TB) vectors {
	f.Helper()
	b, err := os.ReadFile(vectorsPath)
	if err != nil {
		f.Fatal(err)
	}
	var vec vectors
	if err := json.Unmarshal(b, &vec); err != nil {
		f.Fatal(err)
	}
	return vec
}

// nearMisses are variants of a canonical document that must be refused: a repeated
// member, an unknown member, whitespace.
func nearMisses(doc string) []string {
	return []string{
		doc,
		`{"v":"x",` + doc[1:],
		doc[:len(doc)-1] + `,"zz":1}`,
		" " + doc,
		"{}",
		"null",
	}
}

// FuzzParseEvidence: whatever ParseEvidence accepts re-encodes to exactly its input,
// and whatever Verify accepts for the vector's node binds what the vector binds.
func FuzzParseEvidence(f *testing.F) {
	vec := readVectors(f)
	for _, s := range nearMisses(vec.Evidence) {
		f.Add([]byte(s))
	}
	seed, err := ParseEvidence([]byte(vec.Evidence))
	if err != nil {
		f.Fatal(err)
	}
	keys, err := seed.Binding.PublicKeyJSON.Parse()
	if err != nil {
		f.Fatal(err)
	}
	pool, _, err := ParseEKCAs([]byte(vec.EKCAPEM))
	if err != nil {
		f.Fatal(err)
	}
	policy := Policy{EKSHA256: []string{seed.Binding.EKSHA256}, CAs: pool}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := ParseEvidence(b)
		if err != nil {
			return
		}
		again, err := ev.Marshal()
		if err != nil {
			t.Fatalf("accepted evidence does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("parse-then-encode changed the evidence:\n%s\n%s", b, again)
		}
		// Whatever verifies for the vector's node binds what the vector binds: its AK
		// signed only that statement. (ECDSA signatures are malleable, so another
		// binding_signature may verify; the statement may not differ.)
		if v, err := Verify(ev, seed.Binding.NodeID, keys, policy); err == nil {
			if ev.Binding != seed.Binding || !bytes.Equal(ev.AKPublic, seed.AKPublic) || !bytes.Equal(ev.EKPublic, seed.EKPublic) || v.EKSHA256 != seed.Binding.EKSHA256 {
				t.Fatalf("evidence binding other things verified for the vector's node:\n%s", b)
			}
		}
	})
}

// FuzzParseChallenge: whatever ParseChallenge accepts re-encodes to exactly its input.
func FuzzParseChallenge(f *testing.F) {
	vec := readVectors(f)
	for _, s := range nearMisses(vec.Challenge) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseChallenge(b)
		if err != nil {
			return
		}
		again, err := c.Marshal()
		if err != nil {
			t.Fatalf("accepted challenge does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("parse-then-encode changed the challenge:\n%s\n%s", b, again)
		}
	})
}

// FuzzParseAnswer: whatever ParseAnswer accepts re-encodes to exactly its input, and
// Check accepts nothing but the vector's answer.
func FuzzParseAnswer(f *testing.F) {
	vec := readVectors(f)
	for _, s := range nearMisses(vec.Answer) {
		f.Add([]byte(s))
	}
	ev, err := ParseEvidence([]byte(vec.Evidence))
	if err != nil {
		f.Fatal(err)
	}
	keys, err := ev.Binding.PublicKeyJSON.Parse()
	if err != nil {
		f.Fatal(err)
	}
	v, err := Verify(ev, ev.Binding.NodeID, keys, Policy{EKSHA256: []string{ev.Binding.EKSHA256}})
	if err != nil {
		f.Fatal(err)
	}
	ch, err := ParseChallenge([]byte(vec.Challenge))
	if err != nil {
		f.Fatal(err)
	}
	want, err := ParseAnswer([]byte(vec.Answer))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAnswer(b)
		if err != nil {
			return
		}
		again, err := a.Marshal()
		if err != nil {
			t.Fatalf("accepted answer does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("parse-then-encode changed the answer:\n%s\n%s", b, again)
		}
		// Only the vector's quote and secret pass (its signature may be re-encoded
		// as the other valid ECDSA signature).
		p := &Pending{v: v, nonce: ch.Nonce, secret: vec.Secret, made: time.Now()}
		if _, err := p.Check(a, time.Now()); err == nil {
			if !bytes.Equal(a.Quote, want.Quote) || !bytes.Equal(a.Secret, want.Secret) || !reflect.DeepEqual(a.PCRs, want.PCRs) {
				t.Fatalf("an answer other than the vector's checked:\n%s", b)
			}
		}
	})
}

// FuzzParseKeyFile: whatever ParseKeyFile accepts encodes to a file that parses to the
// same key file.
func FuzzParseKeyFile(f *testing.F) {
	vec := readVectors(f)
	f.Add([]byte(vec.KeyFile))
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(vec.KeyFile)); err != nil {
		f.Fatal(err)
	}
	for _, s := range nearMisses(compact.String()) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		kf, err := ParseKeyFile(b)
		if err != nil {
			return
		}
		again, err := kf.Marshal()
		if err != nil {
			t.Fatalf("accepted key file does not encode: %v", err)
		}
		kf2, err := ParseKeyFile(again)
		if err != nil {
			t.Fatalf("re-encoded key file does not parse: %v", err)
		}
		if !reflect.DeepEqual(kf, kf2) {
			t.Fatalf("parse-encode-parse changed the key file:\n%+v\n%+v", kf, kf2)
		}
	})
}

// FuzzTPMStructures feeds the binary TPM structures carried in evidence and answers
// (TPMT_PUBLIC, TPMT_SIGNATURE, TPMS_ATTEST) to their parsers straight, past the JSON
// layer: what is accepted re-encodes to its input, and checking it never panics.
func FuzzTPMStructures(f *testing.F) {
	vec := readVectors(f)
	ev, err := ParseEvidence([]byte(vec.Evidence))
	if err != nil {
		f.Fatal(err)
	}
	ans, err := ParseAnswer([]byte(vec.Answer))
	if err != nil {
		f.Fatal(err)
	}
	for _, b := range [][]byte{ev.EKPublic, ev.AKPublic, ev.BindingSignature, ans.Quote, ans.QuoteSignature} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if pub, err := parsePublic(b); err == nil {
			ekPublicKey(*pub)
			akPublicKey(*pub)
			if !bytes.Equal(tpm2Marshal(pub), b) {
				t.Fatal("accepted public area re-encodes otherwise")
			}
		}
		if sig, err := parseSignature(b); err == nil {
			if k, err := akPublicKey(mustPublic(t, ev.AKPublic)); err == nil {
				verifyECDSA(k, *sig, b)
			}
		}
		a := *ans
		a.Quote = b
		a.quote()
	})
}
