package decision

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json")

// Vectors is the published test-vector file described in docs/decisions.md.
// Regenerate with: go test ./decision -run TestVectors -update
type Vectors struct {
	Comment      string                 `json:"comment"`
	Roots        []KeyVector            `json:"roots"`
	Nodes        []KeyVector            `json:"nodes"`
	Certificates []identity.Certificate `json:"certificates"`
	Question     string                 `json:"question"`
	Request      MessageVector          `json:"request"`
	DecisionHash string                 `json:"decision_hash"`
	// ResponseFormat is what the vetoer pharmacology is asked to answer with.
	ResponseFormat json.RawMessage `json:"response_format"`
	Ballots        []BallotVector  `json:"ballots"`
	Outcome        MessageVector   `json:"outcome"`
}

type KeyVector struct {
	MLDSA65Seed string `json:"mldsa65_seed_hex"`
	Ed25519Seed string `json:"ed25519_seed_hex"`
	identity.PublicKeyJSON
	ID string `json:"id"`
}

// MessageVector is one signed message: its canonical bytes and the exact message both
// signatures cover (domain || 0x0A || canonical bytes without sig), which is UTF-8 text.
type MessageVector struct {
	Canonical     string `json:"canonical"`
	SignedMessage string `json:"signed_message"`
}

type BallotVector struct {
	MessageVector
	Rationale string `json:"rationale"`
	// Answer is the model's answer the ballot records (ParseAnswer).
	Answer string `json:"answer"`
	// Received is when the origin received it (for the late ballot).
	Received string `json:"received,omitempty"`
	// Counted is whether the outcome counts it; Reason why not.
	Counted bool   `json:"counted"`
	Reason  string `json:"reason,omitempty"`
}

func keyVector(k *identity.PrivateKey, prefix string, b byte) KeyVector {
	m, e := seeds(b)
	return KeyVector{MLDSA65Seed: hex.EncodeToString(m[:]), Ed25519Seed: hex.EncodeToString(e[:]), PublicKeyJSON: k.Public().JSON(), ID: k.Public().ID(prefix)}
}

func messageVector(t *testing.T, b []byte, domain string) MessageVector {
	t.Helper()
	// The signed bytes are the canonical message without its sig member.
	return MessageVector{Canonical: string(b), SignedMessage: string(identity.Message(domain, []byte(withoutMember(t, string(b), "sig"))))}
}

