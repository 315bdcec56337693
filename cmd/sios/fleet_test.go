package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// The fleet tests run every node as its own 'sios up' process on loopback.

const tumourBrain = `id: tumour-board
kind: domain
title: Tumour board assistant
system_prompt: You summarise tumour board cases.
backend: builtin
builtin: summarise
classification: SECRET
`

// institution is one operator's nodes: the first holds the root key.
type institution struct {
	root string // root key file
	dirs []string
}

func newInstitution(t *testing.T, names ...string) *institution {
	t.Helper()
	in := &institution{}
	for i, name := range names {
		dir := filepath.Join(t.TempDir(), name)
		if i == 0 {
			ok(t, dir, "init", "--name", name)
			in.root = filepath.Join(dir, identity.RootKeyFile)
		} else {
			ok(t, dir, "init", "--name", name, "--root", in.root)
		}
		in.dirs = append(in.dirs, dir)
	}
	return in
}

// trusts pins the roots of others in every node of in.
func (in *institution) trusts(t *testing.T, others ...*institution) {
	t.Helper()
	for _, o := range others {
		f := filepath.Join(t.TempDir(), "root.json")
		ok(t, o.dirs[0], "root", "export", "--out", f)
		for _, d := range in.dirs {
			ok(t, d, "trust", "add-root", f)
		}
	}
}

func nodeIDOf(t *testing.T, dir string) string {
	t.Helper()
	return decode[map[string]string](t, ok(t, dir, "id", "--json"))["node_id"]
}

// institutionOf is the root id of dir's institution.
func institutionOf(t *testing.T, dir string) string {
	t.Helper()
	return decode[map[string]string](t, ok(t, dir, "id", "--json"))["root_id"]
}

func peersOf(t *testing.T, dir string) []fleet.Peer {
	t.Helper()
	return decode[[]fleet.Peer](t, ok(t, dir, "fleet", "peers", "--json"))
}

func peerState(peers []fleet.Peer, id string) string {
	for _, p := range peers {
		if p.NodeID == id {
			return p.State
		}
	}
	return "unknown"
}

