package trace

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
)

var update = flag.Bool("update", false, "rewrite testdata/vector.json")

func TestTraceOfADecisionVerifies(t *testing.T) {
	f := newFixture(t)
	b := f.build(t, f.outcome)
	c, err := Verify(b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := c.Decision
	if d == nil || d.Status != "decided" || *d.Outcome != "admit" || len(d.Ballots) != 2 {
		t.Fatalf("decision: %+v", d)
	}
	for _, cb := range d.Ballots {
		if cb.Record.Node != cb.Node || cb.Record.Action != "decision.ballot" || cb.Invocation == nil || cb.Invocation.Effect != "allow" {
			t.Fatalf("ballot of %s: %+v", cb.Node, cb)
		}
	}
	if len(c.Roots) != 2 || len(c.Nodes) != 2 || len(c.Records) != 6 {
		t.Fatalf("%d roots, %d nodes, %d records", len(c.Roots), len(c.Nodes), len(c.Records))
	}
	tr, _ := Parse(b)
	if i := slices.IndexFunc(tr.Logs, func(l Log) bool { return l.Node == f.b.ID() }); i < 0 || tr.Logs[i].Source != SourcePeer {
		t.Fatalf("B's log: %+v", tr.Logs)
	}
	for _, want := range []string{"decided, outcome admit", "second on " + f.b.ID(), "institution root " + f.o.Cert.RootID} {
		if !strings.Contains(c.String(), want) {
			t.Fatalf("the chain does not say %q:\n%s", want, c)
		}
	}
}

func TestTraceOfARemoteCallVerifies(t *testing.T) {
	f := newFixture(t)
	c, err := Verify(f.build(t, f.complete), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Calls) != 1 || c.Calls[0].TargetRecord == nil || c.Calls[0].TargetRecord.Node != f.b.ID() || c.Calls[0].Status != "ok" {
		t.Fatalf("call: %+v", c.Calls)
	}
	if !strings.Contains(c.String(), "served by "+f.b.ID()) {
		t.Fatalf("%s", c)
	}
}

// A node gives its records only to a node whose signed bytes they hold.
func TestServerGivesRecordsOnlyToParties(t *testing.T) {
	f := newFixture(t)
	s := f.server(t)
	r := f.reader(t, f.b, f.dirB)
	e, _ := r.Entry(context.Background(), f.ballotB)
	ref := PartRequest{Records: []Ref{{RecordHash: hexHash(e)}}}
	p, err := s.Part(context.Background(), f.o.ID(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Records) != 2 || p.Records[0].Index != f.ballotB {
		t.Fatalf("the ballot and its invocation: %d records", len(p.Records))
	}
	stranger := node(t, 0x12, 0x82, "stranger").ID()
	for _, who := range []string{stranger, f.b.ID()} {
		if _, err := s.Part(context.Background(), who, ref); !errors.Is(err, ErrNotAvailable) {
			t.Fatalf("%s asked for B's ballot record: %v", who, err)
		}
	}
	missing := PartRequest{Records: []Ref{{RecordHash: strings.Repeat("ab", 32)}}}
	if _, err := s.Part(context.Background(), f.o.ID(), missing); !errors.Is(err, ErrNotAvailable) {
		t.Fatalf("a record B does not hold: %v", err)
	}
}

// Every part of a trace, changed, fails verification naming that part.
func TestTamperingNamesThePart(t *testing.T) {
	f := newFixture(t)
	good := f.build(t, f.outcome)
	tr, _ := Parse(good)
	ballotB := slices.IndexFunc(tr.Records, func(r Record) bool {
		return r.Node == f.b.ID() && bytes.Contains(r.Entry, []byte(`"decision.ballot"`))
	})
	outcome := slices.IndexFunc(tr.Records, func(r Record) bool { return bytes.Contains(r.Entry, []byte(`"decision.outcome"`)) })
	cases := []struct {
		name, part string
		mutate     func(*Trace)
	}{
		{"subject", "subject", func(t *Trace) { t.Subject.RecordHash = strings.Repeat("0", 64) }},
		{"root key", "roots[0]", func(t *Trace) { t.Roots[0].Key.Ed25519 = flip64(t.Roots[0].Key.Ed25519) }},
		{"a root left out", "enrolled by root", func(t *Trace) { t.Roots = t.Roots[1:] }},
		{"certificate", "nodes[0]", func(t *Trace) { t.Nodes[0].Certificate.IssuedAt = "2020-01-01T00:00:00Z" }},
		{"a node's certificate left out", "no enrolment certificate", func(t *Trace) {
			t.Nodes = slices.DeleteFunc(t.Nodes, func(n Node) bool { return n.ID == f.b.ID() })
		}},
		{"checkpoint", "logs[1]", func(t *Trace) { t.Logs[1].Checkpoint = strings.Replace(t.Logs[1].Checkpoint, "\n", "\n1", 1) }},
		{"the contributor's own record", "records[" + itoa(ballotB) + "]", func(t *Trace) {
			t.Records[ballotB].Entry = bytes.Replace(t.Records[ballotB].Entry, []byte(`"alice@`), []byte(`"mallory@`), 1)
		}},
		{"the contributor's record left out", "decision.outcome", func(t *Trace) { t.Records = slices.Delete(t.Records, ballotB, ballotB+1) }},
		{"inclusion proof", "records[0]", func(t *Trace) { t.Records[0].InclusionProof = t.Records[0].InclusionProof[1:] }},
		{"outcome", "records[" + itoa(outcome) + "]", func(t *Trace) {
			t.Records[outcome].Entry = bytes.Replace(t.Records[outcome].Entry, []byte(`"status":"decided"`), []byte(`"status":"tie"`), 1)
		}},
	}
	for _, c := range cases {
		m, _ := Parse(good)
		c.mutate(m)
		b, err := Encode(m)
		if err != nil {
			if strings.Contains(err.Error(), c.part) {
				continue
			}
			t.Fatalf("%s: %v", c.name, err)
		}
		_, err = Verify(b, Options{})
		if err == nil || !strings.Contains(err.Error(), c.part) {
			t.Fatalf("%s: got %v, want an error naming %q", c.name, err, c.part)
		}
	}
	// One byte anywhere in the file.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		bad := slices.Clone(good)
		bad[rng.IntN(len(bad))] ^= byte(1 << rng.IntN(8))
		if _, err := Verify(bad, Options{}); err == nil {
			t.Fatalf("a trace with a flipped bit verifies")
		}
	}
}

func TestEvidenceIsCheckedOrReportedUnchecked(t *testing.T) {
	f := newFixture(t)
	if err := os.WriteFile(filepath.Join(f.dirB, EvidenceFile), []byte("tpm quote"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := f.build(t, f.outcome)
	c, err := Verify(b, Options{})
	if err != nil || len(c.Unchecked) != 1 || !strings.Contains(c.Unchecked[0], "attestation evidence") {
		t.Fatalf("evidence without a verifier: %v %v", err, c)
	}
	ok := func(node string, cert identity.Certificate, ev []byte) (string, error) { return "TPM 2.0 (test)", nil }
	if c, err := Verify(b, Options{Evidence: ok}); err != nil || len(c.Unchecked) != 0 {
		t.Fatalf("evidence with a verifier: %v %v", err, c.Unchecked)
	}
	bad := func(node string, cert identity.Certificate, ev []byte) (string, error) {
		return "", errors.New("quote does not verify")
	}
	if _, err := Verify(b, Options{Evidence: bad}); err == nil || !strings.Contains(err.Error(), "nodes[") || !strings.Contains(err.Error(), "quote does not verify") {
		t.Fatalf("evidence that does not verify: %v", err)
	}
}

func TestLimits(t *testing.T) {
	big := make([]byte, MaxTraceSize+1)
	if _, err := Parse(big); err == nil || !strings.Contains(err.Error(), "MaxTraceSize") {
		t.Fatalf("%v", err)
	}
	f := newFixture(t)
	tr, _ := Parse(f.build(t, f.outcome))
	for len(tr.Records) <= MaxRecords {
		r := tr.Records[0]
		r.Index += uint64(len(tr.Records)) * 1000
		tr.Records = append(tr.Records, r)
	}
	if _, err := Encode(tr); err == nil || !strings.Contains(err.Error(), "MaxRecords") {
		t.Fatalf("%v", err)
	}
	if _, err := ParsePartRequest([]byte(`{"records":[]}`)); err == nil || !strings.Contains(err.Error(), "MaxRecords") {
		t.Fatalf("%v", err)
	}
	for body, want := range map[string]string{
		`{"records":[{"record_hash":"` + strings.Repeat("a", 64) + `"}],"more":1}`:                        `unknown object member name "more"`,
		`{"records":[{"Record_hash":"` + strings.Repeat("a", 64) + `"}]}`:                                 `unknown object member name "Record_hash"`,
		`{"records":[{"record_hash":"` + strings.Repeat("a", 64) + `","index":1,"index":2}]}`:             `duplicate object member name "index"`,
		`{"records":[{"record_hash":"` + strings.Repeat("a", 64) + `"}],"records":[{"record_hash":"b"}]}`: `duplicate object member name "records"`,
	} {
		if _, err := ParsePartRequest([]byte(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("ParsePartRequest(%s) = %v, want %q", body, err, want)
		}
	}
}

// The published test vector (docs/trace.md) verifies, and reads back to its exact bytes.
func TestVector(t *testing.T) {
	path := filepath.Join("testdata", "vector.json")
	if *update {
		f := newFixture(t)
		if err := os.WriteFile(path, f.build(t, f.outcome), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Verify(b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Decision == nil || len(c.Decision.Ballots) != 2 || len(c.Roots) != 2 {
		t.Fatalf("the vector's chain: %s", c)
	}
	tr, _ := Parse(b)
	again, err := Encode(tr)
	if err != nil || !bytes.Equal(again, b) {
		t.Fatalf("the vector does not encode back to its bytes: %v", err)
	}
}

func flip64(s string) string {
	b, _ := base64.StdEncoding.DecodeString(s)
	b[3] ^= 0x40
	return base64.StdEncoding.EncodeToString(b)
}

func itoa(i int) string { return strconv.Itoa(i) }

func hexHash(entry []byte) string { return hex.EncodeToString(oar.RecordHash(entry)) }
