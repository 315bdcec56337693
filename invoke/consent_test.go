package invoke

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// The pipeline's codes are package consent's, spelt the same, and fleet's opaque cap on
// a grant in an envelope is the grant format's own.
func TestConsentCodesAndCaps(t *testing.T) {
	for _, c := range []consent.Code{consent.CodeRequired, consent.CodeMalformed, consent.CodeForged, consent.CodeExpired,
		consent.CodeWrongAudience, consent.CodeOutOfScope, consent.CodeAboveMax, consent.CodeRevoked, consent.CodeUsedUp, consent.CodeUnknown} {
		e := consentOutcome(&consent.Error{Code: c, Message: "m"})
		if string(e.Code) != string(c) {
			t.Errorf("consent code %s becomes %s", c, e.Code)
		}
	}
	if fleet.MaxConsentSize != consent.MaxGrantSize {
		t.Fatalf("fleet.MaxConsentSize %d, consent.MaxGrantSize %d", fleet.MaxConsentSize, consent.MaxGrantSize)
	}
	if MaxConsentHeader < len(strings.Repeat("x", (consent.MaxGrantSize*4+2)/3)) {
		t.Fatal("MaxConsentHeader cannot carry the largest grant")
	}
}

// otherRoot is a root id of another institution.
func otherRoot(t *testing.T) (*identity.Node, string) {
	t.Helper()
	res, err := identity.Init(t.TempDir(), "elsewhere", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return res.Node, res.Node.Cert.RootID
}

func TestConsentGrantListRevoke(t *testing.T) {
	h := newHarness(t, "builtin", nil)
	_, root := otherRoot(t)
	ctx := context.Background()
	okafor := principal("dr.okafor", policy.Secret)
	ng := NewGrant{To: "gp.okafor@" + root, Action: consent.ActionMemoryRead, Subjects: []string{"case-2290", "case-1187", "case-2290"},
		Max: policy.OfficialSensitive, Purpose: "continuity of care", ExpiresIn: 7 * 24 * time.Hour, Retain: true}
	en, rc, err := h.p.ConsentGrant(ctx, okafor, ng)
	if err != nil {
		t.Fatal(err)
	}
	g := en.Grant
	if rc == nil || g.Grantor.Principal != "dr.okafor" || g.Grantor.Tenant != "hospital" || g.Origin.Node != h.id.ID() ||
		g.Audience.Institution != root || !slices.Equal(g.Scope.Subjects, []string{"case-1187", "case-2290"}) ||
		g.ExpiresAt().Sub(g.IssuedAt()) != 7*24*time.Hour || !g.Retain {
		t.Fatalf("grant %+v", g)
	}
	if err := consent.VerifySignature(g, h.p.self()); err != nil {
		t.Fatalf("the node did not sign the grant: %v", err)
	}
	recs := h.rec.byAction(oar.ActionConsentGrant)
	if len(recs) != 1 || !bytes.Equal(recs[0].Parties[0], en.Raw) || recs[0].Decision.Effect != "allow" ||
		!slices.Contains(recs[0].Decision.Policies, "permit-consent-grant") || recs[0].Classification != "OFFICIAL-SENSITIVE" {
		t.Fatalf("consent.grant record %+v", recs)
	}
	// Listed for her, not for another principal; an admin sees every grant.
	other := principal("dr.adeyemi", policy.Secret)
	if l, _ := h.p.ConsentList(ctx, okafor); len(l) != 1 || l[0].Grant.ID != g.ID {
		t.Fatalf("her list %v", l)
	}
	if l, _ := h.p.ConsentList(ctx, other); len(l) != 0 {
		t.Fatalf("another's list %v", l)
	}
	admin := &policy.Principal{ID: "root", Tenant: "ops", Clearance: policy.TopSecret, Roles: []string{"admin"}}
	if l, _ := h.p.ConsentList(ctx, admin); len(l) != 1 {
		t.Fatalf("admin's list %v", l)
	}
	// Another principal cannot revoke it, nor learn that it exists.
	_, _, err = h.p.ConsentRevoke(ctx, other, g.ID)
	outcome(t, err, CodeConsentUnknown)
	en, rc, err = h.p.ConsentRevoke(ctx, okafor, g.ID)
	if err != nil || rc == nil || en.State(time.Now()) != consent.StateRevoked {
		t.Fatalf("revoke: %v %v", err, en)
	}
	if _, rc, err := h.p.ConsentRevoke(ctx, okafor, g.ID); err != nil || rc != nil {
		t.Fatalf("revoking again: %v, record %v", err, rc)
	}
	if r := h.rec.byAction(oar.ActionConsentRevoke); len(r) != 1 || r[0].Inputs[0].SHA256 != sha256Hex(en.Raw) {
		t.Fatalf("consent.revoke records %+v", r)
	}
	// Above her clearance: refused by policy, recorded.
	official := principal("dr.okafor", policy.Official)
	_, _, err = h.p.ConsentGrant(ctx, official, ng)
	e := outcome(t, err, CodePolicyDenied)
	if e.Receipt == nil || h.rec.byAction(oar.ActionConsentGrant)[1].Decision.Effect != "deny" {
		t.Fatal("the refused grant is not recorded")
	}
	// A grant is for another institution; what the format refuses is the caller's error.
	for name, bad := range map[string]NewGrant{
		"own institution": {To: h.id.Cert.RootID, Action: consent.ActionInvoke, Brain: "quick", Max: policy.Official, Purpose: "x", ExpiresIn: time.Hour},
		"no brain":        {To: root, Action: consent.ActionInvoke, Max: policy.Official, Purpose: "x", ExpiresIn: time.Hour},
		"a year and a day": {To: root, Action: consent.ActionInvoke, Brain: "quick", Max: policy.Official, Purpose: "x",
			ExpiresIn: consent.MaxGrantLifetime + 24*time.Hour},
		"no purpose": {To: root, Action: consent.ActionInvoke, Brain: "quick", Max: policy.Official, ExpiresIn: time.Hour},
		"bad to":     {To: "dr@nowhere", Action: consent.ActionInvoke, Brain: "quick", Max: policy.Official, Purpose: "x", ExpiresIn: time.Hour},
	} {
		if _, _, err := h.p.ConsentGrant(ctx, okafor, bad); err == nil {
			t.Errorf("%s: granted", name)
		} else if codeOf(err) != CodeInvalidRequest {
			t.Errorf("%s: %v, want invalid_request", name, err)
		}
	}
}

// grantFor makes a grant of dr.okafor's (tenant hospital) through h.
func grantFor(t *testing.T, h *harness, ng NewGrant) *consent.Entry {
	t.Helper()
	if ng.Purpose == "" {
		ng.Purpose = "direct care: a second opinion"
	}
	if ng.ExpiresIn == 0 {
		ng.ExpiresIn = time.Hour
	}
	en, _, err := h.p.ConsentGrant(context.Background(), principal("dr.okafor", policy.Secret), ng)
	if err != nil {
		t.Fatal(err)
	}
	return en
}

func TestCrossInstitutionCallNeedsAGrant(t *testing.T) {
	h, ps := remoteHarnessOf(t, 1, false)
	peer := ps[0].peer
	ctx := context.Background()
	// No grant: refused before anything is sent, and recorded.
	e := outcome(t, h.p.Chat(ctx, ask("lab-brain", "case 4411"), &sink{}), CodeConsentRequired)
	if len(ps[0].envelopes) != 0 || e.Receipt == nil || !strings.Contains(e.Message, "lab-brain") {
		t.Fatalf("sent %d envelopes; %+v", len(ps[0].envelopes), e)
	}
	refusal := h.rec.byAction(oar.ActionBrainInvoke)[0]
	if refusal.Decision.Effect != "deny" || !slices.Equal(refusal.Decision.Policies, []string{"consent"}) || detailOf(t, refusal)["code"] != "consent_required" {
		t.Fatalf("refusal record %+v", refusal)
	}
	// Grants that do not cover the call: another brain, another institution, a lower
	// maximum. The message says what is missing.
	_, third := otherRoot(t)
	grantFor(t, h, NewGrant{To: peer.Institution, Action: consent.ActionInvoke, Brain: "oncology-mdt", Max: policy.Secret})
	grantFor(t, h, NewGrant{To: third, Action: consent.ActionInvoke, Brain: "lab-brain", Max: policy.Secret})
	os := grantFor(t, h, NewGrant{To: peer.Institution, Action: consent.ActionInvoke, Brain: "lab-brain", Max: policy.OfficialSensitive, Uses: 2})
	secret := ask("lab-brain", "case 4411")
	secret.Classification = "SECRET"
	e = outcome(t, h.p.Chat(ctx, secret, &sink{}), CodeConsentRequired)
	if !strings.Contains(e.Message, "covers data up to OFFICIAL-SENSITIVE") || len(ps[0].envelopes) != 0 {
		t.Fatalf("SECRET data under an OFFICIAL-SENSITIVE grant: %s", e.Message)
	}
	// Covered: served, the grant's use recorded before the admission, which links to it,
	// and the envelope carries the grant.
	s := &sink{}
	if err := h.p.Chat(ctx, ask("lab-brain", "case 4411"), s); err != nil {
		t.Fatal(err)
	}
	h.p.Wait()
	env, err := fleet.ParseEnvelope(ps[0].envelopes[0])
	if err != nil || env.V != fleet.EnvelopeVersion2 || !bytes.Equal(env.Consent, os.Raw) {
		t.Fatalf("envelope %v %s", err, ps[0].envelopes[0])
	}
	uses := h.rec.byAction(oar.ActionConsentUse)
	adm := h.rec.byAction(oar.ActionBrainInvoke)[2]
	if len(uses) != 1 || detailOf(t, uses[0])["grant"] != os.Grant.ID || len(adm.Links) != 1 || adm.Links[0].Rel != "consent" {
		t.Fatalf("use %+v; admission links %+v", uses, adm.Links)
	}
	if u, _ := uses[0].Encode(); adm.Links[0].RecordHash != sha256HexRecord(u) {
		t.Fatal("the admission record does not link to the use's record")
	}
	if d := detailOf(t, h.rec.byAction(oar.ActionBrainComplete)[0]); d["consent"] != os.Grant.ID {
		t.Fatalf("completion detail %v", d)
	}
	if en, _ := h.p.cfg.Consent.Get(os.Grant.ID); en.Used != 1 {
		t.Fatalf("uses recorded: %d", en.Used)
	}
	// Its second and last use, then none is left.
	if err := h.p.Chat(ctx, ask("lab-brain", "x"), &sink{}); err != nil {
		t.Fatal(err)
	}
	e = outcome(t, h.p.Chat(ctx, ask("lab-brain", "x"), &sink{}), CodeConsentRequired)
	if !strings.Contains(e.Message, "used 2 of 2") {
		t.Fatalf("used up: %s", e.Message)
	}
	// Revoked at once.
	again := grantFor(t, h, NewGrant{To: peer.Institution, Action: consent.ActionInvoke, Brain: "lab-brain", Max: policy.Secret})
	if _, _, err := h.p.ConsentRevoke(ctx, principal("dr.okafor", policy.Secret), again.Grant.ID); err != nil {
		t.Fatal(err)
	}
	outcome(t, h.p.Chat(ctx, ask("lab-brain", "x"), &sink{}), CodeConsentRequired)
	if len(ps[0].envelopes) != 2 {
		t.Fatalf("%d envelopes sent, want the 2 the used-up grant allowed", len(ps[0].envelopes))
	}
	// Another principal's grant does not cover her colleague's data.
	colleague := ask("lab-brain", "x")
	colleague.Principal = principal("dr.adeyemi", policy.Secret)
	outcome(t, h.p.Chat(ctx, colleague, &sink{}), CodeConsentRequired)
}

// A grant revoked between its finding and its use is refused at the use, with its code,
// and nothing is sent.
func TestGrantRevokedBeforeUse(t *testing.T) {
	h, ps := remoteHarnessOf(t, 1, false)
	en := grantFor(t, h, NewGrant{To: ps[0].peer.Institution, Action: consent.ActionInvoke, Brain: "lab-brain", Max: policy.Secret})
	inv := ask("lab-brain", "x")
	ctx := context.Background()
	if err := h.p.resolve(ctx, inv); err != nil {
		t.Fatal(err)
	}
	if err := h.p.authorise(inv); err != nil {
		t.Fatal(err)
	}
	if _, err := h.p.cfg.Consent.Revoke(en.Grant.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	outcome(t, h.p.admit(ctx, inv), CodeConsentRevoked)
	if len(ps[0].envelopes) != 0 || len(h.rec.byAction(oar.ActionConsentUse)) != 0 {
		t.Fatal("a revoked grant was used")
	}
}

func sha256HexRecord(encoded []byte) string {
	return hex.EncodeToString(oar.RecordHash(encoded))
}

// holder is a real pipeline holding Dr Okafor's hospital memories, and the practice's
// view of it.
type holder struct {
	h    *harness
	peer fleet.Peer // as the practice's fleet sees it
}

// newHolder builds the hospital: its principal okafor (tenant cardiology, SECRET), and
// memories about her cases at every classification, with a canary in each text.
func newHolder(t *testing.T) *holder {
	t.Helper()
	h := newHarness(t, "builtin", nil)
	if _, _, err := h.ps.Add(policy.NewPrincipal{Tenant: "cardiology", ID: "okafor", Clearance: "SECRET"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, m := range []memory.NewMemory{
		{Tenant: "cardiology", Subject: "case-1187", Classification: policy.Official, Text: "canary-official echo shows mild stenosis"},
		{Tenant: "cardiology", Subject: "case-1187", Classification: policy.OfficialSensitive, Text: "canary-sensitive family history noted"},
		{Tenant: "cardiology", Subject: "case-1187", Classification: policy.Secret, Text: "canary-secret stenosis, protected witness status"},
		{Tenant: "cardiology", Subject: "case-9999", Classification: policy.Official, Text: "canary-othersubject stenosis, not in the grant"},
		{Tenant: "oncology", Subject: "case-1187", Classification: policy.Official, Text: "canary-othertenant stenosis, another tenant's memory"},
	} {
		if _, err := h.mem.Store.Add(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	return &holder{h: h}
}

// grant is okafor's memory.read grant at the hospital for gp.okafor at the practice.
func (ho *holder) grant(t *testing.T, practiceRoot string, f func(*NewGrant)) *consent.Entry {
	t.Helper()
	ng := NewGrant{To: "gp.okafor@" + practiceRoot, Action: consent.ActionMemoryRead, Subjects: []string{"case-1187", "case-2290"},
		Max: policy.OfficialSensitive, Purpose: "continuity of care", ExpiresIn: time.Hour}
	if f != nil {
		f(&ng)
	}
	en, _, err := ho.h.p.ConsentGrant(context.Background(), &policy.Principal{ID: "okafor", Tenant: "cardiology", Clearance: policy.Secret}, ng)
	if err != nil {
		t.Fatal(err)
	}
	return en
}

// release asks the holder directly, as its fleet API does once the envelope and the
// grant verified.
func (ho *holder) release(t *testing.T, en *consent.Entry, practice *identity.Node, clearance, posture policy.Level) (*ReleaseOutput, error) {
	t.Helper()
	rel, err := ho.h.p.Release(context.Background(), &ReleaseRequest{Envelope: []byte(`{"v":"test"}`), Call: sha256Hex([]byte("call")),
		Origin: practice.ID(), Institution: practice.Cert.RootID, Posture: posture, Principal: "gp.okafor", Tenant: "gp",
		Clearance: clearance, Grant: en.Grant, Search: &SearchPayload{Query: "stenosis history status", Subjects: en.Grant.Scope.Subjects}})
	if rel == nil || rel.Record == "" {
		t.Fatalf("no record of the release: %v", err)
	}
	if err != nil {
		return nil, err
	}
	ro, perr := ParseReleaseOutput(rel.Output)
	if perr != nil {
		t.Fatalf("the holder's output does not parse: %v", perr)
	}
	return ro, nil
}

func texts(ro *ReleaseOutput) string {
	var s []string
	for _, m := range ro.Memories {
		s = append(s, m.Text)
	}
	return strings.Join(s, "|")
}

func TestReleaseRule(t *testing.T) {
	ho := newHolder(t)
	practice, root := otherRoot(t)
	en := ho.grant(t, root, nil)
	for _, c := range []struct {
		name               string
		clearance, posture policy.Level
		want, not          []string
	}{
		{"up to the grant's maximum", policy.Secret, policy.Secret,
			[]string{"canary-official", "canary-sensitive"}, []string{"canary-secret", "canary-othersubject", "canary-othertenant"}},
		{"no higher than her clearance at the practice", policy.Official, policy.Secret,
			[]string{"canary-official"}, []string{"canary-sensitive", "canary-secret"}},
		{"no higher than the practice's accreditation", policy.Secret, policy.Official,
			[]string{"canary-official"}, []string{"canary-sensitive", "canary-secret"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ro, err := ho.release(t, en, practice, c.clearance, c.posture)
			if err != nil {
				t.Fatal(err)
			}
			got := texts(ro)
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("%s not released: %s", w, got)
				}
			}
			for _, n := range c.not {
				if strings.Contains(got, n) {
					t.Errorf("%s released: %s", n, got)
				}
			}
		})
	}
	recs := ho.h.rec.byAction(oar.ActionConsentRelease)
	if len(recs) != 3 || recs[0].Decision.Effect != "allow" || recs[0].Classification != "OFFICIAL-SENSITIVE" ||
		recs[1].Classification != "OFFICIAL" || len(recs[0].Outputs) != 3 {
		t.Fatalf("release records %+v", recs)
	}
	for _, r := range recs {
		if bytes.Contains(r.Detail, []byte("canary")) {
			t.Fatal("a release record holds memory text")
		}
	}
	if d := detailOf(t, recs[0]); d["grant"] != en.Grant.ID || d["used"] != float64(1) {
		t.Fatalf("release detail %v", d)
	}
	// Revoked, then used up: refused at the grant's origin, recorded.
	if _, _, err := ho.h.p.ConsentRevoke(context.Background(), &policy.Principal{ID: "okafor", Tenant: "cardiology", Clearance: policy.Secret}, en.Grant.ID); err != nil {
		t.Fatal(err)
	}
	_, err := ho.release(t, en, practice, policy.Secret, policy.Secret)
	outcome(t, err, CodeConsentRevoked)
	once := ho.grant(t, root, func(ng *NewGrant) { ng.Uses = 1 })
	if _, err := ho.release(t, once, practice, policy.Secret, policy.Secret); err != nil {
		t.Fatal(err)
	}
	_, err = ho.release(t, once, practice, policy.Secret, policy.Secret)
	outcome(t, err, CodeConsentUsedUp)
	if recs := ho.h.rec.byAction(oar.ActionConsentRelease); recs[len(recs)-1].Decision.Effect != "deny" || detailOf(t, recs[len(recs)-1])["code"] != "consent_used_up" {
		t.Fatalf("refusal record %+v", recs[len(recs)-1])
	}
	// A practice of unknown accreditation gets nothing.
	fresh := ho.grant(t, root, nil)
	_, err = ho.release(t, fresh, practice, policy.Secret, 0)
	outcome(t, err, CodePolicyDenied)
}

// holderFleet is the practice's fleet: the holder alone, reached as its fleet API
// would be — the envelope verified with the practice's key, the grant with the
// holder's and the call, then the holder's pipeline, and a signed reply.
type holderFleet struct {
	t        *testing.T
	ho       *holder
	practice *identity.Node
	posture  policy.Level
	calls    int
}

func (f *holderFleet) Offered() map[string][]fleet.Peer {
	return map[string][]fleet.Peer{HolderBrain: {f.ho.peer}}
}
func (f *holderFleet) Candidates(b string) []fleet.Peer { return f.Offered()[b] }
func (f *holderFleet) Invoke(context.Context, fleet.Peer, *fleet.CallRequest) (*fleet.CallAnswer, error) {
	return nil, errors.New("the holder serves no brains in this test")
}

func (f *holderFleet) MemorySearch(ctx context.Context, _ fleet.Peer, req *fleet.CallRequest) (*fleet.CallAnswer, error) {
	f.calls++
	hp := f.ho.h.p
	env, err := fleet.ParseEnvelope(req.Envelope)
	if err != nil || env.Verify(f.practice.Public()) != nil || env.PayloadDigest != sha256Hex(req.Payload) {
		f.t.Fatalf("the practice's envelope does not verify: %v", err)
	}
	sp, err := ParseSearchPayload(req.Payload)
	if err != nil {
		f.t.Fatal(err)
	}
	g, err := consent.Parse(env.Consent)
	if err == nil {
		err = consent.Verify(g, hp.self(), consent.Use{Institution: f.practice.Cert.RootID, Node: f.practice.ID(),
			Principal: env.Principal + "@" + f.practice.Cert.RootID, From: hp.cfg.Identity.ID(), Tenant: g.Grantor.Tenant,
			Action: consent.ActionMemoryRead, Subjects: sp.Subjects, Classification: policy.Official, Time: time.Now()})
	}
	if err != nil {
		return &fleet.CallAnswer{Response: fleet.CallResponse{Status: 403, Error: &fleet.CallError{Status: 403, Code: string(consent.CodeOf(err)), Message: err.Error()}}}, nil
	}
	cl, _ := policy.ParseLevel(env.Clearance)
	rel, rerr := hp.Release(ctx, &ReleaseRequest{Envelope: req.Envelope, Call: fleet.CallHash(req.Envelope), Origin: env.Origin,
		Institution: f.practice.Cert.RootID, Posture: f.posture, Principal: env.Principal, Tenant: env.Tenant, Clearance: cl, Grant: g, Search: sp})
	reply := fleet.Reply{Call: fleet.CallHash(req.Envelope), Responder: hp.cfg.Identity.ID(), Time: oar.FormatTime(time.Now()),
		Decision: rel.Decision, Record: rel.Record}
	resp := fleet.CallResponse{Status: 200}
	if rerr != nil {
		reply.Status, reply.Error, reply.Message = fleet.ReplyDenied, string(codeOf(rerr)), "refused"
		resp.Status = 403
	} else {
		reply.Status, reply.OutputDigest, resp.Output = fleet.ReplyOK, sha256Hex(rel.Output), rel.Output
	}
	if resp.Reply, err = fleet.SealReply(hp.cfg.Identity.Key, reply); err != nil {
		f.t.Fatal(err)
	}
	return &fleet.CallAnswer{Response: resp}, nil
}

// practiceWith builds the practice, another institution, whose fleet is the holder.
func practiceWith(t *testing.T, ho *holder) (*harness, *holderFleet) {
	t.Helper()
	p := newHarness(t, "builtin", nil)
	// The holder's identity record in the practice's fleet log, as membership adds it.
	pub, err := fleet.OpenPublisher(filepath.Join(t.TempDir(), "feed"), ho.h.id, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, root, err := ho.h.id.Cert.Verify()
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range pub.Records(0) {
		if _, err := p.p.cfg.FleetLog.Add(rec, fleet.NewTrust(root)); err != nil {
			t.Fatal(err)
		}
	}
	ho.peer = fleet.Peer{NodeID: ho.h.id.ID(), Institution: ho.h.id.Cert.RootID, State: fleet.StateAlive, Posture: "SECRET",
		Attestation: fleet.AttestSoftware, Brains: []fleet.Brain{{ID: HolderBrain, Kind: "operational", Classification: "SECRET"}}}
	f := &holderFleet{t: t, ho: ho, practice: p.id, posture: policy.Secret}
	p.p.SetFleet(f)
	return p, f
}

// askWith is who (tenant gp) asking the practice's memory-recall brain with a grant.
func askWith(grant []byte, who string, clearance policy.Level) *Invocation {
	return &Invocation{Principal: &policy.Principal{ID: who, Tenant: "gp", Clearance: clearance}, Model: "memory-recall",
		Messages: []Message{{Role: "user", Content: "what do we know about the stenosis and the family history?"}}, Consent: grant}
}

func TestDescent(t *testing.T) {
	ho := newHolder(t)
	p, f := practiceWith(t, ho)
	ctx := context.Background()
	en := ho.grant(t, p.id.Cert.RootID, nil)
	s := &sink{}
	if err := p.p.Chat(ctx, askWith(en.Raw, "gp.okafor", policy.Secret), s); err != nil {
		t.Fatal(err)
	}
	p.p.Wait()
	answer := s.result.Content
	if !strings.Contains(answer, "canary-official") || !strings.Contains(answer, "canary-sensitive") || strings.Contains(answer, "canary-secret") ||
		!strings.Contains(answer, "released by "+ho.h.id.ID()) {
		t.Fatalf("her answer: %s", answer)
	}
	// The practice records what it received: the envelope and the holder's reply, which
	// names the holder's release record; her answer's completion links to it.
	recv := p.rec.byAction(oar.ActionConsentReceive)
	if len(recv) != 1 || len(recv[0].Parties) != 2 || recv[0].Decision.Effect != "allow" {
		t.Fatalf("receive records %+v", recv)
	}
	reply, err := fleet.ParseReply(recv[0].Parties[1])
	if err != nil {
		t.Fatal(err)
	}
	rel := ho.h.rec.byAction(oar.ActionConsentRelease)[0]
	if enc, _ := rel.Encode(); reply.Record != sha256HexRecord(enc) || reply.Call != fleet.CallHash(recv[0].Parties[0]) {
		t.Fatal("the holder's reply does not name its release record")
	}
	done := p.rec.byAction(oar.ActionBrainComplete)[0]
	if enc, _ := recv[0].Encode(); len(done.Links) != 2 || done.Links[1].Rel != "consent" || done.Links[1].RecordHash != sha256HexRecord(enc) {
		t.Fatalf("completion links %+v", done.Links)
	}
	// Used for that request only: nothing of it is in the practice's memory or log.
	if res, _ := p.mem.Store.Search(ctx, memory.Query{Tenant: "gp", Clearance: policy.TopSecret, Text: "stenosis"}); len(res) != 0 {
		t.Fatalf("the practice kept %v", res)
	}
	for _, r := range p.rec.recs {
		if b, _ := json.Marshal(r); bytes.Contains(b, []byte("canary")) {
			t.Fatalf("a practice record holds released text: %s", r.Action)
		}
	}
	// Cleared OFFICIAL at the practice, asking an OFFICIAL brain, she gets less: the
	// holder is told the lower of her clearance and where her answer's data flows.
	low := askWith(en.Raw, "gp.okafor", policy.Official)
	low.Model = "education"
	s = &sink{}
	if err := p.p.Chat(ctx, low, s); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.result.Content, "canary-official") || strings.Contains(s.result.Content, "canary-sensitive") {
		t.Fatalf("her answer cleared OFFICIAL: %s", s.result.Content)
	}
	// Another practice principal, an altered grant, a remote brain: refused at the
	// practice, nothing sent.
	before := f.calls
	outcome(t, p.p.Chat(ctx, askWith(en.Raw, "gp.other", policy.Secret), &sink{}), CodeConsentWrongAudience)
	var m map[string]any
	json.Unmarshal(en.Raw, &m)
	m["purpose"] = "research"
	altered, _ := json.Marshal(m)
	outcome(t, p.p.Chat(ctx, askWith(altered, "gp.okafor", policy.Secret), &sink{}), CodeConsentForged)
	outcome(t, p.p.Chat(ctx, askWith([]byte(`{"v":"consent-grant/1"}`), "gp.okafor", policy.Secret), &sink{}), CodeConsentMalformed)
	if f.calls != before {
		t.Fatal("a refused grant reached the holder")
	}
	refusals := 0
	for _, r := range p.rec.byAction(oar.ActionBrainInvoke) {
		if r.Decision.Effect == "deny" && slices.Contains(r.Decision.Policies, "consent") {
			refusals++
		}
	}
	if refusals != 3 {
		t.Fatalf("%d refusals recorded at the practice, want 3", refusals)
	}
	// Revoked at the hospital: the holder refuses, the practice records what it received.
	if _, _, err := ho.h.p.ConsentRevoke(ctx, &policy.Principal{ID: "okafor", Tenant: "cardiology", Clearance: policy.Secret}, en.Grant.ID); err != nil {
		t.Fatal(err)
	}
	outcome(t, p.p.Chat(ctx, askWith(en.Raw, "gp.okafor", policy.Secret), &sink{}), CodeConsentRevoked)
	recv = p.rec.byAction(oar.ActionConsentReceive)
	if last := recv[len(recv)-1]; last.Decision.Effect != "deny" || detailOf(t, last)["code"] != "consent_revoked" || len(last.Parties) != 2 {
		t.Fatalf("the refusal as received: %+v", last)
	}
}

// With a grant that lets the receiver retain, what is released is stored in her tenant
// at the practice, with the grant and the holder as its source.
func TestDescentRetained(t *testing.T) {
	ho := newHolder(t)
	p, _ := practiceWith(t, ho)
	ctx := context.Background()
	en := ho.grant(t, p.id.Cert.RootID, func(ng *NewGrant) { ng.Retain = true })
	if err := p.p.Chat(ctx, askWith(en.Raw, "gp.okafor", policy.Secret), &sink{}); err != nil {
		t.Fatal(err)
	}
	res, err := p.mem.Store.Search(ctx, memory.Query{Tenant: "gp", Clearance: policy.TopSecret, Text: "stenosis"})
	if err != nil || len(res) != 1 || res[0].Source != "consent:"+en.Grant.ID+"@"+ho.h.id.ID() {
		t.Fatalf("retained %+v %v", res, err)
	}
	if d := detailOf(t, p.rec.byAction(oar.ActionConsentReceive)[0]); d["retained"] != float64(2) {
		t.Fatalf("receive detail %v", d)
	}
}

// A grant brought with a request for a brain this node does not host is refused: what a
// grant releases is never sent on.
func TestDescentOnlyForLocalBrains(t *testing.T) {
	h, _ := remoteHarnessOf(t, 1, true)
	inv := ask("lab-brain", "x")
	inv.Consent = []byte(`{}`)
	e := outcome(t, h.p.Chat(context.Background(), inv, &sink{}), CodeInvalidRequest)
	if e.Param != "X-Sios-Consent" {
		t.Fatalf("%+v", e)
	}
}

// A decision's member at another institution is authorised as a remote call of its
// brain would be: MemberGrant finds the principal's grant (consent_required without
// one), MaySend allows only with it, and UseMemberGrant makes the use durable in the
// store and gives its consent.use record, naming the decision — or refuses a grant used
// up since it was found.
func TestDecisionMemberGrant(t *testing.T) {
	h, ps := remoteHarnessOf(t, 1, false)
	peer, b := ps[0].peer, ps[0].peer.Brains[0]
	ctx := context.Background()
	dr := principal("dr.okafor", policy.Secret)
	if _, e := h.p.MemberGrant(dr, b.ID, peer, policy.Official); e == nil || e.Code != CodeConsentRequired || !strings.Contains(e.Message, "lab-brain") {
		t.Fatalf("no grant: %v", e)
	}
	if d := h.p.MaySend(dr, b, peer, policy.Official, nil); d.Allow || !slices.Contains(d.Reasons, "forbid-cross-institution-without-grant") {
		t.Fatalf("without a grant: %+v", d)
	}
	made := grantFor(t, h, NewGrant{To: peer.Institution, Action: consent.ActionInvoke, Brain: b.ID, Max: policy.OfficialSensitive, Uses: 1})
	if _, e := h.p.MemberGrant(dr, b.ID, peer, policy.Secret); e == nil || e.Code != CodeConsentRequired {
		t.Fatalf("SECRET data under an OFFICIAL-SENSITIVE grant: %v", e)
	}
	g, e := h.p.MemberGrant(dr, b.ID, peer, policy.Official)
	if e != nil || g.Grant.ID != made.Grant.ID {
		t.Fatalf("the grant: %v %v", g, e)
	}
	if d := h.p.MaySend(dr, b, peer, policy.Official, g); !d.Allow {
		t.Fatalf("with the grant: %+v", d)
	}
	decision := strings.Repeat("d", 64)
	used, rec, hash, err := h.p.UseMemberGrant(dr, g, peer.NodeID, b.ID, decision, policy.Official)
	if err != nil || used.Used != 1 {
		t.Fatalf("use: %v %v", used, err)
	}
	if en, _ := h.p.cfg.Consent.Get(g.Grant.ID); en.Used != 1 {
		t.Fatalf("the use is not in the store: %d", en.Used)
	}
	d := detailOf(t, rec)
	if rec.Action != oar.ActionConsentUse || d["decision"] != decision || d["peer"] != peer.NodeID || d["brain"] != b.ID || d["grant"] != g.Grant.ID {
		t.Fatalf("consent.use record %+v", rec)
	}
	// The record is the caller's to append (with the decision.request record that
	// links to it): the hash given is the one it has in the log.
	if _, _, err := h.rec.Append(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if u, _ := h.rec.byAction(oar.ActionConsentUse)[0].Encode(); sha256HexRecord(u) != hash {
		t.Fatal("the hash returned is not the consent.use record's")
	}
	// Its one use is made: a second is refused with its code.
	_, rec, _, err = h.p.UseMemberGrant(dr, g, peer.NodeID, b.ID, decision, policy.Official)
	if e := outcome(t, err, CodeConsentUsedUp); e == nil || rec != nil {
		t.Fatal("a used-up grant was used")
	}
	if len(ps[0].envelopes) != 0 {
		t.Fatal("deciding about members sent something")
	}
}