// eventually polls cond until it holds or the time is up.
func eventually(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		done, state := cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, within, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// seesAlive waits until dir's node sees each of ids alive.
func seesAlive(t *testing.T, dir string, ids ...string) {
	t.Helper()
	eventually(t, 20*time.Second, filepath.Base(dir)+" sees its peers alive", func() (bool, string) {
		ps := peersOf(t, dir)
		for _, id := range ids {
			if peerState(ps, id) != fleet.StateAlive {
				return false, fmt.Sprintf("%s is %s", id, peerState(ps, id))
			}
		}
		return true, ""
	})
}

// ledgerRecords reads every record of a stopped node's ledger.
func ledgerRecords(t *testing.T, dir string) []*oar.Record {
	t.Helper()
	rd := openTestReader(t, dir)
	raws, err := rd.Entries(context.Background(), 0, rd.Size())
	if err != nil {
		t.Fatal(err)
	}
	var out []*oar.Record
	for _, raw := range raws {
		e, err := oar.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if e.Record != nil {
			out = append(out, e.Record)
		}
	}
	return out
}

func TestFleetThreeNodesTwoInstitutions(t *testing.T) {
	hospital := newInstitution(t, "a", "b")
	lab := newInstitution(t, "c")
	hospital.trusts(t, lab)
	lab.trusts(t, hospital)
	a, b, c := hospital.dirs[0], hospital.dirs[1], lab.dirs[0]
	os.MkdirAll(filepath.Join(c, "brains"), 0o700)
	if err := os.WriteFile(filepath.Join(c, "brains", "tumour.yaml"), []byte(tumourBrain), 0o600); err != nil {
		t.Fatal(err)
	}
	na := startNode(t, a, "--fleet-listen", "127.0.0.1:0")
	nb := startNode(t, b, "--fleet-listen", "127.0.0.1:0", "--join", na.fleetAddr)
	nc := startNode(t, c, "--fleet-listen", "127.0.0.1:0", "--join", nb.fleetAddr) // learns of A through B
	idA, idB, idC := nodeIDOf(t, a), nodeIDOf(t, b), nodeIDOf(t, c)
	seesAlive(t, a, idB, idC)
	seesAlive(t, b, idA, idC)
	seesAlive(t, c, idA, idB)

	routes := decode[map[string][]map[string]any](t, ok(t, a, "fleet", "routes", "--json"))
	if r := routes["tumour-board"]; len(r) != 1 || r[0]["node_id"] != idC {
		t.Fatalf("A's route to tumour-board: %v", r)
	}
	if r := routes["summariser"]; len(r) == 0 || r[0]["local"] != true {
		t.Fatalf("A's route to a brain it hosts must be local first: %v", r)
	}

	key := na.addPrincipal(t, "default", "alice", "SECRET")
	cl := na.client(key)
	ctx := context.Background()
	// C is of another institution: alice's data goes there under her grant.
	ok(t, "", "consent", "grant", "--node", na.url, "--api-key", key, "--to", institutionOf(t, c), "--action", "invoke",
		"--brain", "tumour-board", "--max", "SECRET", "--purpose", "direct care: tumour board", "--expires", "1d")
	models, err := cl.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(models.Data, func(m openai.Model) bool { return m.ID == "tumour-board" }) {
		t.Fatalf("/v1/models on A does not list the brain C offers")
	}
	resp, err := cl.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    "tumour-board",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Case 7: a 2 cm lesion. The board recommends surgery.")},
	})
	if err != nil {
		t.Fatalf("remote brain through A: %v", err)
	}
	if got := resp.Choices[0].Message.Content; !strings.Contains(got, "2 cm lesion") {
		t.Fatalf("answer does not come from the summariser on C: %q", got)
	}
	// Streaming works across the boundary too, with no change for the client.
	st := cl.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model: "tumour-board", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Case 8: benign.")}})
	var streamed strings.Builder
	for st.Next() {
		if len(st.Current().Choices) > 0 {
			streamed.WriteString(st.Current().Choices[0].Delta.Content)
		}
	}
	if st.Err() != nil || !strings.Contains(streamed.String(), "benign") {
		t.Fatalf("streamed remote answer: %q, %v", streamed.String(), st.Err())
	}

	for _, n := range []*runningNode{na, nb, nc} {
		n.stop(t)
	}
	for _, d := range []string{a, b, c} {
		ok(t, d, "audit", "verify")
	}
	// A's completion record holds C's signed reply, which names C's own record.
	certC, err := identity.LoadCertificate(filepath.Join(c, identity.NodeCertFile))
	if err != nil {
		t.Fatal(err)
	}
	pubC, _, err := certC.Verify()
	if err != nil {
		t.Fatal(err)
	}
	var replies []*fleet.Reply
	for _, r := range ledgerRecords(t, a) {
		if r.Action != "brain.complete" || r.Resource != "brain/tumour-board" {
			continue
		}
		if len(r.Parties) != 2 {
			t.Fatalf("A's completion record has %d parties, want the envelope and C's reply", len(r.Parties))
		}
		env, err := fleet.ParseEnvelope(r.Parties[0])
		if err != nil || env.Origin != idA || env.Target != idC {
			t.Fatalf("envelope in A's record: %v %+v", err, env)
		}
		reply, err := fleet.ParseReply(r.Parties[1])
		if err != nil {
			t.Fatal(err)
		}
		if err := reply.Verify(pubC); err != nil {
			t.Fatalf("C's reply in A's record does not verify with C's key: %v", err)
		}
		if reply.Call != fleet.CallHash(r.Parties[0]) || reply.Status != fleet.ReplyOK || r.Outputs[0].SHA256 != reply.OutputDigest {
			t.Fatalf("reply does not answer the envelope beside it: %+v", reply)
		}
		replies = append(replies, reply)
	}
	if len(replies) != 2 {
		t.Fatalf("A holds %d remote completion records, want 2", len(replies))
	}
	// A regulator walks across: the record the reply names is in C's ledger, holding A's envelope.
	inC := map[string]*oar.Record{}
	for _, r := range ledgerRecords(t, c) {
		e, _ := r.Encode()
		inC[hex.EncodeToString(oar.RecordHash(e))] = r
	}
	for _, reply := range replies {
		r := inC[reply.Record]
		if r == nil || r.Action != "brain.invoke" || len(r.Parties) != 1 || fleet.CallHash(r.Parties[0]) != reply.Call {
			t.Fatalf("C's ledger has no admission record %s for the call", reply.Record)
		}
		if r.Actor.ID != "alice@"+idA {
			t.Fatalf("C records the principal as %q", r.Actor.ID)
		}
	}
}

