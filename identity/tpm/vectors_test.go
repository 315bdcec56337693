package tpm

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var updateVectors = flag.Bool("update", false, "rewrite testdata/vectors.json from a fresh swtpm")

// vectors are real outputs of a swtpm-backed node, for implementers of verifiers
// (docs/attestation.md) and as the fuzzers' seeds. Regenerate with swtpm installed:
//
//	go test ./identity/tpm -run TestVectors -update
type vectors struct {
	Comment string `json:"comment"`
	// The documents are strings holding their exact bytes. Evidence is a node's
	// evidence (canonical JSON, as published); EKCAPEM the
	// swtpm-localca certificates its EK certificate chains to.
	Evidence string `json:"evidence"`
	EKCAPEM  string `json:"ek_ca_pem"`
	// Challenge, with the secret the verifier made its credential from, and Answer,
	// the node's reply to it.
	Challenge string `json:"challenge"`
	Secret    []byte `json:"secret"`
	Answer    string `json:"answer"`
	// KeyFile is the node's sealed key file (useless without that swtpm's state).
	KeyFile string `json:"key_file"`
}

const vectorsPath = "testdata/vectors.json"

func TestVectors(t *testing.T) {
	if *updateVectors {
		writeVectors(t)
	}
	b, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatalf("%v (run with -update and swtpm installed to create it)", err)
	}
	var vec vectors
	if err := json.Unmarshal(b, &vec); err != nil {
		t.Fatal(err)
	}
	ev, err := ParseEvidence([]byte(vec.Evidence))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ev.Binding.PublicKeyJSON.Parse()
	if err != nil {
		t.Fatal(err)
	}
	pool, _, err := ParseEKCAs([]byte(vec.EKCAPEM))
	if err != nil {
		t.Fatal(err)
	}
	v, err := Verify(ev, ev.Binding.NodeID, keys, Policy{CAs: pool})
	if err != nil {
		t.Fatalf("the vector evidence does not verify: %v", err)
	}
	ch, err := ParseChallenge([]byte(vec.Challenge))
	if err != nil {
		t.Fatal(err)
	}
	ans, err := ParseAnswer([]byte(vec.Answer))
	if err != nil {
		t.Fatal(err)
	}
	// The verifier's side of that exchange, as it was when it sent the challenge.
	p := &Pending{v: v, nonce: ch.Nonce, secret: vec.Secret, made: time.Now()}
	if _, err := p.Check(ans, time.Now()); err != nil {
		t.Fatalf("the vector answer does not check: %v", err)
	}
	if _, err := ParseKeyFile([]byte(vec.KeyFile)); err != nil {
		t.Fatalf("the vector key file does not parse: %v", err)
	}
}

func writeVectors(t *testing.T) {
	a := newAttestedNode(t, simOptions{EKCert: true})
	v, err := a.verify(a.policyCA(t))
	if err != nil {
		t.Fatal(err)
	}
	ch, p, err := v.Challenge(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ans, err := a.node.Attestor.Answer(ch)
	if err != nil {
		t.Fatal(err)
	}
	vec := vectors{Comment: "sios-tpm-evidence/1, challenge and answer test vectors from swtpm; see docs/attestation.md. " +
		"Regenerate: go test ./identity/tpm -run TestVectors -update", EKCAPEM: string(a.sim.CAPEM), Secret: p.secret}
	kf, err := ReadKeyFile(a.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		dst *string
		enc func() ([]byte, error)
	}{{&vec.Evidence, a.node.Evidence.Marshal}, {&vec.Challenge, ch.Marshal}, {&vec.Answer, ans.Marshal}, {&vec.KeyFile, kf.Marshal}} {
		b, err := d.enc()
		if err != nil {
			t.Fatal(err)
		}
		*d.dst = string(b)
	}
	out, err := json.MarshalIndent(vec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(vectorsPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vectorsPath, append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}