// generate builds every vector from fixed seeds and a fixed clock: a decision under the
// veto rule in which one answer does not parse, one ballot arrives twice and one late.
func generate(t *testing.T) *Vectors {
	f := newFixture(t)
	v := &Vectors{
		Comment: "decision-request/1, ballot/1 and decision-outcome/1 test vectors; see docs/decisions.md. Regenerate: go test ./decision -run TestVectors -update",
	}
	for i, r := range f.roots {
		v.Roots = append(v.Roots, keyVector(r, identity.RootPrefix, 0x10+byte(i)))
	}
	for i, k := range f.keys {
		v.Nodes = append(v.Nodes, keyVector(k, identity.NodePrefix, 0x80+byte(i)))
	}
	v.Certificates = f.certs
	v.Question = "Is the patient in bed 4 fit for discharge today?"
	rule := Rule{Name: RuleVeto, Vetoers: []string{"pharmacology", "evaluator@*"}}
	d := f.draft(rule)
	d.Panel.MinInstitutions = 2
	rb, err := SealRequest(f.keys[origin], d)
	if err != nil {
		t.Fatal(err)
	}
	req, err := ParseRequest(rb)
	if err != nil {
		t.Fatal(err)
	}
	v.Request, v.DecisionHash = messageVector(t, rb, RequestDomain), req.Hash()
	if v.ResponseFormat, err = ResponseFormat(req.Choices("pharmacology")); err != nil {
		t.Fatal(err)
	}
	answers := []struct {
		node     int
		brain    string
		answer   string
		received time.Duration
		reason   string
	}{
		{origin, "clinical-triage", `{"choice":"discharge","confidence":0.7,"rationale":"Observations stable for 48 hours."}`, 12 * time.Second, ""},
		{origin, "pharmacology", `{"choice":"veto:discharge","confidence":0.9,"rationale":"New anticoagulant started today: monitor for 24 hours."}`, 14 * time.Second, ""},
		{origin, "radiology-reporting", "```json\n{\"choice\":\"discharge\",\"confidence\":0.6,\"rationale\":\"Chest film clear.\"}\n```", 13 * time.Second, ""},
		{peerA, "clinical-coding", `I would discharge.`, 20 * time.Second, ""},
		{peerB, "evaluator", `{"choice":"admit","confidence":0.55,"rationale":"Medication risk outweighs bed pressure."}`, 30 * time.Second, ""},
		{peerB, "evaluator", "", 31 * time.Second, ReasonReplayed}, // the same bytes again
		{peerA, "evaluator", `{"choice":"discharge","confidence":0.8,"rationale":"Meets discharge criteria."}`, 61 * time.Second, ReasonLate},
	}
	var ballots []SignedBallot
	for i, a := range answers {
		var sb SignedBallot
		if a.answer == "" {
			sb = ballots[i-1]
			a.answer = answers[i-1].answer
		} else {
			seat, _ := req.Seat(f.ids[a.node], a.brain)
			ans := ParseAnswer(a.answer, req.Choices(seat))
			bb := ans.Ballot(req, f.ids[a.node], a.brain, "llama3.1:8b-instruct-q4_K_M", t0.Add(a.received-time.Second))
			b, err := SealBallot(f.keys[a.node], bb)
			if err != nil {
				t.Fatal(err)
			}
			sb = SignedBallot{Bytes: b, Rationale: ans.Rationale}
		}
		sb.Received = t0.Add(a.received)
		ballots = append(ballots, sb)
		v.Ballots = append(v.Ballots, BallotVector{MessageVector: messageVector(t, sb.Bytes, BallotDomain), Rationale: sb.Rationale,
			Answer: a.answer, Received: oar.FormatTime(sb.Received), Counted: a.reason == "", Reason: a.reason})
	}
	o, err := Count(req, ballots, f.dir, t0.Add(62*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ob, err := SealOutcome(f.keys[origin], o)
	if err != nil {
		t.Fatal(err)
	}
	v.Outcome = messageVector(t, ob, OutcomeDomain)
	return v
}

func TestVectors(t *testing.T) {
	path := filepath.Join("testdata", "vectors.json")
	got, err := json.MarshalIndent(generate(t), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date with the code: the format changed, or run with -update", path)
	}
}

// TestVectorsVerifyIndependently checks the published file from its own contents, as
// another implementation would: keys from seeds, certificates, signatures over the
// signed messages, hashes and digests, and then the outcome with VerifyOutcome and the
// keys the certificates certify.
func TestVectorsVerifyIndependently(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v Vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	keys := make(map[string]Contributor)
	for i, c := range v.Certificates {
		node, root, err := c.Verify()
		if err != nil {
			t.Fatalf("certificate %d: %v", i, err)
		}
		ms, _ := hex.DecodeString(v.Nodes[i].MLDSA65Seed)
		es, _ := hex.DecodeString(v.Nodes[i].Ed25519Seed)
		pk, _ := mldsa65.NewKeyFromSeed((*[mldsa65.SeedSize]byte)(ms))
		if !pk.Equal(node.MLDSA65) || !bytes.Equal(ed25519.NewKeyFromSeed(es).Public().(ed25519.PublicKey), node.Ed25519) {
			t.Fatalf("node %d: the seeds do not give the certified keys", i)
		}
		if node.ID(identity.NodePrefix) != v.Nodes[i].ID || c.NodeID != v.Nodes[i].ID {
			t.Fatalf("node %d: id mismatch", i)
		}
		keys[c.NodeID] = Contributor{Key: node, Institution: root.ID(identity.RootPrefix)}
	}
	dir := func(n string) (Contributor, bool) { c, ok := keys[n]; return c, ok }
	checkSigned := func(name string, m MessageVector, signer string, domain string) {
		t.Helper()
		if !jcs.IsCanonical([]byte(m.Canonical)) {
			t.Fatalf("%s is not canonical", name)
		}
		msg := []byte(m.SignedMessage)
		if !bytes.HasPrefix(msg, []byte(domain+"\n")) || !strings.Contains(m.Canonical, `"sig":{`) {
			t.Fatalf("%s: signed message does not start with its domain, or the message has no sig", name)
		}
		var s struct {
			Sig identity.Signature `json:"sig"`
		}
		if err := json.Unmarshal([]byte(m.Canonical), &s); err != nil {
			t.Fatal(err)
		}
		k := keys[signer].Key
		if !mldsa65.Verify(k.MLDSA65, msg, nil, s.Sig.MLDSA65) || !ed25519.Verify(k.Ed25519, msg, s.Sig.Ed25519) {
			t.Fatalf("%s: signatures do not verify over signed_message", name)
		}
	}
	var rq struct {
		Origin         string `json:"origin"`
		QuestionDigest string `json:"question_digest"`
	}
	json.Unmarshal([]byte(v.Request.Canonical), &rq)
	checkSigned("request", v.Request, rq.Origin, "decision-request/1 request")
	if sum := sha256.Sum256([]byte(v.Question)); hex.EncodeToString(sum[:]) != rq.QuestionDigest {
		t.Fatal("question_digest is not the SHA-256 of the question")
	}
	h := sha256.Sum256(append([]byte("decision-request/1 hash\n"), v.Request.Canonical...))
	if hex.EncodeToString(h[:]) != v.DecisionHash {
		t.Fatal("decision_hash is not SHA-256(domain || 0x0A || request)")
	}
	counted := 0
	for i, b := range v.Ballots {
		var x struct {
			Node, Decision  string
			RationaleDigest string `json:"rationale_digest"`
		}
		json.Unmarshal([]byte(b.Canonical), &x)
		checkSigned("ballot", b.MessageVector, x.Node, "ballot/1 ballot")
		if sum := sha256.Sum256([]byte(b.Rationale)); hex.EncodeToString(sum[:]) != x.RationaleDigest || x.Decision != v.DecisionHash {
			t.Fatalf("ballot %d: rationale_digest or decision does not match", i)
		}
		if b.Counted {
			counted++
		}
	}
	var oc struct {
		Request json.RawMessage   `json:"request"`
		Ballots []json.RawMessage `json:"ballots"`
	}
	json.Unmarshal([]byte(v.Outcome.Canonical), &oc)
	checkSigned("outcome", v.Outcome, rq.Origin, "decision-outcome/1 outcome")
	if string(oc.Request) != v.Request.Canonical || len(oc.Ballots) != counted {
		t.Fatal("the outcome does not hold the request and the counted ballots")
	}
	o, err := VerifyOutcome([]byte(v.Outcome.Canonical), dir)
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != StatusDecided || *o.Result != "admit" {
		t.Fatalf("the vector outcome is %s %v, want decided admit (docs/decisions.md, test vectors)", o.Status, o.Result)
	}
}