func TestFleetRefusesAnUntrustedNode(t *testing.T) {
	hospital := newInstitution(t, "a")
	stranger := newInstitution(t, "d")
	stranger.trusts(t, hospital) // D trusts A, but A does not trust D
	a, d := hospital.dirs[0], stranger.dirs[0]
	na := startNode(t, a, "--fleet-listen", "127.0.0.1:0")
	nd := startNode(t, d, "--fleet-listen", "127.0.0.1:0", "--join", na.fleetAddr)
	idD := nodeIDOf(t, d)
	eventually(t, 10*time.Second, "A audits the refusal", func() (bool, string) {
		out := ok(t, a, "audit", "tail", "-n", "50")
		return strings.Contains(out, "fleet.refuse") && strings.Contains(out, "peer/"+idD), out
	})
	if !strings.Contains(nd.stderr.String(), "fleet join failed") {
		t.Fatalf("D does not report its failed join: %s", nd.stderr)
	}
	if ps := peersOf(t, a); len(ps) != 0 {
		t.Fatalf("A admitted peers: %+v", ps)
	}
	// Nor can D get a brain invoked on A by calling its fleet API directly: the
	// handshake fails before any request is read.
	certA, _ := identity.LoadCertificate(filepath.Join(a, identity.NodeCertFile))
	_, rootA, _ := certA.Verify()
	pd := newPeerClient(t, d, na.fleetAddr, fleet.NewTrust(rootA))
	if resp, err := pd.http.Post("https://"+na.fleetAddr+"/fleet/v1/invoke", "application/json", strings.NewReader(`{}`)); err == nil {
		resp.Body.Close()
		t.Fatalf("A answered an untrusted node's call with %d", resp.StatusCode)
	} else if !strings.Contains(err.Error(), "bad certificate") {
		t.Fatalf("untrusted call failed otherwise: %v", err)
	}
	if ps := peersOf(t, d); peerState(ps, nodeIDOf(t, a)) == fleet.StateAlive {
		t.Fatalf("D counts A as a live peer")
	}
	na.stop(t)
	var refusal *oar.Record
	for _, r := range ledgerRecords(t, a) {
		if r.Action == "fleet.refuse" {
			refusal = r
		}
	}
	if refusal == nil || !bytes.Contains(refusal.Detail, []byte("trusted institution root")) {
		t.Fatalf("refusal record: %+v", refusal)
	}
}

func withClassification(class string) option.RequestOption {
	return option.WithHeader("X-Sios-Classification", class)
}

// peerClient is a node of a trusted institution speaking to a fleet listener directly,
// as a misbehaving peer would.
type peerClient struct {
	node *identity.Node
	http *http.Client
	addr string
}

func newPeerClient(t *testing.T, dir, addr string, trust fleet.Trust) *peerClient {
	t.Helper()
	n, err := identity.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := fleet.NewTLSCertificate(n, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cfg := fleet.ClientTLSConfig(cert, func() fleet.Trust { return trust }, []string{fleet.ProtoHTTP}, "")
	return &peerClient{node: n, addr: addr, http: &http.Client{Transport: &http.Transport{
		DialTLSContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&tls.Dialer{Config: cfg}).DialContext(ctx, network, addr)
		}}}}
}

