package invoke

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// peerNode is a fake target: a real node identity whose identity record is in the
// origin's fleet log, answering remote calls as a real target does — it verifies the
// envelope and signs its reply — unless told to misbehave.
type peerNode struct {
	t    testing.TB
	id   *identity.Node
	peer fleet.Peer

	answer     string // the content of a served call
	deny       bool   // refuse by policy (a signed denial)
	unreach    bool   // the call is never delivered (dial error)
	badSig     bool   // sign the reply with another key
	wrongCall  bool   // answer another call
	tamperOut  bool   // change the output after signing
	rawOut     string // when set, the output's bytes, signed as they are
	originKey  identity.PublicKey
	mu         sync.Mutex
	envelopes  [][]byte
	signedWith *identity.Node
}

// newPeer enrols a peer under the root key file rootKey (its own institution's: the
// origin's root, or "" for a new institution of its own).
func newPeer(t testing.TB, log *fleet.Log, posture, rootKey string) *peerNode {
	t.Helper()
	dir := t.TempDir()
	res, err := identity.Init(dir, "peer", rootKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pub, err := fleet.OpenPublisher(filepath.Join(dir, "feed"), res.Node, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, root, err := res.Node.Cert.Verify()
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range pub.Records(0) {
		if _, err := log.Add(rec, fleet.NewTrust(root)); err != nil {
			t.Fatal(err)
		}
	}
	return &peerNode{t: t, id: res.Node, answer: "the lab's answer", peer: fleet.Peer{NodeID: res.Node.ID(), Institution: res.Node.Cert.RootID,
		State: fleet.StateAlive, Posture: posture, Attestation: fleet.AttestSoftware, Addr: "127.0.0.1:1",
		Brains: []fleet.Brain{{ID: "lab-brain", Kind: "domain", Classification: "OFFICIAL"}}}}
}

func (p *peerNode) invoke(req *fleet.CallRequest) (*fleet.CallAnswer, error) {
	p.mu.Lock()
	p.envelopes = append(p.envelopes, req.Envelope)
	p.mu.Unlock()
	if p.unreach {
		return nil, &net.OpError{Op: "dial", Err: errors.New("connection refused")}
	}
	env, err := fleet.ParseEnvelope(req.Envelope)
	if err != nil {
		p.t.Fatalf("the origin sent an envelope that does not parse: %v", err)
	}
	if err := env.Verify(p.originKey); err != nil {
		p.t.Fatalf("the origin's envelope does not verify: %v", err)
	}
	if env.PayloadDigest != sha256Hex(req.Payload) {
		p.t.Fatal("payload digest mismatch")
	}
	reply := fleet.Reply{Call: fleet.CallHash(req.Envelope), Responder: p.id.ID(), Time: oar.FormatTime(time.Now()),
		Decision: &oar.Decision{Effect: "allow", Policies: []string{"permit-tenant-members"}}}
	resp := fleet.CallResponse{Status: 200}
	if p.wrongCall {
		reply.Call = sha256Hex([]byte("another call"))
	}
	if p.deny {
		reply.Status, reply.Error, reply.Message = fleet.ReplyDenied, string(CodePolicyDenied), "no"
		reply.Decision = &oar.Decision{Effect: "deny", Policies: []string{"forbid-read-up"}}
		resp.Status = 403
	} else {
		out, _ := json.Marshal(fleet.CallOutput{Content: p.answer, FinishReason: "stop", Usage: fleet.CallUsage{TotalTokens: 7}})
		if p.rawOut != "" {
			out = []byte(p.rawOut)
		}
		reply.Status, reply.OutputDigest = fleet.ReplyOK, sha256Hex(out)
		resp.Output = out
		if p.tamperOut {
			resp.Output, _ = json.Marshal(fleet.CallOutput{Content: "something else", FinishReason: "stop"})
		}
	}
	signer := p.id
	if p.badSig {
		signer = p.signedWith
	}
	signed, err := fleet.SealReply(signer.Key, reply)
	if err != nil {
		p.t.Fatal(err)
	}
	resp.Reply = signed
	return &fleet.CallAnswer{Response: resp}, nil
}

// peers is a fake fleet of peerNodes.
type peers []*peerNode

func (ps peers) Offered() map[string][]fleet.Peer {
	out := map[string][]fleet.Peer{}
	for _, p := range ps {
		out["lab-brain"] = append(out["lab-brain"], p.peer)
	}
	return out
}

func (ps peers) Candidates(brain string) []fleet.Peer { return ps.Offered()[brain] }

func (ps peers) Invoke(_ context.Context, peer fleet.Peer, req *fleet.CallRequest) (*fleet.CallAnswer, error) {
	for _, p := range ps {
		if p.peer.NodeID == peer.NodeID {
			return p.invoke(req)
		}
	}
	return nil, errors.New("no such peer")
}

func (ps peers) MemorySearch(context.Context, fleet.Peer, *fleet.CallRequest) (*fleet.CallAnswer, error) {
	return nil, errors.New("these peers hold no memories")
}

// remoteHarness is an origin and n peers of its own institution offering lab-brain.
func remoteHarness(t testing.TB, n int) (*harness, peers) {
	return remoteHarnessOf(t, n, true)
}

// remoteHarnessOf is remoteHarness with the peers of another institution, each its
// own, unless same.
func remoteHarnessOf(t testing.TB, n int, same bool) (*harness, peers) {
	h := newHarness(t, "builtin", nil)
	root := ""
	if same {
		root = filepath.Join(h.dir, identity.RootKeyFile)
	}
	var ps peers
	for range n {
		p := newPeer(t, h.p.cfg.FleetLog, "SECRET", root)
		p.originKey = h.id.Public()
		ps = append(ps, p)
	}
	h.p.SetFleet(ps)
	return h, ps
}

func TestRemoteCallIsSignedVerifiedAndRecorded(t *testing.T) {
	h, ps := remoteHarness(t, 1)
	s := &sink{}
	if err := h.p.Chat(context.Background(), ask("lab-brain", "what does the lab say?"), s); err != nil {
		t.Fatal(err)
	}
	if s.result.Content != "the lab's answer" || s.brain != "lab-brain" || s.receipt == nil {
		t.Fatalf("%+v", s)
	}
	h.p.Wait()
	adm, done := h.rec.byAction("brain.invoke"), h.rec.byAction("brain.complete")
	if d := detailOf(t, adm[0]); d["route"] != "remote" || d["peer"] != ps[0].peer.NodeID {
		t.Fatalf("admission detail %v", d)
	}
	if len(done[0].Parties) != 2 || string(done[0].Parties[0]) != string(ps[0].envelopes[0]) {
		t.Fatal("the completion record carries the envelope and the signed reply")
	}
	if done[0].Outputs[0].Name != "remote_output" {
		t.Fatalf("outputs %+v", done[0].Outputs)
	}
}

func TestRemoteRepliesThatDoNotVerify(t *testing.T) {
	other, err := identity.Init(t.TempDir(), "other", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		set  func(p *peerNode)
		code Code
	}{
		{"signed by another key", func(p *peerNode) { p.badSig, p.signedWith = true, other.Node }, CodeRemoteInvalidReply},
		{"answers another call", func(p *peerNode) { p.wrongCall = true }, CodeRemoteInvalidReply},
		{"output altered", func(p *peerNode) { p.tamperOut = true }, CodeRemoteInvalidReply},
		// Signed, but readers could take it apart: the origin reads it strictly.
		{"output with a repeated member", func(p *peerNode) {
			p.rawOut = `{"content":"a","content":"b","finish_reason":"stop","usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}}`
		}, CodeRemoteInvalidReply},
		{"output with a differently cased member", func(p *peerNode) {
			p.rawOut = `{"Content":"a","finish_reason":"stop","usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}}`
		}, CodeRemoteInvalidReply},
		{"output with an unknown member", func(p *peerNode) {
			p.rawOut = `{"content":"a","finish_reason":"stop","logprobs":null,"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}}`
		}, CodeRemoteInvalidReply},
		{"denied by the peer's policy", func(p *peerNode) { p.deny = true }, CodePolicyDenied},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, ps := remoteHarness(t, 1)
			c.set(ps[0])
			s := &sink{}
			e := outcome(t, h.p.Chat(context.Background(), ask("lab-brain", "x"), s), c.code)
			if s.result != nil || e.Receipt == nil {
				t.Fatalf("answered %v; receipt %v", s.result, e.Receipt)
			}
			h.p.Wait()
			if d := detailOf(t, h.rec.byAction("brain.complete")[0]); d["error"] != string(c.code) {
				t.Fatalf("completion detail %v", d)
			}
		})
	}
}

