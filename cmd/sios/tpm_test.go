package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/identity/tpm"
	"github.com/sios-project/sios/internal/swtpmtest"
	"github.com/sios-project/sios/oar"
)

// Hardware-bound identity through the real binary: nodes initialised with
// 'sios init --tpm' on real TPM 2.0 simulators (swtpm, one per node).

// initTPMNode runs 'sios init --tpm' and returns what it printed.
func initTPMNode(t *testing.T, dir string, sim *swtpmtest.Simulator, args ...string) map[string]any {
	t.Helper()
	out := decode[map[string]any](t, ok(t, dir, append([]string{"init", "--tpm", sim.Addr, "--json"}, args...)...))
	if out["attestation"] != fleet.AttestTPM || !tpm.ValidEKSHA256(str(out["ek_sha256"])) {
		t.Fatalf("init --tpm printed %v", out)
	}
	return out
}

func str(v any) string { s, _ := v.(string); return s }

// timedStart starts a node and reports how long from exec to its serving line.
func timedStart(t *testing.T, dir string, args ...string) (*runningNode, time.Duration) {
	t.Helper()
	start := time.Now()
	n := startNode(t, dir, args...)
	return n, time.Since(start)
}

func TestTPMNodeStartsSignsAndFederates(t *testing.T) {
	simA := swtpmtest.Start(t, swtpmtest.Options{EKCert: true})
	a := filepath.Join(t.TempDir(), "a")
	initOut := initTPMNode(t, a, simA, "--name", "a")
	ek := str(initOut["ek_sha256"])
	root := str(initOut["root_id"])
	// The key file on disk holds no key: only TPM blobs.
	if b, err := os.ReadFile(filepath.Join(a, identity.NodeKeyFile)); err != nil || !bytes.Contains(b, []byte(identity.SealedKeyVersion)) || bytes.Contains(b, []byte("mldsa65_seed")) {
		t.Fatalf("node.key is not a sealed key file: %v\n%s", err, b)
	}
	// node.init records the attestation.
	recs := ledgerRecords(t, a)
	if len(recs) != 1 || recs[0].Action != oar.ActionNodeInit || !bytes.Contains(recs[0].Detail, []byte(`"ek_sha256":"`+ek+`"`)) ||
		!bytes.Contains(recs[0].Detail, []byte(`"attestation":"tpm"`)) || !bytes.Contains(recs[0].Detail, []byte(`"pcrs":[]`)) {
		t.Fatalf("node.init record: %+v", recs)
	}

	na, took := timedStart(t, a, "--fleet-listen", "127.0.0.1:0")
	t.Logf("sios up with a TPM: exec to serving line in %v", took)
	if took > 10*time.Second {
		t.Errorf("start-up with a TPM took %v (target 2 s)", took)
	}
	// 'sios id' while the node holds the TPM: read from the evidence, no TPM opened.
	start := time.Now()
	id := decode[map[string]string](t, ok(t, a, "id", "--json"))
	if id["attestation"] != fleet.AttestTPM || id["ek_sha256"] != ek || time.Since(start) > 3*time.Second {
		t.Fatalf("sios id of a TPM node: %v (took %v)", id, time.Since(start))
	}
	idA := id["node_id"]
	// It signs: a request is answered with a receipt.
	key := na.addPrincipal(t, "default", "alice", "SECRET")
	resp, err := na.client(key).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "calculator", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("what is 6*7")}})
	if err != nil || !strings.Contains(resp.Choices[0].Message.Content, "42") {
		t.Fatalf("a TPM node's answer: %v", err)
	}

	// It federates: b, a software node of the same institution, refuses a's identity
	// until its operator pins a's EK CA, then admits it and attests its TPM.
	b := filepath.Join(t.TempDir(), "b")
	ok(t, b, "init", "--name", "b", "--root", filepath.Join(a, identity.RootKeyFile))
	nb := startNode(t, b, "--fleet-listen", "127.0.0.1:0", "--join", na.fleetAddr)
	eventually(t, 20*time.Second, "b audits the refusal of a's unknown EK", func() (bool, string) {
		out := ok(t, b, "audit", "tail", "-n", "50")
		return strings.Contains(out, "fleet.refuse") && strings.Contains(out, "peer/"+idA), out
	})
	caFile := filepath.Join(t.TempDir(), "ek-ca.pem")
	os.WriteFile(caFile, simA.CAPEM, 0o644)
	fails(t, 1, b, []string{"trust", "add-ek", "--institution", "root_aaaa", "--ca", caFile}, "not trusted here")
	fails(t, 2, b, []string{"trust", "add-ek", "--institution", root}, "either one EK hash")
	fails(t, 1, b, []string{"trust", "add-ek", "--institution", root, "xyz"}, "64 lowercase hex")
	ok(t, b, "trust", "add-ek", "--institution", root, "--ca", caFile)
	if out := ok(t, b, "trust", "list"); !strings.Contains(out, "ek-ca ") {
		t.Fatalf("trust list does not show the EK CA:\n%s", out)
	}
	eventually(t, 20*time.Second, "b sees a alive and TPM-attested", func() (bool, string) {
		for _, p := range peersOf(t, b) {
			if p.NodeID == idA {
				return p.State == fleet.StateAlive && p.Attestation == fleet.AttestTPM && p.EKSHA256 == ek, p.State + "/" + p.Attestation
			}
		}
		return false, "a unknown"
	})
	idB := nodeIDOf(t, b)
	seesAlive(t, a, idB)
	if ps := peersOf(t, a); ps[0].Attestation != fleet.AttestSoftware {
		t.Errorf("a reports software node b as %s", ps[0].Attestation)
	}
	if out := ok(t, b, "fleet", "peers"); !strings.Contains(out, "ATTESTATION") || !strings.Contains(out, " tpm ") {
		t.Errorf("fleet peers does not show a's attestation:\n%s", out)
	}
	// Its own route table says its brains run on a TPM-attested node.
	if out := ok(t, a, "fleet", "routes", "--json"); !strings.Contains(out, `"local": true`) || !strings.Contains(out, `"attestation": "tpm"`) {
		t.Errorf("a's route table does not show itself as tpm:\n%.600s", out)
	}
	nb.stop(t)
	na.stop(t)

	var refusal, attested *oar.Record
	for _, r := range ledgerRecords(t, b) {
		switch {
		case r.Action == oar.ActionFleetRefuse && r.Resource == "peer/"+idA && refusal == nil:
			refusal = r
		case r.Action == oar.ActionFleetAttest && r.Resource == "peer/"+idA:
			attested = r
		}
	}
	if refusal == nil || !bytes.Contains(refusal.Detail, []byte(tpm.ErrUnknownEK.Error())) {
		t.Fatalf("b's refusal of a: %+v", refusal)
	}
	if attested == nil || !bytes.Contains(attested.Detail, []byte(ek)) || !bytes.Contains(attested.Detail, []byte("pcrs_sha256")) {
		t.Fatalf("b's record of a's attestation: %+v", attested)
	}
	ok(t, a, "audit", "verify")

	// The trail: a's evidence bundle names its EK, and verifies offline.
	bundle := filepath.Join(t.TempDir(), "a.bundle")
	ok(t, a, "audit", "export", "--out", bundle)
	v := decode[map[string]any](t, ok(t, t.TempDir(), "audit", "verify", "--bundle", bundle, "--json"))
	if v["attestation"] != fleet.AttestTPM || v["ek_sha256"] != ek {
		t.Fatalf("verify --bundle: %v", v)
	}
	if out := ok(t, t.TempDir(), "audit", "verify", "--bundle", bundle); !strings.Contains(out, "hardware-attested") || !strings.Contains(out, ek) {
		t.Fatalf("verify --bundle does not name the EK:\n%s", out)
	}
	// So does a trace of one of its records: the chain names the EK its keys are bound to.
	traced := filepath.Join(t.TempDir(), "a.trace")
	ok(t, a, "audit", "trace", "--record", "0", "--out", traced)
	if out := ok(t, t.TempDir(), "audit", "verify", "--trace", traced, "--json"); !strings.Contains(out, ek) || strings.Contains(out, "not checked") {
		t.Fatalf("verify --trace of a TPM node's record does not check its evidence:\n%s", out)
	}
	// Another node's evidence in the bundle does not pass for a's.
	otherSim := swtpmtest.Start(t, swtpmtest.Options{})
	other := filepath.Join(t.TempDir(), "other")
	initTPMNode(t, other, otherSim)
	var doc map[string]json.RawMessage
	raw, _ := os.ReadFile(bundle)
	json.Unmarshal(raw, &doc)
	doc["attestation"], _ = os.ReadFile(filepath.Join(other, tpm.EvidenceFile))
	raw, _ = json.Marshal(doc)
	os.WriteFile(bundle, raw, 0o644)
	fails(t, 1, t.TempDir(), []string{"audit", "verify", "--bundle", bundle}, "failed verification", tpm.ErrBindingMismatch.Error())
	// A software node's bundle says so.
	bb := filepath.Join(t.TempDir(), "b.bundle")
	ok(t, b, "audit", "export", "--out", bb)
	if out := ok(t, b, "audit", "verify", "--bundle", bb); !strings.Contains(out, "not hardware-attested") {
		t.Fatalf("verify --bundle of a software node:\n%s", out)
	}
	if id := decode[map[string]string](t, ok(t, b, "id", "--json")); id["attestation"] != fleet.AttestSoftware || id["ek_sha256"] != "" {
		t.Fatalf("sios id of a software node: %v", id)
	}
}

