package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
)

// The two stories of docs/consent.md, each institution a 'sios up' process of its own on
// loopback: a small hospital's clinician uses the regional centre's brain under her
// grant, and Dr Okafor draws at her practice on what the hospital holds about her
// cases. Every refusal is checked for its code and its record.

const oncologyBrain = `id: oncology-mdt
kind: domain
title: Oncology multidisciplinary team
system_prompt: You summarise oncology cases for the referring clinician.
backend: builtin
builtin: summarise
classification: OFFICIAL-SENSITIVE
`

const genomicsBrain = `id: genomics-board
kind: domain
title: Genomics board
system_prompt: You summarise genomic findings.
backend: builtin
builtin: summarise
classification: OFFICIAL-SENSITIVE
`

// canary is a string that appears nowhere unless the memory holding it was released.
func canary(t *testing.T, what string) string {
	b := make([]byte, 8)
	rand.Read(b)
	return "CANARY-" + what + "-" + hex.EncodeToString(b)
}

// grantFile makes a grant with 'sios consent grant --json' and writes what it printed
// to a file, as the grantor would hand it over; it returns the file and the grant's id.
func grantFile(t *testing.T, nodeURL, key string, args ...string) (string, string) {
	t.Helper()
	out := ok(t, "", append([]string{"consent", "grant", "--node", nodeURL, "--api-key", key, "--json"}, args...)...)
	g := decode[map[string]any](t, out)
	id, _ := g["id"].(string)
	if len(id) != 32 || g["expires"] == nil || g["grant"] == nil {
		t.Fatalf("consent grant printed %s", out)
	}
	f := filepath.Join(t.TempDir(), "grant.json")
	if err := os.WriteFile(f, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return f, id
}

// grantBytes is the canonical grant in a file grantFile wrote.
func grantBytes(t *testing.T, file string) []byte {
	t.Helper()
	g, err := readGrantFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// search posts a governed memory search as node p would, for principal, under grant.
func (p *peerClient) search(t *testing.T, target, principal string, subjects []string, grant []byte) map[string]any {
	t.Helper()
	payload, err := jcs.Marshal(&invoke.SearchPayload{Query: "stenosis", Subjects: subjects})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(payload)
	now := time.Now()
	env, err := fleet.SealEnvelope(p.node.Key, fleet.Envelope{
		Origin: p.node.ID(), Target: target, Issued: oar.FormatTime(now), Expires: oar.FormatTime(now.Add(time.Minute)),
		Principal: principal, Tenant: "gp", Clearance: "SECRET", Classification: "OFFICIAL", Brain: invoke.HolderBrain,
		PayloadDigest: hex.EncodeToString(sum[:]), Consent: grant,
	})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]json.RawMessage{"envelope": env, "payload": payload})
	_, _, b := p.post(t, fleet.MemorySearchPath, body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("memory search answer: %s", b)
	}
	return out
}

// refusedWith says whether a fleet answer is a refusal with code, signed or not.
func refusedWith(out map[string]any, code string) bool {
	if e, _ := out["error"].(map[string]any); e != nil {
		return e["code"] == code
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(out["reply"])
	raw, err := jcs.Canonicalize(bytes.TrimSpace(buf.Bytes()))
	if err != nil {
		return false
	}
	r, err := fleet.ParseReply(raw)
	return err == nil && r.Status != fleet.ReplyOK && r.Error == code
}

// scanFor fails the test if any file under dir holds any of the needles.
func scanFor(t *testing.T, dir string, needles ...string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				t.Errorf("%s holds %s", path, n)
			}
		}
		return nil
	})
	if err != nil || files == 0 {
		t.Fatalf("scan of %s: %v (%d files)", dir, err, files)
	}
}

// recordHash is a record's hash as links and replies name it.
func recordHash(r *oar.Record) string {
	e, _ := r.Encode()
	return hex.EncodeToString(oar.RecordHash(e))
}