// call posts an envelope and payload to /fleet/v1/invoke and returns the answer.
func (p *peerClient) call(t *testing.T, env, payload []byte) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]json.RawMessage{"envelope": env, "payload": payload})
	resp, err := p.http.Post("https://"+p.addr+"/fleet/v1/invoke", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func (p *peerClient) envelope(t *testing.T, key *identity.PrivateKey, origin, target string, issued, expires time.Time, payload []byte) []byte {
	t.Helper()
	return p.envelopeWith(t, key, origin, target, issued, expires, payload, nil)
}

// envelopeWith is envelope carrying a consent grant (fed-call/2) when grant is set.
func (p *peerClient) envelopeWith(t *testing.T, key *identity.PrivateKey, origin, target string, issued, expires time.Time, payload, grant []byte) []byte {
	t.Helper()
	sum := sha256.Sum256(payload)
	env, err := fleet.SealEnvelope(key, fleet.Envelope{
		Origin: origin, Target: target, Issued: oar.FormatTime(issued), Expires: oar.FormatTime(expires),
		Principal: "mallory", Tenant: "default", Clearance: "SECRET", Classification: "OFFICIAL",
		Brain: "summariser", PayloadDigest: hex.EncodeToString(sum[:]), Consent: grant,
	})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// grant is a grant made at the peer's own node, signed with its key, by its principal
// mallory in tenant default, for institution to invoke brain up to SECRET for a day.
func (p *peerClient) grant(t *testing.T, to, brain string, now time.Time) []byte {
	t.Helper()
	b, err := consent.Sign(p.node.Key, consent.Grant{
		Grantor:  consent.Grantor{Principal: "mallory", Tenant: "default", Clearance: policy.Secret},
		Origin:   consent.Origin{Node: p.node.ID(), Institution: p.node.Cert.RootID},
		Audience: consent.Audience{Institution: to},
		Scope:    consent.Scope{Action: consent.ActionInvoke, Brain: brain, Max: policy.Secret},
		Purpose:  "a peer's test call", Issued: oar.FormatTime(now.Truncate(time.Second)),
		Expires: oar.FormatTime(now.Truncate(time.Second).Add(24 * time.Hour)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFleetRejectsForgedReplayedAndExpiredEnvelopes(t *testing.T) {
	hospital := newInstitution(t, "c", "x", "y")
	c, x, y := hospital.dirs[0], hospital.dirs[1], hospital.dirs[2]
	nc := startNode(t, c, "--fleet-listen", "127.0.0.1:0")
	idC, idY := nodeIDOf(t, c), nodeIDOf(t, y)
	certC, _ := identity.LoadCertificate(filepath.Join(c, identity.NodeCertFile))
	_, rootPub, _ := certC.Verify()
	px := newPeerClient(t, x, nc.fleetAddr, fleet.NewTrust(rootPub))
	ny, _ := identity.Load(y)
	payload := []byte(`{"messages":[{"role":"user","content":"Summarise: all quiet."}]}`)
	now := time.Now()

	good := px.envelope(t, px.node.Key, px.node.ID(), idC, now, now.Add(time.Minute), payload)
	if out := px.call(t, good, payload); out["reply"] == nil {
		t.Fatalf("a valid envelope was refused: %v", out)
	}
	cases := []struct {
		name, code string
		env        []byte
		payload    []byte
	}{
		{"replayed", "envelope_refused", good, payload},
		{"expired", "envelope_refused", px.envelope(t, px.node.Key, px.node.ID(), idC, now.Add(-2*time.Minute), now.Add(-time.Minute), payload), payload},
		{"another node's origin, signed by x", "envelope_forged", px.envelope(t, px.node.Key, idY, idC, now, now.Add(time.Minute), payload), payload},
		{"y's origin and key, sent by x", "envelope_forged", px.envelope(t, ny.Key, idY, idC, now, now.Add(time.Minute), payload), payload},
		{"signed by another key", "envelope_forged", px.envelope(t, ny.Key, px.node.ID(), idC, now, now.Add(time.Minute), payload), payload},
		{"addressed to another node", "envelope_refused", px.envelope(t, px.node.Key, px.node.ID(), idY, now, now.Add(time.Minute), payload), payload},
		{"payload swapped", "payload_mismatch", px.envelope(t, px.node.Key, px.node.ID(), idC, now, now.Add(time.Minute), payload), []byte(`{"messages":[]}`)},
	}
	for _, tc := range cases {
		out := px.call(t, tc.env, tc.payload)
		e, _ := out["error"].(map[string]any)
		if out["reply"] != nil || e == nil || e["code"] != tc.code {
			t.Errorf("%s: got %v, want refusal %s", tc.name, out, tc.code)
		}
	}
	nc.stop(t)
	refused := 0
	for _, r := range ledgerRecords(t, c) {
		if r.Action == "fleet.refuse-call" && r.Resource == "peer/"+px.node.ID() {
			refused++
		}
	}
	if refused != len(cases) {
		t.Fatalf("C audited %d refused calls, want %d", refused, len(cases))
	}
	ok(t, c, "audit", "verify")
}

func TestFleetKilledNodeIsWithdrawnAndCatchesUp(t *testing.T) {
	hospital := newInstitution(t, "a", "b", "e")
	a, b, e := hospital.dirs[0], hospital.dirs[1], hospital.dirs[2]
	os.MkdirAll(filepath.Join(b, "brains"), 0o700)
	os.WriteFile(filepath.Join(b, "brains", "tumour.yaml"), []byte(tumourBrain), 0o600)
	na := startNode(t, a, "--fleet-listen", "127.0.0.1:0")
	nb := startNode(t, b, "--fleet-listen", "127.0.0.1:0", "--join", na.fleetAddr)
	idA, idB, idE := nodeIDOf(t, a), nodeIDOf(t, b), nodeIDOf(t, e)
	seesAlive(t, a, idB)
	key := na.addPrincipal(t, "default", "alice", "SECRET")
	ctx := context.Background()
	ask := func(model string) error {
		_, err := na.client(key).Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Summarise: stable.")}})
		return err
	}
	if err := ask("tumour-board"); err != nil {
		t.Fatal(err)
	}

	bAddr := nb.fleetAddr
	nb.cmd.Process.Kill()
	nb.cmd.Wait()
	eventually(t, 15*time.Second, "A marks B dead and withdraws its routes", func() (bool, string) {
		routes := decode[map[string][]map[string]any](t, ok(t, a, "fleet", "routes", "--json"))
		state := peerState(peersOf(t, a), idB)
		return state == fleet.StateDead && len(routes["tumour-board"]) == 0, state
	})
	if err := ask("summariser"); err != nil {
		t.Fatalf("a local brain stopped answering while a peer was down: %v", err)
	}
	ae := apiError(t, ask("tumour-board"), http.StatusServiceUnavailable)
	if !strings.Contains(ae.Message, idB) || !strings.Contains(ae.Message, "dead") {
		t.Fatalf("the remote-only brain's error does not say why: %s", ae.Message)
	}

	// While B is down, a newly enrolled node joins: no other node's config changes.
	ne := startNode(t, e, "--fleet-listen", "127.0.0.1:0", "--join", na.fleetAddr)
	seesAlive(t, a, idE)
	nb = startNode(t, b, "--fleet-listen", bAddr, "--join", na.fleetAddr)
	seesAlive(t, b, idA, idE)
	seesAlive(t, a, idB)
	if err := ask("tumour-board"); err != nil {
		t.Fatalf("after B's restart: %v", err)
	}
	ne.stop(t)
	nb.stop(t)
	na.stop(t)
}

func TestFleetOfficialNodeNeverReceivesSecretWork(t *testing.T) {
	hospital := newInstitution(t, "a", "o", "s")
	a, o, s := hospital.dirs[0], hospital.dirs[1], hospital.dirs[2]
	for _, d := range []string{o, s} {
		os.MkdirAll(filepath.Join(d, "brains"), 0o700)
		os.WriteFile(filepath.Join(d, "brains", "tumour.yaml"), []byte(tumourBrain), 0o600)
	}
	os.WriteFile(filepath.Join(o, "config.json"), []byte(`{"accreditation": "OFFICIAL"}`), 0o600)
	na := startNode(t, a, "--fleet-listen", "127.0.0.1:0")
	no := startNode(t, o, "--fleet-listen", "127.0.0.1:0", "--join", na.fleetAddr)
	idO := nodeIDOf(t, o)
	seesAlive(t, a, idO)
	key := na.addPrincipal(t, "default", "alice", "SECRET")
	chat := func(class string) error {
		_, err := na.client(key).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model: "tumour-board", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Summarise: case.")}},
			withClassification(class))
		return err
	}
	// Only O offers the brain: SECRET work is refused at A, OFFICIAL work goes to O.
	ae := apiError(t, chat("SECRET"), http.StatusForbidden)
	if !strings.Contains(ae.Message, "forbid-flow-down") {
		t.Fatalf("refusal does not name the policy: %s", ae.Message)
	}
	if err := chat("OFFICIAL"); err != nil {
		t.Fatal(err)
	}
	// The operator can ask the same question of policy, with O's attributes from the running node.
	r := sios(t, a, "policy", "check", "--principal", "alice", "--tenant", "default", "--peer", idO, "--classification", "SECRET")
	if r.code != exitDeny || !strings.Contains(r.stdout, "forbid-flow-down") || !strings.Contains(r.stdout, "accreditation OFFICIAL") {
		t.Fatalf("policy check --peer does not explain the refusal:\n%s", r.stdout)
	}
	ok(t, a, "policy", "check", "--principal", "alice", "--tenant", "default", "--peer", idO, "--classification", "OFFICIAL")
	// With S (TOP-SECRET) also offering it, SECRET work goes to S, never to O.
	ns := startNode(t, s, "--fleet-listen", "127.0.0.1:0", "--join", na.fleetAddr)
	seesAlive(t, a, nodeIDOf(t, s))
	for i := 0; i < 5; i++ {
		if err := chat("SECRET"); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*runningNode{ns, no, na} {
		n.stop(t)
	}
	served := map[string]int{}
	for _, d := range []string{o, s} {
		for _, r := range ledgerRecords(t, d) {
			if r.Action == "brain.invoke" {
				served[filepath.Base(d)+"/"+r.Classification]++
			}
		}
	}
	if served["o/SECRET"] != 0 || served["s/SECRET"] != 5 || served["o/OFFICIAL"] != 1 {
		t.Fatalf("work served: %v", served)
	}
}

func TestDemoFleet(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	out := ok(t, "", "demo", "fleet", "--dir", dir)
	for _, want := range []string{"hospital-a's route table: tumour-board → ", "2 cm lesion", "where to look", "audit show"} {
		if !strings.Contains(out, want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out)
		}
	}
	ok(t, filepath.Join(dir, "hospital-a"), "audit", "verify")
	ok(t, filepath.Join(dir, "lab-c"), "audit", "verify")
	fails(t, 1, "", []string{"demo", "fleet", "--dir", dir}, "not empty")
}

// A node whose operator restricts fleet traffic to 127.0.0.2 never connects to a peer on
// 127.0.0.1, though the peer is of its own institution: the dial is refused before it
// is made, and audited.
func TestFleetNetworksRefuseAnOutsidePeer(t *testing.T) {
	site := newInstitution(t, "a", "d")
	a, d := site.dirs[0], site.dirs[1]
	os.WriteFile(filepath.Join(d, "config.json"), []byte(`{"fleet_networks": ["127.0.0.2/32"]}`), 0o600)
	na := startNode(t, a, "--fleet-listen", "127.0.0.1:0")
	nd := startNode(t, d, "--fleet-listen", "127.0.0.2:0", "--join", na.fleetAddr)
	idD := nodeIDOf(t, d)
	eventually(t, 10*time.Second, "D audits the refused dial", func() (bool, string) {
		out := ok(t, d, "audit", "tail", "-n", "20")
		return strings.Contains(out, "egress.refuse") && strings.Contains(out, na.fleetAddr), out
	})
	if peerState(peersOf(t, a), idD) == fleet.StateAlive {
		t.Fatal("A admitted D, which may not reach it")
	}
	nd.stop(t)
	na.stop(t)
	for _, r := range ledgerRecords(t, a) {
		if strings.HasPrefix(r.Action, "fleet.") {
			t.Fatalf("A saw D's traffic: %s %s", r.Action, r.Resource)
		}
	}
	var refusal *oar.Record
	for _, r := range ledgerRecords(t, d) {
		if r.Action == "egress.refuse" {
			refusal = r
		}
	}
	if refusal == nil || !bytes.Contains(refusal.Detail, []byte("fleet_networks")) {
		t.Fatalf("refusal record: %+v", refusal)
	}
}

// A node states the rate of peers' calls it serves in its limits record, and holds to it;
// an origin's caller learns when to retry.
func TestFleetPeerRateLimit(t *testing.T) {
	site := newInstitution(t, "c", "x", "a")
	c, x, a := site.dirs[0], site.dirs[1], site.dirs[2]
	os.WriteFile(filepath.Join(c, "config.json"), []byte(`{"peer_requests_per_minute": 1}`), 0o600)
	os.MkdirAll(filepath.Join(c, "brains"), 0o700)
	os.WriteFile(filepath.Join(c, "brains", "tumour.yaml"), []byte(tumourBrain), 0o600)
	nc := startNode(t, c, "--fleet-listen", "127.0.0.1:0")
	na := startNode(t, a, "--fleet-listen", "127.0.0.1:0", "--join", nc.fleetAddr)
	idC := nodeIDOf(t, c)
	seesAlive(t, a, idC)
	key := na.addPrincipal(t, "default", "alice", "SECRET")
	ask := func() error {
		_, err := na.client(key).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model: "tumour-board", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Summarise: fine.")}})
		return err
	}
	if err := ask(); err != nil {
		t.Fatalf("first call: %v", err)
	}
	ae := apiError(t, ask(), http.StatusTooManyRequests)
	if ae.Response == nil || ae.Response.Header.Get("Retry-After") == "" || !strings.Contains(ae.Message, "peer_requests") && !strings.Contains(ae.Message, "calls a minute") {
		t.Fatalf("the caller is not told when to retry: %s", ae.Message)
	}

	certC, _ := identity.LoadCertificate(filepath.Join(c, identity.NodeCertFile))
	_, rootPub, _ := certC.Verify()
	px := newPeerClient(t, x, nc.fleetAddr, fleet.NewTrust(rootPub))
	payload := []byte(`{"messages":[{"role":"user","content":"Summarise: fine."}]}`)
	now := time.Now()
	out := px.call(t, px.envelope(t, px.node.Key, px.node.ID(), idC, now, now.Add(time.Minute), payload), payload)
	if e, _ := out["error"].(map[string]any); e == nil || e["code"] != "peer_rate_limited" || e["status"] != float64(429) {
		t.Fatalf("a call over the limit: %v", out)
	}
	var limits map[string]any
	for _, r := range decode[[]map[string]any](t, ok(t, c, "fleet", "records", "--json")) {
		if r["kind"] == "limits" && r["node"] == idC {
			limits = r["body"].(map[string]any)
		}
	}
	if limits["requests_per_minute"] != float64(1) {
		t.Fatalf("C's limits record: %v", limits)
	}
}
