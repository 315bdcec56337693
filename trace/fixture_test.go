package trace

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/sios-project/sios/decision"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/oar"
	"k8s.io/klog/v2"
)

// The fixture is a decision and a remote call between two nodes of two institutions,
// written to two real ledgers with the records the node writes: origin O holds
// decision.request, its own brain's brain.invoke and decision.ballot, the
// decision.outcome, and a remote call's brain.invoke and brain.complete; contributor B
// holds its brain.invoke (with O's envelope) and decision.ballot, and its record of
// the remote call.

func seeds(b byte) ([mldsa65.SeedSize]byte, [ed25519.SeedSize]byte) {
	var m [mldsa65.SeedSize]byte
	var e [ed25519.SeedSize]byte
	for i := range m {
		m[i], e[i] = b+byte(i), b^byte(i)^0x5a
	}
	return m, e
}

type fixture struct {
	o, b         *identity.Node
	dirO, dirB   string
	outcome      uint64 // index of O's decision.outcome record
	complete     uint64 // index of O's brain.complete record of the remote call
	ballotB      uint64 // index of B's decision.ballot record
	request      []byte
	ballotOfB    []byte
	outcomeBytes []byte
}

func node(t testing.TB, rootSeed, nodeSeed byte, name string) *identity.Node {
	t.Helper()
	m, e := seeds(rootSeed)
	root := identity.KeyFromSeeds(identity.KindRoot, m, e)
	m, e = seeds(nodeSeed)
	k := identity.KeyFromSeeds(identity.KindNode, m, e)
	cert, err := identity.Issue(root, k.Public(), name, time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return &identity.Node{Key: k, Cert: cert, Root: root.Public()}
}

func appendRec(t testing.TB, l *ledger.Ledger, rec *oar.Record) *oar.Receipt {
	t.Helper()
	rc, _, err := l.Append(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{o: node(t, 0x10, 0x80, "origin"), b: node(t, 0x11, 0x81, "contributor"), dirO: t.TempDir(), dirB: t.TempDir()}
	lo, err := ledger.Open(ctx, filepath.Join(f.dirO, "ledger"), f.o, ledger.Options{CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	lb, err := ledger.Open(ctx, filepath.Join(f.dirB, "ledger"), f.b, ledger.Options{CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	question := "Discharge the patient in bed 4?"
	raw, err := decision.SealRequest(f.o.Key, decision.Request{Origin: f.o.ID(), Issued: oar.FormatTime(now), Deadline: oar.FormatTime(now.Add(time.Minute)),
		Classification: "OFFICIAL-SENSITIVE", QuestionDigest: decision.QuestionDigest(question), Options: []string{"discharge", "admit"},
		Rule: decision.Rule{Name: decision.RulePlurality}, Panel: decision.Panel{Members: []string{"triage", "second@*"}}})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := decision.ParseRequest(raw)
	f.request = raw
	actor := oar.Actor{ID: "alice", Clearance: "SECRET"}
	allow := &oar.Decision{Effect: "allow", Policies: []string{"permit-tenant-members"}}

	// B: its brain runs for O's envelope, and B records its ballot.
	env, err := fleet.SealEnvelope(f.o.Key, fleet.Envelope{Origin: f.o.ID(), Target: f.b.ID(), Issued: oar.FormatTime(now),
		Expires: req.Deadline, Principal: "alice", Tenant: "default", Clearance: "SECRET", Classification: "OFFICIAL-SENSITIVE",
		Brain: "second", PayloadDigest: hex.EncodeToString(make([]byte, 32))})
	if err != nil {
		t.Fatal(err)
	}
	peerActor := oar.Actor{ID: "alice@" + f.o.ID(), Clearance: "SECRET"}
	invB := appendRec(t, lb, &oar.Record{Tenant: "default@" + f.o.Cert.RootID, Actor: peerActor, Action: oar.ActionBrainInvoke,
		Resource: "brain/second", Decision: allow, Classification: "OFFICIAL-SENSITIVE", Parties: []json.RawMessage{env}})
	f.ballotOfB, err = decision.SealBallot(f.b.Key, decision.Answer{Choice: "admit", Confidence: 800, Rationale: "stable"}.Ballot(req, f.b.ID(), "second", "m-second", now))
	if err != nil {
		t.Fatal(err)
	}
	bb := appendRec(t, lb, &oar.Record{Tenant: "default@" + f.o.Cert.RootID, Actor: peerActor, Action: oar.ActionDecisionBallot,
		Resource: "decision/" + req.Hash(), Decision: allow, Classification: "OFFICIAL-SENSITIVE",
		Links: []oar.Link{{Rel: "invocation", RecordHash: invB.RecordHash}}, Parties: []json.RawMessage{raw, f.ballotOfB}})
	f.ballotB = bb.Index

	// O: the request, its own brain's ballot, the outcome.
	reqRec := appendRec(t, lo, &oar.Record{Tenant: "default", Actor: actor, Action: oar.ActionDecisionRequest, Resource: "decision/" + req.Hash(),
		Decision: allow, Classification: "OFFICIAL-SENSITIVE", Parties: []json.RawMessage{raw}})
	invO := appendRec(t, lo, &oar.Record{Tenant: "default", Actor: actor, Action: oar.ActionBrainInvoke, Resource: "brain/triage",
		Decision: allow, Classification: "OFFICIAL-SENSITIVE"})
	ballotO, _ := decision.SealBallot(f.o.Key, decision.Answer{Choice: "admit", Confidence: 700, Rationale: "fine"}.Ballot(req, f.o.ID(), "triage", "m-triage", now))
	bo := appendRec(t, lo, &oar.Record{Tenant: "default", Actor: actor, Action: oar.ActionDecisionBallot, Resource: "decision/" + req.Hash(),
		Decision: allow, Classification: "OFFICIAL-SENSITIVE", Links: []oar.Link{{Rel: "invocation", RecordHash: invO.RecordHash}},
		Parties: []json.RawMessage{raw, ballotO}})
	dir := func(n string) (decision.Contributor, bool) {
		for _, x := range []*identity.Node{f.o, f.b} {
			if x.ID() == n {
				return decision.Contributor{Key: x.Public(), Institution: x.Cert.RootID}, true
			}
		}
		return decision.Contributor{}, false
	}
	out, err := decision.Count(req, []decision.SignedBallot{{Bytes: ballotO}, {Bytes: f.ballotOfB}}, dir, now)
	if err != nil {
		t.Fatal(err)
	}
	f.outcomeBytes, err = decision.SealOutcome(f.o.Key, out)
	if err != nil {
		t.Fatal(err)
	}
	detail := fmt.Sprintf(`{"ballots":[{"brain":"triage","index":%d,"node":%q,"record_hash":%q},{"brain":"second","index":%d,"node":%q,"record_hash":%q}],"decision":%q}`,
		bo.Index, f.o.ID(), bo.RecordHash, bb.Index, f.b.ID(), bb.RecordHash, req.Hash())
	oc := appendRec(t, lo, &oar.Record{Tenant: "default", Actor: actor, Action: oar.ActionDecisionOutcome, Resource: "decision/" + req.Hash(),
		Decision: allow, Classification: "OFFICIAL-SENSITIVE", Outputs: []oar.Digest{oar.DigestOf("outcome", f.outcomeBytes)},
		Links:   []oar.Link{{Rel: "request", RecordHash: reqRec.RecordHash}, {Rel: "ballot", RecordHash: bo.RecordHash}, {Rel: "ballot", RecordHash: bb.RecordHash}},
		Parties: []json.RawMessage{f.outcomeBytes}, Detail: json.RawMessage(detail)})
	f.outcome = oc.Index

	// A remote call: O's admission and completion, B's record of serving it.
	env2, _ := fleet.SealEnvelope(f.o.Key, fleet.Envelope{Origin: f.o.ID(), Target: f.b.ID(), Issued: oar.FormatTime(now),
		Expires: oar.FormatTime(now.Add(time.Minute)), Principal: "alice", Tenant: "default", Clearance: "SECRET", Classification: "OFFICIAL",
		Brain: "second", PayloadDigest: hex.EncodeToString(make([]byte, 32))})
	served := appendRec(t, lb, &oar.Record{Tenant: "default@" + f.o.Cert.RootID, Actor: peerActor, Action: oar.ActionBrainInvoke,
		Resource: "brain/second", Decision: allow, Classification: "OFFICIAL", Parties: []json.RawMessage{env2}})
	output := "0f" + hex.EncodeToString(make([]byte, 31))
	reply, err := fleet.SealReply(f.b.Key, fleet.Reply{Call: fleet.CallHash(env2), Responder: f.b.ID(), Time: oar.FormatTime(now),
		Status: fleet.ReplyOK, Decision: allow, OutputDigest: output, Record: served.RecordHash})
	if err != nil {
		t.Fatal(err)
	}
	adm := appendRec(t, lo, &oar.Record{Tenant: "default", Actor: actor, Action: oar.ActionBrainInvoke, Resource: "brain/second",
		Decision: allow, Classification: "OFFICIAL"})
	cr := appendRec(t, lo, &oar.Record{Tenant: "default", Actor: actor, Action: oar.ActionBrainComplete, Resource: "brain/second",
		Links: []oar.Link{{Rel: "admission", RecordHash: adm.RecordHash}}, Outputs: []oar.Digest{{Name: "remote_output", SHA256: output}},
		Parties: []json.RawMessage{env2, reply}})
	f.complete = cr.Index
	if err := lo.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lb.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) reader(t testing.TB, n *identity.Node, dir string) *ledger.Reader {
	t.Helper()
	r, err := ledger.OpenReader(filepath.Join(dir, "ledger"), n.ID(), n.Public())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// server is B answering O's requests for B's parts.
func (f *fixture) server(t testing.TB) *Server {
	return &Server{Identity: f.b, DataDir: f.dirB, Size: func() uint64 { return 0 },
		OpenLog: func() (*ledger.Reader, error) { return f.reader(t, f.b, f.dirB), nil }}
}

// peerSource gives B's parts as B serves them to O.
type peerSource struct {
	s    *Server
	from string
}

func (p peerSource) Part(ctx context.Context, node string, req PartRequest) (*Part, string, error) {
	if node != p.s.Identity.ID() {
		return nil, "", fmt.Errorf("no such peer %s", node)
	}
	part, err := p.s.Part(ctx, p.from, req)
	return part, SourcePeer, err
}

// build is O's trace of one of its records.
func (f *fixture) build(t testing.TB, idx uint64) []byte {
	t.Helper()
	b := &Builder{Certificate: f.o.Cert, Log: f.reader(t, f.o, f.dirO), Source: peerSource{f.server(t), f.o.ID()}}
	out, err := b.Build(context.Background(), SubjectRef{Index: &idx})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMain keeps Tessera's logging (klog) off the test output.
func TestMain(m *testing.M) {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("stderrthreshold", "FATAL")
	klog.SetOutput(io.Discard)
	flag.Parse()
	os.Exit(m.Run())
}