func TestConsentStories(t *testing.T) {
	hosp, regional, practice, third := newInstitution(t, "h"), newInstitution(t, "r"), newInstitution(t, "p"), newInstitution(t, "t")
	hosp.trusts(t, regional, practice, third)
	regional.trusts(t, hosp, third)
	practice.trusts(t, hosp)
	h, r, p, x := hosp.dirs[0], regional.dirs[0], practice.dirs[0], third.dirs[0]
	writeFile(t, r, "brains/oncology.yaml", oncologyBrain)
	writeFile(t, r, "brains/genomics.yaml", genomicsBrain)
	nh := startNode(t, h, "--fleet-listen", "127.0.0.1:0")
	nr := startNode(t, r, "--fleet-listen", "127.0.0.1:0", "--join", nh.fleetAddr)
	np := startNode(t, p, "--fleet-listen", "127.0.0.1:0", "--join", nh.fleetAddr)
	idH, idR, idP := nodeIDOf(t, h), nodeIDOf(t, r), nodeIDOf(t, p)
	rootR, rootP := institutionOf(t, r), institutionOf(t, p)
	seesAlive(t, h, idR, idP)
	seesAlive(t, p, idH)
	eventually(t, 20*time.Second, "the hospital routes oncology-mdt to the regional centre", func() (bool, string) {
		routes := decode[map[string][]map[string]any](t, ok(t, h, "fleet", "routes", "--json"))
		return len(routes["oncology-mdt"]) == 1, fmt.Sprint(routes["oncology-mdt"])
	})
	_, rootPubH := publicKeyOf(t, h)

	// Story 1: Dr Adeyemi at the hospital, the regional centre's oncology brain.
	adeyemi := nh.addPrincipal(t, "oncology", "dr.adeyemi", "OFFICIAL-SENSITIVE")
	question := []string{"ask", "--node", nh.url, "--api-key", adeyemi, "--brain", "oncology-mdt", "--classification", "OFFICIAL-SENSITIVE",
		"Summarise: case 4411, 3 cm mass, second opinion requested."}
	fails(t, 1, "", question, "403 consent_required", "oncology-mdt")
	file, invokeGrant := grantFile(t, nh.url, adeyemi, "--to", rootR, "--to-node", idR, "--action", "invoke", "--brain", "oncology-mdt",
		"--max", "OFFICIAL-SENSITIVE", "--purpose", "direct care: second opinion on case 4411", "--expires", "30d", "--uses", "3")
	if out := ok(t, "", question...); !strings.Contains(out, "3 cm mass") || !strings.Contains(out, "brain:   oncology-mdt") {
		t.Fatalf("served answer: %s", out)
	}
	// Policy explains decisions with the grant in them; another principal cannot revoke
	// it, nor learn it exists; a grant above one's clearance is refused by policy.
	out := ok(t, h, "policy", "check", "--principal", "dr.adeyemi", "--tenant", "oncology", "--peer", idR,
		"--classification", "OFFICIAL-SENSITIVE", "--grant", file)
	for _, want := range []string{"decision: allow", "context.grant (a verified consent grant covers the request):",
		`  brain: "oncology-mdt"`, "  max_classification: 2 (OFFICIAL-SENSITIVE)", "consent yes"} {
		if !strings.Contains(out, want) {
			t.Fatalf("policy check --grant lacks %q:\n%s", want, out)
		}
	}
	if r := sios(t, h, "policy", "check", "--principal", "dr.adeyemi", "--tenant", "oncology", "--peer", idR, "--classification", "SECRET",
		"--grant", file); r.code != exitDeny || !strings.Contains(r.stdout, "forbid-cross-institution-without-grant") {
		t.Fatalf("SECRET data under the grant: %+v", r)
	}
	if out := ok(t, h, "policy", "check", "--principal", "dr.adeyemi", "--tenant", "oncology", "--grant", file); !strings.Contains(out, "permit-consent-grant") {
		t.Fatalf("may she make it: %s", out)
	}
	colleague := nh.addPrincipal(t, "oncology", "dr.colleague", "SECRET")
	fails(t, 1, "", []string{"consent", "revoke", "--node", nh.url, "--api-key", colleague, invokeGrant}, "404 consent_unknown")
	fails(t, 1, "", []string{"consent", "grant", "--node", nh.url, "--api-key", adeyemi, "--to", rootR, "--action", "invoke", "--brain", "oncology-mdt",
		"--max", "SECRET", "--purpose", "x", "--expires", "1d"}, "403 policy_denied")
	fails(t, 2, "", []string{"consent", "grant", "--node", nh.url, "--api-key", adeyemi, "--to", rootR, "--action", "invoke", "--brain", "oncology-mdt",
		"--max", "OFFICIAL", "--purpose", "x", "--expires", "400d"}, "365d")
	// SECRET data, another brain: not covered.
	fails(t, 1, "", []string{"ask", "--node", nh.url, "--api-key", adeyemi, "--brain", "oncology-mdt", "--classification", "SECRET", "x"}, "consent_required")
	fails(t, 1, "", []string{"ask", "--node", nh.url, "--api-key", adeyemi, "--brain", "genomics-board", "x"}, "consent_required", "genomics-board")
	// Sent straight to the regional centre by the hospital's node for another brain, or
	// replayed by a third institution: refused there, and recorded.
	certR, _ := identity.LoadCertificate(filepath.Join(r, identity.NodeCertFile))
	_, rootPubR, _ := certR.Verify()
	ph := newPeerClient(t, h, nr.fleetAddr, fleet.NewTrust(rootPubR))
	px := newPeerClient(t, x, nr.fleetAddr, fleet.NewTrust(rootPubR))
	invokeRaw := grantBytes(t, file)
	summary := []byte(`{"messages":[{"role":"user","content":"Summarise: case 4411."}]}`)
	now := time.Now()
	env := ph.envelopeWith(t, ph.node.Key, idH, idR, now, now.Add(time.Minute), summary, invokeRaw) // brain summariser
	if out := ph.call(t, env, summary); !refusedWith(out, "consent_out_of_scope") {
		t.Fatalf("the grant for another brain: %v", out)
	}
	env = px.envelopeWith(t, px.node.Key, px.node.ID(), idR, now, now.Add(time.Minute), summary, invokeRaw)
	if out := px.call(t, env, summary); !refusedWith(out, "consent_out_of_scope") {
		t.Fatalf("a third institution replaying the grant: %v", out)
	}
	if out := px.call(t, px.envelope(t, px.node.Key, px.node.ID(), idR, now, now.Add(time.Minute), summary), summary); !refusedWith(out, "consent_required") {
		t.Fatalf("another institution's call without a grant: %v", out)
	}

	// Story 2: Dr Okafor, the hospital's memories about her cases.
	okafor := nh.addPrincipal(t, "cardiology", "okafor", "SECRET")
	c := map[string]string{"official": canary(t, "official"), "sensitive": canary(t, "sensitive"), "secret": canary(t, "secret"), "other": canary(t, "othersubject")}
	for _, m := range []struct{ subject, class, text string }{
		{"case-1187", "OFFICIAL", c["official"] + " echo shows mild stenosis"},
		{"case-1187", "OFFICIAL-SENSITIVE", c["sensitive"] + " stenosis; family history noted"},
		{"case-1187", "SECRET", c["secret"] + " stenosis; protected witness"},
		{"case-5555", "OFFICIAL", c["other"] + " stenosis in another patient"},
	} {
		ok(t, h, "memory", "add", "--tenant", "cardiology", "--subject", m.subject, "--classification", m.class, m.text)
	}
	drOkafor := np.addPrincipal(t, "gp", "dr.okafor", "SECRET")
	locum := np.addPrincipal(t, "gp", "gp.locum", "OFFICIAL")
	other := np.addPrincipal(t, "gp", "gp.other", "SECRET")
	ask := func(key, brainID, grant string) result {
		args := []string{"ask", "--node", np.url, "--api-key", key, "--brain", brainID, "--json"}
		if grant != "" {
			args = append(args, "--consent", grant)
		}
		return sios(t, "", append(args, "what do we know about the stenosis and the family history?")...)
	}
	// No grant: nothing of the hospital's reaches her.
	if res := ask(drOkafor, "memory-recall", ""); res.code != 0 || strings.Contains(res.stdout, "CANARY") {
		t.Fatalf("without a grant: %+v", res)
	}
	memGrant, memID := grantFile(t, nh.url, okafor, "--to", "dr.okafor@"+rootP, "--action", "memory.read", "--subject", "case-1187",
		"--subject", "case-2290", "--max", "OFFICIAL-SENSITIVE", "--purpose", "continuity of care", "--expires", "7d")
	res := ask(drOkafor, "memory-recall", memGrant)
	if res.code != 0 || !strings.Contains(res.stdout, c["official"]) || !strings.Contains(res.stdout, c["sensitive"]) {
		t.Fatalf("with the grant: %+v", res)
	}
	if strings.Contains(res.stdout, c["secret"]) || strings.Contains(res.stdout, c["other"]) {
		t.Fatalf("released above the grant's maximum or outside its subjects: %s", res.stdout)
	}
	// Cleared OFFICIAL at the practice, under a grant naming her, through an OFFICIAL
	// brain: less.
	locumGrant, _ := grantFile(t, nh.url, okafor, "--to", "gp.locum@"+rootP, "--action", "memory.read", "--subject", "case-1187",
		"--max", "OFFICIAL-SENSITIVE", "--purpose", "continuity of care", "--expires", "7d")
	if res := ask(locum, "education", locumGrant); res.code != 0 || !strings.Contains(res.stdout, c["official"]) || strings.Contains(res.stdout, c["sensitive"]) {
		t.Fatalf("the locum cleared OFFICIAL: %+v", res)
	}
	// Refused at the practice before anything is sent: another practice principal, an
	// altered grant, an expired one.
	if res := ask(other, "memory-recall", memGrant); res.code != 1 || !strings.Contains(res.stderr, "consent_wrong_audience") {
		t.Fatalf("another practice principal: %+v", res)
	}
	raw := grantBytes(t, memGrant)
	altered := bytes.Replace(raw, []byte("continuity of care"), []byte("continuity of cure"), 1)
	alteredFile := filepath.Join(t.TempDir(), "altered.json")
	os.WriteFile(alteredFile, altered, 0o600)
	if res := ask(drOkafor, "memory-recall", alteredFile); res.code != 1 || !strings.Contains(res.stderr, "consent_forged") {
		t.Fatalf("an altered grant: %+v", res)
	}
	shortGrant, _ := grantFile(t, nh.url, okafor, "--to", "dr.okafor@"+rootP, "--action", "memory.read", "--subject", "case-1187",
		"--max", "OFFICIAL", "--purpose", "continuity of care", "--expires", "2s")
	time.Sleep(2500 * time.Millisecond)
	if res := ask(drOkafor, "memory-recall", shortGrant); res.code != 1 || !strings.Contains(res.stderr, "consent_expired") {
		t.Fatalf("an expired grant: %+v", res)
	}
	// Refused at the hospital, which alone knows: used up, revoked.
	onceGrant, _ := grantFile(t, nh.url, okafor, "--to", "dr.okafor@"+rootP, "--action", "memory.read", "--subject", "case-1187",
		"--max", "OFFICIAL", "--purpose", "continuity of care", "--expires", "1d", "--uses", "1")
	if res := ask(drOkafor, "memory-recall", onceGrant); res.code != 0 || !strings.Contains(res.stdout, c["official"]) {
		t.Fatalf("its one use: %+v", res)
	}
	if res := ask(drOkafor, "memory-recall", onceGrant); res.code != 1 || !strings.Contains(res.stderr, "consent_used_up") {
		t.Fatalf("used up: %+v", res)
	}
	ok(t, "", "consent", "revoke", "--node", nh.url, "--api-key", okafor, memID)
	list := decode[[]map[string]any](t, ok(t, "", "consent", "list", "--node", nh.url, "--api-key", okafor, "--json"))
	states := map[string]string{}
	for _, g := range list {
		states[g["id"].(string)] = g["state"].(string)
		for _, k := range []string{"id", "to", "action", "max", "purpose", "expires", "state"} {
			if g[k] == nil {
				t.Fatalf("consent list lacks %s: %v", k, g)
			}
		}
	}
	if len(list) != 4 || states[memID] != "revoked" || !slices.Contains(maps(states), "used") || !slices.Contains(maps(states), "expired") {
		t.Fatalf("okafor's grants: %v", states)
	}
	if res := ask(drOkafor, "memory-recall", memGrant); res.code != 1 || !strings.Contains(res.stderr, "consent_revoked") {
		t.Fatalf("revoked: %+v", res)
	}
	// Sent straight to the hospital: a forged grant, another practice principal, another
	// subject, a third institution replaying it.
	pp := newPeerClient(t, p, nh.fleetAddr, fleet.NewTrust(rootPubH))
	pt := newPeerClient(t, x, nh.fleetAddr, fleet.NewTrust(rootPubH))
	live, _ := grantFile(t, nh.url, okafor, "--to", "dr.okafor@"+rootP, "--action", "memory.read", "--subject", "case-1187",
		"--max", "OFFICIAL-SENSITIVE", "--purpose", "continuity of care", "--expires", "1d")
	liveRaw := grantBytes(t, live)
	g, _ := consent.Parse(liveRaw)
	signed, _ := g.SignedBytes()
	sig := pp.node.Key.Sign(consent.SignDomain, signed) // the practice signs as if it were the hospital
	g.Sig = &sig
	forged, _ := g.Encode()
	for _, tc := range []struct {
		name, code string
		client     *peerClient
		principal  string
		subjects   []string
		grant      []byte
	}{
		{"a forged grant", "consent_forged", pp, "dr.okafor", []string{"case-1187"}, forged},
		{"another practice principal", "consent_wrong_audience", pp, "gp.other", []string{"case-1187"}, liveRaw},
		{"another subject", "consent_out_of_scope", pp, "dr.okafor", []string{"case-5555"}, liveRaw},
		{"a third institution", "consent_wrong_audience", pt, "dr.okafor", []string{"case-1187"}, liveRaw},
		{"no grant", "consent_required", pp, "dr.okafor", []string{"case-1187"}, nil},
	} {
		if out := tc.client.search(t, idH, tc.principal, tc.subjects, tc.grant); !refusedWith(out, tc.code) {
			t.Errorf("%s: %v, want %s", tc.name, out, tc.code)
		}
	}
	if out := pp.search(t, idH, "dr.okafor", []string{"case-1187"}, liveRaw); !strings.Contains(fmt.Sprint(out["output"]), c["sensitive"]) {
		t.Fatalf("the live grant sent straight: %v", out)
	}

	for _, n := range []*runningNode{np, nr, nh} {
		n.stop(t)
	}
	for _, d := range []string{h, r, p} {
		ok(t, d, "audit", "verify")
	}
	// Nothing the hospital holds is anywhere in the practice's files but for her answers:
	// not in its audit log, not in its memory (nothing was retained).
	scanFor(t, p, c["official"], c["sensitive"], c["secret"], c["other"])

	// Both ledgers hold the grants' ids; the call without a grant left nothing at the
	// regional centre.
	hr, rr, pr := ledgerRecords(t, h), ledgerRecords(t, r), ledgerRecords(t, p)
	inH := map[string]*oar.Record{}
	for _, rec := range hr {
		inH[recordHash(rec)] = rec
	}
	var refusedAtH []string
	uses, releases, served := 0, 0, 0
	for _, rec := range hr {
		switch {
		case rec.Action == oar.ActionConsentUse && bytes.Contains(rec.Detail, []byte(invokeGrant)):
			uses++
		case rec.Action == oar.ActionConsentRelease && rec.Decision.Effect == "allow":
			releases++
		case rec.Action == oar.ActionConsentRelease || rec.Action == oar.ActionFleetRefuseCall:
			var d map[string]string
			json.Unmarshal(rec.Detail, &d)
			refusedAtH = append(refusedAtH, d["code"])
		}
	}
	for _, code := range []string{"consent_used_up", "consent_revoked", "consent_forged", "consent_wrong_audience", "consent_out_of_scope"} {
		if !slices.Contains(refusedAtH, code) {
			t.Errorf("the hospital recorded no %s refusal: %v", code, refusedAtH)
		}
	}
	if uses != 1 || releases < 4 {
		t.Errorf("hospital: %d uses of the invoke grant, %d releases", uses, releases)
	}
	var refusedAtR []string
	for _, rec := range rr {
		if rec.Action == oar.ActionBrainInvoke && bytes.Contains(rec.Detail, []byte(invokeGrant)) && rec.Decision.Effect == "allow" {
			served++
			if env, err := fleet.ParseEnvelope(rec.Parties[0]); err != nil || env.V != fleet.EnvelopeVersion2 {
				t.Errorf("the regional centre's record does not hold the envelope with the grant: %v", err)
			}
		}
		if rec.Action == oar.ActionFleetRefuseCall {
			var d map[string]string
			json.Unmarshal(rec.Detail, &d)
			refusedAtR = append(refusedAtR, d["code"])
		}
		if strings.Contains(rec.Actor.ID, "@"+idH) && !bytes.Contains(rec.Detail, []byte(invokeGrant)) {
			t.Errorf("the regional centre holds a record of a call the hospital made without a grant: %s %s", rec.Action, rec.Detail)
		}
	}
	if served != 1 || len(refusedAtR) != 3 {
		t.Errorf("regional centre: %d calls served under the grant; refusals %v", served, refusedAtR)
	}
	// The trail: her answer at the practice links to what it received, whose signed
	// reply names the hospital's release.
	inP := map[string]*oar.Record{}
	for _, rec := range pr {
		inP[recordHash(rec)] = rec
	}
	walked := 0
	var refusedAtP []string
	for _, rec := range pr {
		if rec.Action == oar.ActionBrainInvoke && rec.Decision.Effect == "deny" {
			var d map[string]string
			json.Unmarshal(rec.Detail, &d)
			refusedAtP = append(refusedAtP, d["code"])
		}
		if rec.Action != oar.ActionBrainComplete {
			continue
		}
		for _, l := range rec.Links {
			if l.Rel != "consent" {
				continue
			}
			recv := inP[l.RecordHash]
			if recv == nil || recv.Action != oar.ActionConsentReceive || len(recv.Parties) != 2 {
				t.Fatalf("the answer links to %v", recv)
			}
			reply, err := fleet.ParseReply(recv.Parties[1])
			if err != nil {
				t.Fatal(err)
			}
			rel := inH[reply.Record]
			if reply.Responder != idH || rel == nil || rel.Action != oar.ActionConsentRelease || fleet.CallHash(rel.Parties[0]) != reply.Call ||
				!bytes.Equal(rel.Parties[0], recv.Parties[0]) {
				t.Fatalf("the reply the practice received does not name the hospital's release: %+v", reply)
			}
			if rel.Decision.Effect == "allow" && recv.Outputs[0].SHA256 != rel.Outputs[0].SHA256 {
				t.Fatal("the release output's digest differs between the two ledgers")
			}
			walked++
		}
	}
	if walked < 5 {
		t.Errorf("%d answers at the practice walk to the hospital, want 5 (3 served, used up, revoked)", walked)
	}
	for _, code := range []string{"consent_wrong_audience", "consent_forged", "consent_expired"} {
		if !slices.Contains(refusedAtP, code) {
			t.Errorf("the practice recorded no %s refusal: %v", code, refusedAtP)
		}
	}
}

func maps(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