// A data directory copied next to another TPM, or a machine whose sealed PCRs changed,
// does not start, and says why.
func TestTPMNodeRefusesToStartElsewhere(t *testing.T) {
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	dir := filepath.Join(t.TempDir(), "a")
	initTPMNode(t, dir, sim, "--name", "a", "--tpm-pcrs", "7,16")

	// Its own TPM, started and stopped: the node starts, and signs offline commands.
	n := startNode(t, dir)
	n.stop(t)
	ok(t, dir, "audit", "verify")
	ok(t, dir, "principal", "add", "--tenant", "default", "--id", "bob", "--clearance", "OFFICIAL")

	// Copied next to another swtpm.
	copied := copyDataDir(t, dir)
	other := swtpmtest.Start(t, swtpmtest.Options{})
	r := fails(t, 1, copied, []string{"up", "--listen", "127.0.0.1:0", "--tpm", other.Addr},
		tpm.ErrOtherTPM.Error(), identity.NodeKeyFile, "copied from another machine")
	if !strings.Contains(r.stderr, "sios: hint: ") || !strings.Contains(r.stderr, "cannot move to another TPM") {
		t.Errorf("no hint for a copied directory:\n%s", r.stderr)
	}
	// Its recorded TPM gone (the copy found on a disk elsewhere): it names the TPM.
	gone := swtpmtest.Start(t, swtpmtest.Options{})
	goneDir := filepath.Join(t.TempDir(), "gone")
	initTPMNode(t, goneDir, gone)
	gone.Restart(t) // now at another address: the recorded one answers nothing
	r = fails(t, 1, goneDir, []string{"up", "--listen", "127.0.0.1:0"}, "cannot be opened")
	if !strings.Contains(r.stderr, "--tpm") {
		t.Errorf("no hint to name the TPM with --tpm:\n%s", r.stderr)
	}
	// ...and with --tpm naming where it is now, it starts.
	startNode(t, goneDir, "--tpm", gone.Addr).stop(t)

	// A sealed PCR extended (the machine booted something else): refused, naming PCR 16.
	sim.ExtendPCR(t, 16, "a debugger was attached")
	r = fails(t, 1, dir, []string{"up", "--listen", "127.0.0.1:0"}, tpm.ErrPCRChanged.Error(), "PCR 16 ", identity.NodeKeyFile)
	if !strings.Contains(r.stderr, "sios: hint: ") || !strings.Contains(r.stderr, "boot state") {
		t.Errorf("no hint for changed PCRs:\n%s", r.stderr)
	}
	for _, rec := range ledgerRecords(t, dir) {
		if rec.Action == oar.ActionNodeStart && strings.Contains(string(rec.Detail), `"attestation":"tpm"`) {
			goto started
		}
	}
	t.Fatal("no node.start record with attestation tpm")
started:
	// --tpm is for sealed keys only, and init must come first.
	soft := initNode(t)
	fails(t, 2, soft, []string{"up", "--tpm", sim.Addr}, "not sealed to a TPM")
	fails(t, 1, filepath.Join(t.TempDir(), "fresh"), []string{"up", "--tpm", sim.Addr}, "holds no node identity")
	fails(t, 2, filepath.Join(t.TempDir(), "fresh"), []string{"init", "--tpm-pcrs", "7"}, "needs --tpm")
	fails(t, 2, filepath.Join(t.TempDir(), "fresh"), []string{"init", "--tpm", sim.Addr, "--tpm-pcrs", "7,7"}, "--tpm-pcrs")
	fails(t, 1, dir, []string{"init", "--tpm", sim.Addr}, "already holds a node identity")
}