func TestRemoteFailsOverOnlyWhenNeverDelivered(t *testing.T) {
	h, ps := remoteHarness(t, 2)
	ps[0].unreach = true
	s := &sink{}
	if err := h.p.Chat(context.Background(), ask("lab-brain", "x"), s); err != nil {
		t.Fatal(err)
	}
	if len(ps[0].envelopes) != 1 || len(ps[1].envelopes) != 1 {
		t.Fatalf("calls: %d, %d", len(ps[0].envelopes), len(ps[1].envelopes))
	}
}

func TestRemoteRefusedBeforeSendingBelowAccreditation(t *testing.T) {
	h, ps := remoteHarness(t, 1)
	ps[0].peer.Posture = "OFFICIAL"
	inv := ask("lab-brain", "x")
	inv.Classification = "SECRET"
	outcome(t, h.p.Chat(context.Background(), inv, &sink{}), CodePolicyDenied)
	if len(ps[0].envelopes) != 0 {
		t.Fatal("SECRET data was sent to a peer accredited OFFICIAL")
	}
}

func TestServingAPeerRecordsItsEnvelope(t *testing.T) {
	h := newHarness(t, "builtin", nil)
	inv := ask("quick", "hello")
	inv.Principal = &policy.Principal{ID: "u@node_x", Tenant: "hospital", Clearance: policy.Official}
	inv.Peer = &PeerCall{Origin: "node_x", Envelope: []byte(`{"v":"test"}`), Call: sha256Hex([]byte("call"))}
	if err := h.p.Chat(context.Background(), inv, &sink{}); err != nil {
		t.Fatal(err)
	}
	adm := h.rec.byAction("brain.invoke")[0]
	if string(adm.Parties[0]) != `{"v":"test"}` || detailOf(t, adm)["origin"] != "node_x" {
		t.Fatalf("admission %+v", adm)
	}
	if inv.Record == "" || inv.Decision == nil || inv.Decision.Effect != "allow" {
		t.Fatalf("the invocation says what became of the call: record %q decision %+v", inv.Record, inv.Decision)
	}
	// A peer's call is never forwarded again.
	fwd := ask("lab-brain", "x")
	fwd.Peer = inv.Peer
	outcome(t, h.p.Chat(context.Background(), fwd, &sink{}), CodeModelNotFound)
}
