package deliberate

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/decision"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// The package's own tests: the checks a contributor makes before anything runs, the
// checks of a decision before anything is recorded, the payload's form, and that a
// BRAIN@* seat goes to the peer Count would keep. Decisions end to end, through real
// nodes, are tested in cmd/sios (decide_test.go, decide_fleet_test.go).

func key(b byte, kind string) *identity.PrivateKey {
	var m [mldsa65.SeedSize]byte
	var e [ed25519.SeedSize]byte
	for i := range m {
		m[i], e[i] = b+byte(i), b^byte(i)
	}
	return identity.KeyFromSeeds(kind, m, e)
}

func testNode(t *testing.T, b byte, name string) *identity.Node {
	t.Helper()
	root := key(b, identity.KindRoot)
	k := key(b+0x40, identity.KindNode)
	cert, err := identity.Issue(root, k.Public(), name, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &identity.Node{Key: k, Cert: cert, Root: root.Public()}
}

const testBrains = `id: juror
kind: domain
title: Juror
description: A brain that may sit on panels.
system_prompt: Decide.
classification: OFFICIAL
arbitration: true
---
id: bystander
kind: domain
title: Bystander
description: A brain that may not.
system_prompt: Watch.
classification: OFFICIAL
`

// service is a contributor that knows origin's identity through its fleet log.
func service(t *testing.T, self, origin *identity.Node) *Service {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "brains"), 0o700)
	os.WriteFile(filepath.Join(dir, "brains", "test.yaml"), []byte(testBrains), 0o600)
	os.MkdirAll(filepath.Join(dir, "panels"), 0o700)
	os.WriteFile(filepath.Join(dir, "panels", "jury.yaml"), []byte("id: jury\nmembers: [juror, other@*]\n"), 0o600)
	cat, err := brain.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	panels, err := decision.LoadPanels(dir, cat)
	if err != nil {
		t.Fatal(err)
	}
	log := fleet.NewLog()
	if origin != nil {
		pub, err := fleet.OpenPublisher(t.TempDir(), origin, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		trust := fleet.NewTrust(origin.Root)
		for _, rec := range pub.Records(0) {
			if _, err := log.Add(rec, trust); err != nil {
				t.Fatal(err)
			}
		}
	}
	return New(Config{Identity: self, Brains: brain.NewLive(cat), Panels: panels, FleetLog: log})
}