const requireTPMPolicy = `// SECRET and above go only to peers whose TPM answered this node's challenge.
@id("forbid-peer-unattested-secret")
@description("SECRET and above go only to TPM-attested peers")
forbid (principal, action == Sios::Action::"peer.send", resource is Sios::Peer)
when { context.data_classification >= 3 && resource.attestation != "tpm" };
`

// A node whose policy requires tpm for SECRET work sends it to the attested peer only;
// a software peer offering the same brain is refused, audited.
func TestTPMRequiredForSecretWork(t *testing.T) {
	hospital := newInstitution(t, "o", "s")
	o, s := hospital.dirs[0], hospital.dirs[1]
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	a := filepath.Join(t.TempDir(), "a")
	ek := str(initTPMNode(t, a, sim, "--name", "a", "--root", hospital.root)["ek_sha256"])
	for _, d := range []string{a, s} {
		os.MkdirAll(filepath.Join(d, "brains"), 0o700)
		os.WriteFile(filepath.Join(d, "brains", "tumour.yaml"), []byte(tumourBrain), 0o600)
	}
	os.MkdirAll(filepath.Join(o, "policies"), 0o700)
	os.WriteFile(filepath.Join(o, "policies", "peers.cedar"), []byte(requireTPMPolicy), 0o600)
	root := nodeIDRoot(t, o)
	ok(t, o, "trust", "add-ek", "--institution", root, ek)

	no := startNode(t, o, "--fleet-listen", "127.0.0.1:0")
	ns := startNode(t, s, "--fleet-listen", "127.0.0.1:0", "--join", no.fleetAddr)
	idS := nodeIDOf(t, s)
	seesAlive(t, o, idS)
	key := no.addPrincipal(t, "default", "alice", "SECRET")
	chat := func(class string) error {
		_, err := no.client(key).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model: "tumour-board", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Summarise: case.")}},
			withClassification(class))
		return err
	}
	// Only software s offers the brain: SECRET is refused at o, naming the policy.
	ae := apiError(t, chat("SECRET"), http.StatusForbidden)
	if !strings.Contains(ae.Message, "forbid-peer-unattested-secret") {
		t.Fatalf("refusal does not name the policy: %s", ae.Message)
	}
	if err := chat("OFFICIAL"); err != nil {
		t.Fatal(err)
	}
	// a joins; once its TPM answered, SECRET work goes to a and never to s.
	na := startNode(t, a, "--fleet-listen", "127.0.0.1:0", "--join", no.fleetAddr)
	idA := nodeIDOf(t, a)
	eventually(t, 20*time.Second, "o sees a TPM-attested", func() (bool, string) {
		for _, p := range peersOf(t, o) {
			if p.NodeID == idA {
				return p.State == fleet.StateAlive && p.Attestation == fleet.AttestTPM, p.State + "/" + p.Attestation + "\n" + refusedLines(no)
			}
		}
		return false, "a unknown"
	})
	r := sios(t, o, "policy", "check", "--principal", "alice", "--tenant", "default", "--peer", idS, "--classification", "SECRET")
	if r.code != exitDeny || !strings.Contains(r.stdout, "forbid-peer-unattested-secret") {
		t.Fatalf("policy check --peer s does not explain the refusal:\n%s", r.stdout)
	}
	ok(t, o, "policy", "check", "--principal", "alice", "--tenant", "default", "--peer", idA, "--classification", "SECRET")
	for i := 0; i < 3; i++ {
		if err := chat("SECRET"); err != nil {
			t.Fatal(err)
		}
	}
	// The operator un-pins a's EK on the running o: recorded, a's TPM is checked again
	// at once, refused under the EKs still pinned, and SECRET work stops going to a.
	fails(t, 1, o, []string{"trust", "remove-ek", "--institution", root, strings.Repeat("ab", 32)}, "is not pinned")
	if out := ok(t, o, "trust", "remove-ek", "--institution", root, ek); !strings.Contains(out, "no longer accepting") || !strings.Contains(out, idA) {
		t.Fatalf("trust remove-ek said: %s", out)
	}
	eventually(t, 20*time.Second, "o no longer sees a TPM-attested", func() (bool, string) {
		for _, p := range peersOf(t, o) {
			if p.NodeID == idA {
				return p.Attestation == fleet.AttestSoftware, p.State + "/" + p.Attestation
			}
		}
		return false, "a unknown"
	})
	if ae := apiError(t, chat("SECRET"), http.StatusForbidden); !strings.Contains(ae.Message, "forbid-peer-unattested-secret") {
		t.Fatalf("after remove-ek, SECRET work is refused for another reason: %s", ae.Message)
	}
	for _, n := range []*runningNode{na, ns, no} {
		n.stop(t)
	}
	served := map[string]int{}
	for _, d := range []string{a, s} {
		for _, r := range ledgerRecords(t, d) {
			if r.Action == oar.ActionBrainInvoke {
				served[filepath.Base(d)+"/"+r.Classification]++
			}
		}
	}
	if len(recordsWith(ledgerRecords(t, o), oar.ActionTrustRemoveEK)) != 1 {
		var acts []string
		for _, r := range ledgerRecords(t, o) {
			if strings.HasPrefix(r.Action, "trust") {
				acts = append(acts, r.Action+" "+r.Resource)
			}
		}
		t.Fatalf("o's ledger does not hold the trust.remove-ek record: %v", acts)
	}
	if served["s/SECRET"] != 0 || served["a/SECRET"] != 3 || served["s/OFFICIAL"] != 1 {
		t.Fatalf("work served: %v", served)
	}
	var denied *oar.Record
	for _, r := range ledgerRecords(t, o) {
		if r.Action == oar.ActionBrainInvoke && r.Decision != nil && r.Decision.Effect == "deny" {
			denied = r
		}
	}
	if denied == nil || len(denied.Decision.Policies) == 0 || denied.Decision.Policies[0] != "forbid-peer-unattested-secret" {
		t.Fatalf("o's record of the refused SECRET request: %+v", denied)
	}
	for _, d := range []string{a, s, o} {
		ok(t, d, "audit", "verify")
	}
}

func nodeIDRoot(t *testing.T, dir string) string {
	t.Helper()
	return decode[map[string]string](t, ok(t, dir, "id", "--json"))["root_id"]
}

// refusedLines is what a node logged of the peers it refused, for a failure message.
func refusedLines(n *runningNode) string {
	var out []string
	for _, l := range strings.Split(n.stderr.String(), "\n") {
		if strings.Contains(l, "refused") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