// request is origin's signed request to a panel with self's juror on it.
func request(t *testing.T, origin, self *identity.Node, question string, edit func(*decision.Request)) []byte {
	t.Helper()
	now := time.Now()
	r := decision.Request{Origin: origin.ID(), Issued: oar.FormatTime(now), Deadline: oar.FormatTime(now.Add(time.Minute)),
		Classification: "OFFICIAL", QuestionDigest: decision.QuestionDigest(question), Options: []string{"yes", "no"},
		Rule: decision.Rule{Name: decision.RulePlurality}, Panel: decision.Panel{Members: []string{"juror", "juror@" + self.ID()}}}
	if edit != nil {
		edit(&r)
	}
	b, err := decision.SealRequest(origin.Key, r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// grant is origin's consent grant, for alice of tenant default, letting her data go to
// brain at self's institution; edit changes it before it is signed.
func grant(t *testing.T, origin, self *identity.Node, brainID string, edit func(*consent.Grant)) *consent.Grant {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	g := consent.Grant{ID: consent.NewID(), Grantor: consent.Grantor{Principal: "alice", Tenant: "default", Clearance: policy.Secret},
		Origin:   consent.Origin{Node: origin.ID(), Institution: origin.Cert.RootID},
		Audience: consent.Audience{Institution: self.Cert.RootID},
		Scope:    consent.Scope{Action: consent.ActionInvoke, Brain: brainID, Max: policy.OfficialSensitive},
		Purpose:  "a second opinion", Issued: oar.FormatTime(now), Expires: oar.FormatTime(now.Add(time.Hour))}
	if edit != nil {
		edit(&g)
	}
	raw, err := consent.Sign(origin.Key, g)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := consent.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return parsed
}

// Every check a contributor makes before its brain runs refuses with its own code, and
// nothing reaches the pipeline (this service has none: reaching it would panic).
func TestContributeRefusesBeforeTheBrainRuns(t *testing.T) {
	origin, self, stranger := testNode(t, 1, "origin"), testNode(t, 2, "self"), testNode(t, 3, "stranger")
	s := service(t, self, origin)
	// origin is of another institution than self: its principal works here in a tenant
	// qualified by its root, and asks only under a grant.
	pr := &policy.Principal{ID: "alice@" + origin.ID(), Tenant: "default@" + origin.Cert.RootID, Clearance: policy.Secret}
	q := "Is it safe?"
	good := request(t, origin, self, q, nil)
	peer := &invoke.PeerCall{Origin: origin.ID(), Grant: grant(t, origin, self, "juror", nil)}
	under := func(g *consent.Grant) *invoke.PeerCall { return &invoke.PeerCall{Origin: origin.ID(), Grant: g} }
	secret := request(t, origin, self, q, func(r *decision.Request) { r.Classification = "SECRET" })
	answeredReq := request(t, origin, self, q, nil)
	parsed, _ := decision.ParseRequest(answeredReq)
	s.answered.take(parsed.Hash(), "juror", time.Now().Add(time.Minute), time.Now())
	past := time.Now().Add(-time.Hour)
	cases := []struct {
		name string
		c    Contribution
		code invoke.Code
		msg  string
	}{
		{"not a request", Contribution{Request: []byte(`{"v":"decision-request/1"}`), Question: q, Brain: "juror"}, invoke.CodeInvalidPayload, "decision request"},
		{"another node's request", Contribution{Request: good, Question: q, Brain: "juror", Peer: &invoke.PeerCall{Origin: stranger.ID()}}, invoke.CodeEnvelopeForged, "not the calling node's"},
		{"an unknown origin", Contribution{Request: request(t, stranger, self, q, nil), Question: q, Brain: "juror"}, invoke.CodePeerUntrusted, "no enrolled key"},
		{"signed by another key", Contribution{Request: func() []byte {
			b := bytes.Clone(good)
			i := bytes.Index(b, []byte(`"ed25519":"`)) + len(`"ed25519":"`) + 1
			if b[i] == 'A' {
				b[i] = 'B'
			} else {
				b[i] = 'A'
			}
			return b
		}(), Question: q, Brain: "juror", Peer: peer}, invoke.CodeEnvelopeForged, "does not verify"},
		{"another question", Contribution{Request: good, Question: "Is it not?", Brain: "juror", Peer: peer}, invoke.CodePayloadMismatch, "question_digest"},
		{"another classification", Contribution{Request: good, Question: q, Brain: "juror", Peer: peer, Classification: "SECRET"}, invoke.CodeInvalidPayload, "marked SECRET"},
		{"past its deadline", Contribution{Request: request(t, origin, self, q, func(r *decision.Request) {
			r.Issued, r.Deadline = oar.FormatTime(past), oar.FormatTime(past.Add(time.Minute))
		}), Question: q, Brain: "juror", Peer: peer}, invoke.CodeEnvelopeRefused, "has passed"},
		{"no seat", Contribution{Request: request(t, origin, self, q, func(r *decision.Request) { r.Panel.Members = []string{"juror", "other@*"} }),
			Question: q, Brain: "bystander", Peer: peer}, invoke.CodeInvalidPayload, "no seat"},
		{"no such brain", Contribution{Request: request(t, origin, self, q, func(r *decision.Request) { r.Panel.Members = []string{"juror", "ghost@*"} }),
			Question: q, Brain: "ghost", Peer: peer}, invoke.CodeModelNotFound, "no brain"},
		{"a brain that may not sit", Contribution{Request: request(t, origin, self, q, func(r *decision.Request) { r.Panel.Members = []string{"juror", "bystander@*"} }),
			Question: q, Brain: "bystander", Peer: peer}, invoke.CodePolicyDenied, "arbitration: true"},
		{"answered already", Contribution{Request: answeredReq, Question: q, Brain: "juror", Peer: peer}, invoke.CodeEnvelopeRefused, "already answered"},
		// A question from another institution comes only under its principal's grant
		// for this node, this brain, her tenant and the request's classification.
		{"no consent grant", Contribution{Request: good, Question: q, Brain: "juror", Peer: &invoke.PeerCall{Origin: origin.ID()}},
			invoke.CodeConsentRequired, "carries none"},
		{"a grant for another brain", Contribution{Request: good, Question: q, Brain: "juror", Peer: under(grant(t, origin, self, "bystander", nil))},
			invoke.Code(consent.CodeOutOfScope), "covers brain bystander"},
		{"a grant for another institution", Contribution{Request: good, Question: q, Brain: "juror", Peer: under(grant(t, origin, self, "juror",
			func(g *consent.Grant) { g.Audience.Institution = stranger.Cert.RootID }))}, invoke.Code(consent.CodeWrongAudience), "is for institution"},
		{"a grant of another tenant's", Contribution{Request: good, Question: q, Brain: "juror", Peer: under(grant(t, origin, self, "juror",
			func(g *consent.Grant) { g.Grantor.Tenant = "research" }))}, invoke.Code(consent.CodeOutOfScope), "tenant research"},
		{"a grant of another origin's", Contribution{Request: good, Question: q, Brain: "juror", Peer: under(grant(t, stranger, self, "juror", nil))},
			invoke.Code(consent.CodeOutOfScope), "covers data from node " + stranger.ID()},
		{"a question above the grant's maximum", Contribution{Request: secret, Question: q, Brain: "juror", Peer: peer},
			invoke.Code(consent.CodeAboveMax), "not SECRET"},
	}
	for _, c := range cases {
		c.c.Principal = pr
		_, err := s.Contribute(context.Background(), c.c)
		var e *invoke.Error
		if !errors.As(err, &e) || e.Code != c.code || !strings.Contains(e.Message, c.msg) {
			t.Fatalf("%s: got %v, want %s naming %q", c.name, err, c.code, c.msg)
		}
	}
}

// A decision that cannot be one is refused before anything is recorded or asked (this
// service has no ledger or pipeline: reaching them would panic).
func TestDecideRefusesWhatIsNoDecision(t *testing.T) {
	self := testNode(t, 2, "self")
	s := service(t, self, nil)
	pr := &policy.Principal{ID: "alice", Tenant: "default", Clearance: policy.Secret}
	good := Ask{Question: "Is it safe?", Options: []string{"yes", "no"}, PanelID: "jury"}
	cases := []struct {
		name  string
		edit  func(*Ask)
		code  invoke.Code
		param string
	}{
		{"no question", func(a *Ask) { a.Question = " " }, invoke.CodeInvalidRequest, "question"},
		{"a long question", func(a *Ask) { a.Question = strings.Repeat("q", decision.MaxQuestionLen+1) }, invoke.CodeInvalidRequest, "question"},
		{"one option", func(a *Ask) { a.Options = []string{"yes"} }, invoke.CodeInvalidRequest, "options"},
		{"abstain as an option", func(a *Ask) { a.Options = []string{"yes", "Abstain"} }, invoke.CodeInvalidRequest, "options"},
		{"no panel", func(a *Ask) { a.PanelID = "" }, invoke.CodeInvalidRequest, "panel"},
		{"an unknown panel", func(a *Ask) { a.PanelID = "grand-jury" }, invoke.CodePanelNotFound, "panel"},
		{"two panels", func(a *Ask) { a.Panel = &decision.Panel{Members: []string{"juror", "x@*"}} }, invoke.CodeInvalidRequest, "panel"},
		{"a brain that may not sit", func(a *Ask) {
			a.PanelID, a.Panel = "", &decision.Panel{Members: []string{"juror", "bystander"}}
		}, invoke.CodeInvalidRequest, "panel"},
		{"a quorum beyond the panel", func(a *Ask) { a.Rule = &decision.Rule{Name: decision.RuleQuorum, Quorum: 3} }, invoke.CodeInvalidRequest, "rule"},
		{"a vetoer off the panel", func(a *Ask) { a.Rule = &decision.Rule{Name: decision.RuleVeto, Vetoers: []string{"x"}} }, invoke.CodeInvalidRequest, "rule"},
		{"a deadline too long", func(a *Ask) { a.Deadline = time.Hour }, invoke.CodeInvalidRequest, "deadline"},
		{"a deadline too short", func(a *Ask) { a.Deadline = time.Millisecond }, invoke.CodeInvalidRequest, "deadline"},
		{"no such classification", func(a *Ask) { a.Classification = "RESTRICTED" }, invoke.CodeInvalidClassification, "classification"},
	}
	for _, c := range cases {
		a := good
		c.edit(&a)
		_, err := s.Decide(context.Background(), pr, a)
		var e *invoke.Error
		if !errors.As(err, &e) || e.Code != c.code || e.Param != c.param {
			t.Fatalf("%s: got %v, want %s on %s", c.name, err, c.code, c.param)
		}
	}
}

// Of the peers that may fill a BRAIN@* seat, the one asked is the one whose ballot
// Count keeps when every one of them answers.
func TestTheSeatGoesToThePeerCountWouldKeep(t *testing.T) {
	origin := testNode(t, 1, "origin")
	peers := []*identity.Node{testNode(t, 5, "p5"), testNode(t, 6, "p6"), testNode(t, 7, "p7"), testNode(t, 8, "p8")}
	dir := func(n string) (decision.Contributor, bool) {
		for _, p := range append(peers, origin) {
			if p.ID() == n {
				return decision.Contributor{Key: p.Public(), Institution: p.Cert.RootID}, true
			}
		}
		return decision.Contributor{}, false
	}
	var fp []fleet.Peer
	for _, p := range peers {
		fp = append(fp, fleet.Peer{NodeID: p.ID()})
	}
	for i := range 20 {
		raw := request(t, origin, origin, "question "+string(rune('a'+i)), func(r *decision.Request) { r.Panel.Members = []string{"juror", "other@*"} })
		req, _ := decision.ParseRequest(raw)
		var ballots []decision.SignedBallot
		for _, p := range peers {
			b, err := decision.SealBallot(p.Key, decision.Answer{Choice: "yes", Confidence: 1}.Ballot(req, p.ID(), "other", "m", time.Now()))
			if err != nil {
				t.Fatal(err)
			}
			ballots = append(ballots, decision.SignedBallot{Bytes: b})
		}
		o, err := decision.Count(req, ballots, dir, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if got, kept := firstToFill(req.Hash(), fp).NodeID, o.Counted[0].Ballot.Node; got != kept {
			t.Fatalf("decision %d: asked %s, but Count keeps %s", i, got, kept)
		}
	}
}

func TestAnsweredOncePerDecisionAndBrain(t *testing.T) {
	a := newAnswered(2)
	now := time.Now()
	if ok, _ := a.take("d1", "b", now.Add(time.Minute), now); !ok {
		t.Fatal("first answer refused")
	}
	if ok, _ := a.take("d1", "b", now.Add(time.Minute), now); ok {
		t.Fatal("second answer taken")
	}
	if ok, _ := a.take("d1", "c", now.Add(time.Minute), now); !ok {
		t.Fatal("another brain refused")
	}
	if ok, full := a.take("d2", "b", now.Add(time.Minute), now); ok || !full {
		t.Fatal("past MaxAnswered live pairs, a new one must be refused as full")
	}
	later := now.Add(2 * time.Minute)
	if ok, _ := a.take("d2", "b", later.Add(time.Minute), later); !ok {
		t.Fatal("expired pairs are forgotten")
	}
}

// FuzzParseCallPayload: a payload that parses is canonical with exactly its members,
// and encodes back to its exact bytes.
func FuzzParseCallPayload(f *testing.F) {
	f.Add([]byte(`{"question":"Is it safe?","request":{"v":"decision-request/1"}}`))
	f.Add([]byte(`{"question":"","request":{}}`))
	f.Add([]byte(`{"request":{"a":1},"question":"x","extra":1}`))
	f.Add([]byte(`{"question":"\u00e9","request":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseCallPayload(b)
		if err != nil {
			return
		}
		again, err := jcs.Marshal(p)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("parse then encode changed the bytes: %q → %q (%v)", b, again, err)
		}
		if p.Question == "" || len(p.Question) > decision.MaxQuestionLen || len(p.Request) > decision.MaxRequestSize {
			t.Fatalf("a payload out of its limits parsed: %d, %d bytes", len(p.Question), len(p.Request))
		}
	})
}
