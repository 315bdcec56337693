package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/node"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/succession"
)

// The succession tests run five nodes of one institution as separate 'sios up'
// processes on loopback, with durations of seconds. Several roles run at once on the
// one fleet, each its own story: a silent holder succeeded (authority, memory and the
// sealed letter follow), a refutation, a cascade, a removal by k admins, and — with
// one node partitioned away — a role whose observers on the live side are fewer than
// k, receiving forged, duplicated and non-observer suspicions.

// guardianPolicy makes the summariser a brain for the role guardian's holder alone:
// what the role gives, on every node.
const guardianPolicy = `@id("forbid-summariser-without-guardian")
forbid (principal, action == Sios::Action::"invoke", resource == Sios::Brain::"summariser")
unless { principal.roles.contains("guardian") };
`

// runAll runs sios commands concurrently and returns their results in order.
func runAll(t *testing.T, cmds ...[]string) []result {
	t.Helper()
	out := make([]result, len(cmds))
	var wg sync.WaitGroup
	for i, c := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = sios(t, c[0], c[1:]...)
		}()
	}
	wg.Wait()
	return out
}

// apiCall sends a principal's request to a node's API and returns the status and body.
func apiCall(t *testing.T, n *runningNode, key, method, path, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, n.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// roleOn is a role's state as a node's API shows it to a principal.
func roleOn(t *testing.T, n *runningNode, key, name string) succession.RoleState {
	t.Helper()
	code, b := apiCall(t, n, key, "GET", "/v1/roles/"+name, "")
	if code != http.StatusOK {
		return succession.RoleState{State: fmt.Sprintf("(%d)", code)}
	}
	var st succession.RoleState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("role %s: %v", name, err)
	}
	return st
}

// onAll waits until cond holds for the role on every node in ns (read with keys).
func onAll(t *testing.T, within time.Duration, what, name string, ns []*runningNode, keys []string, cond func(succession.RoleState) bool) {
	t.Helper()
	eventually(t, within, what, func() (bool, string) {
		for i, n := range ns {
			if st := roleOn(t, n, keys[i], name); !cond(st) {
				return false, fmt.Sprintf("%s: %s holder %q suspicions %d removals %d", filepath.Base(n.dir), st.State, st.Holder, len(st.Suspicions), len(st.Removals))
			}
		}
		return true, ""
	})
}

func TestSuccessionFiveNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("five nodes")
	}
	start := time.Now()
	in := newInstitution(t, "n0", "n1", "n2", "n3", "n4", "courier")
	dirs, courierDir := in.dirs[:5], in.dirs[5]
	for _, d := range dirs {
		writeFile(t, filepath.Join(d, "policies"), "guardian.cedar", guardianPolicy)
	}
	nodes := []*runningNode{startNode(t, dirs[0], "--fleet-listen", "127.0.0.1:0")}
	for _, d := range dirs[1:] {
		nodes = append(nodes, startNode(t, d, "--fleet-listen", "127.0.0.1:0", "--join", nodes[0].fleetAddr))
	}
	ids := make([]string, 5)
	for i, d := range dirs {
		ids[i] = nodeIDOf(t, d)
	}
	for i, d := range dirs {
		seesAlive(t, d, slices.Delete(slices.Clone(ids), i, i+1)...)
	}
	// Principals: dr.smith holds the guardian role and dr.li succeeds, on every node; the
	// others act through one node each.
	var adds [][]string
	for _, d := range dirs {
		for _, id := range []string{"dr.smith", "dr.li"} {
			adds = append(adds, []string{d, "principal", "add", "--tenant", "default", "--id", id, "--clearance", "SECRET", "--json"})
		}
	}
	adds = append(adds, []string{dirs[4], "principal", "add", "--tenant", "default", "--id", "dr.jones", "--clearance", "SECRET", "--json"},
		[]string{dirs[4], "principal", "add", "--tenant", "default", "--id", "dr.patel", "--clearance", "SECRET", "--json"},
		[]string{dirs[1], "principal", "add", "--tenant", "default", "--id", "adm.a", "--clearance", "SECRET", "--json"})
	keys := map[string]string{} // "id@node index"
	for i, r := range runAll(t, adds...) {
		if r.code != 0 {
			t.Fatalf("%v: %s", adds[i], r.stderr)
		}
		keys[adds[i][6]+"@"+filepath.Base(adds[i][0])] = decode[map[string]any](t, r.stdout)["api_key"].(string)
	}
	li := make([]string, 5) // dr.li's key on each node: the reader of every role
	for i, d := range dirs {
		li[i] = keys["dr.li@"+filepath.Base(d)]
	}
	obs := func(is ...int) string {
		var out []string
		for _, i := range is {
			out = append(out, ids[i])
		}
		return strings.Join(out, ",")
	}
	define := func(name, holder, successors, observers, k, admins, suspect, wait, accept string) {
		t.Helper()
		ok(t, dirs[0], "role", "define", name, "--tenant", "default", "--holder", holder, "--successors", successors,
			"--observers", observers, "--k", k, "--admins", admins, "--suspect-after", suspect, "--wait", wait, "--accept-within", accept)
	}
	t.Logf("five nodes up with principals: %s", time.Since(start).Round(time.Millisecond))

	// The cascade (C) and the removal (D) run beside the guardian (A); the refutation (B)
	// below. Each story's durations leave the test room to act however late the machine
	// lets it.
	define("dpo", "dr.brown", "dr.li,dr.patel", obs(0, 3, 4), "2", "", "3s", "2s", "12s")
	define("clinical-lead", "dr.green", "dr.li", obs(0, 1), "2", "adm.a,adm.b,adm.c", "1h", "1h", "1h")
	onAll(t, 15*time.Second, "every node knows the roles", "clinical-lead", nodes, li, func(st succession.RoleState) bool { return st.State == succession.StateHeld })

	// The guardian (A): the holder is active at once, then silent. Observers n0, n1, n2, k=3.
	define("guardian", "dr.smith", "dr.li,dr.patel", obs(0, 1, 2), "3", "", "5s", "3s", "60s")

	// Before any handover the holder, and only the holder, has what the role gives.
	smith0, smith3 := keys["dr.smith@n0"], keys["dr.smith@n3"]
	askAs := func(n *runningNode, key string) result {
		return sios(t, n.dir, "ask", "--node", n.url, "--api-key", key, "--brain", "summariser", "Summarise: the audit committee met.")
	}
	if r := askAs(nodes[0], smith0); r.code != 0 {
		t.Fatalf("the holder may not use the guardian's brain: %s", r.stderr)
	}
	if r := askAs(nodes[0], li[0]); r.code == 0 || !strings.Contains(r.stderr, "forbid-summariser-without-guardian") {
		t.Fatalf("a successor used the guardian's brain before any handover: %d %s", r.code, r.stderr)
	}
	onAll(t, 15*time.Second, "every node knows the guardian", "guardian", nodes, li, func(st succession.RoleState) bool { return st.Holder == "dr.smith" })
	ok(t, dirs[3], "memory", "add", "--tenant", "default", "--subject", "role:guardian", "--classification", "OFFICIAL",
		"Guardian handbook: escalate any breach of patient confidentiality to the board within 24 hours.")
	searchRole := func(key string) int {
		code, _ := apiCall(t, nodes[3], key, "POST", "/v1/memory/search", `{"query":"handbook escalate","subject":"role:guardian"}`)
		return code
	}
	if searchRole(smith3) != http.StatusOK || searchRole(li[3]) != http.StatusForbidden {
		t.Fatal("before the handover the guardian's memory is not the holder's alone")
	}
	// The holder leaves a sealed letter (once every observer's KEM key has reached n0).
	secret := "LETTER-" + randomHex(t, 16) + ": the audit committee's escrow passphrase is correct-horse-battery-staple"
	letterFile := filepath.Join(t.TempDir(), "letter.txt")
	writeFile(t, filepath.Dir(letterFile), "letter.txt", secret)
	eventually(t, 15*time.Second, "the holder deposits the letter", func() (bool, string) {
		r := sios(t, dirs[0], "role", "letter", "deposit", "guardian", letterFile, "--node", nodes[0].url, "--api-key", smith0)
		return r.code == 0, r.stderr
	})
	silentFrom := time.Now() // dr.smith does nothing more

	// B: the holder stays silent, observers suspect, and during the wait he refutes.
	define("siro", "dr.jones", "dr.li", obs(1, 3, 4), "2", "", "3s", "8s", "60s")
	onAll(t, 20*time.Second, "siro is pending", "siro", nodes[4:], li[4:], func(st succession.RoleState) bool { return st.State == succession.StatePending })
	pending := roleOn(t, nodes[4], li[4], "siro")
	if r := sios(t, dirs[4], "role", "refute", "siro", "--reason", "on leave, reachable", "--node", nodes[4].url, "--api-key", keys["dr.jones@n4"]); r.code != 0 {
		t.Fatalf("refute: %s", r.stderr)
	}

	// D: one admin of k=2 removes the holder: nothing moves, on any node.
	if r := sios(t, dirs[1], "role", "remove", "clinical-lead", "--reason", "resigned", "--node", nodes[1].url, "--api-key", keys["adm.a@n1"]); r.code != 0 {
		t.Fatalf("remove: %s", r.stderr)
	}
	onAll(t, 15*time.Second, "one removal is known everywhere, and changes nothing", "clinical-lead", nodes, li, func(st succession.RoleState) bool {
		return len(st.Removals) == 1 && st.State == succession.StateHeld
	})
	if r := sios(t, dirs[2], "role", "remove", "clinical-lead", "--reason", "wrong admin", "--as", "dr.li"); r.code == 0 || !strings.Contains(r.stderr, "not one of role clinical-lead's admins") {
		t.Fatalf("a principal who is not an admin removed the holder: %s", r.stderr)
	}
	ok(t, dirs[2], "role", "remove", "clinical-lead", "--reason", "resigned", "--as", "adm.b")
	onAll(t, 15*time.Second, "the second admin's removal hands the role over at once", "clinical-lead", nodes, li, func(st succession.RoleState) bool {
		return st.State == succession.StateHandedOver && st.Basis == succession.BasisRemoval
	})

	// A: after suspect_after and the wait, every node hands the guardian role over.
	for _, d := range append(slices.Clone(dirs), courierDir) {
		if found := plaintextRuns(t, d, secret); len(found) > 0 {
			t.Fatalf("the letter is on disk before the handover: %v", found)
		}
	}
	onAll(t, 30*time.Second, "every node hands the guardian role over", "guardian", nodes, li, func(st succession.RoleState) bool {
		return st.State == succession.StateHandedOver && st.Offer != nil && st.Offer.Successor == "dr.li"
	})
	t.Logf("guardian: silence to handover on all five nodes: %s (suspect_after 5s + wait 3s)", time.Since(silentFrom).Round(time.Millisecond))
	ga := roleOn(t, nodes[0], li[0], "guardian")
	if ga.Basis != succession.BasisSuspicion || len(ga.Suspicions) != 3 {
		t.Fatalf("the guardian's certificate: %s with %d suspicions", ga.Basis, len(ga.Suspicions))
	}

	// B again: the refuted pending handover never took effect. (The silent holder may
	// be suspected anew later; such a handover rests on suspicions made after the
	// refutation.)
	eventually(t, 20*time.Second, "the refuted handover's time passes", func() (bool, string) {
		return time.Now().After(pending.EffectiveAt.Add(time.Second)), ""
	})
	// Gossip may lose a packet; the refutation still reaches every node (a gap in a
	// feed is filled at once from its node).
	refuted := func(st succession.RoleState) int {
		return slices.IndexFunc(st.History, func(h succession.Step) bool { return h.Action == succession.StepRefute })
	}
	onAll(t, 20*time.Second, "every node has the refutation", "siro", nodes, li, func(st succession.RoleState) bool { return refuted(st) >= 0 })
	for i, n := range nodes {
		st := roleOn(t, n, li[i], "siro")
		r := refuted(st)
		if st.State == succession.StateHandedOver {
			for _, s := range st.Suspicions {
				if s.Since.Before(st.History[r].Time) {
					t.Fatalf("%s handed siro over on a suspicion (since %s) that the refutation at %s cancelled", filepath.Base(n.dir), s.Since, st.History[r].Time)
				}
			}
		}
	}

	// C: dr.li never accepts the dpo role; it cascades to dr.patel, who accepts.
	onAll(t, 30*time.Second, "dpo cascades to dr.patel", "dpo", nodes[4:], li[4:], func(st succession.RoleState) bool {
		return st.Offer != nil && st.Offer.Successor == "dr.patel"
	})
	if r := sios(t, dirs[4], "role", "accept", "dpo", "--node", nodes[4].url, "--api-key", keys["dr.patel@n4"]); r.code != 0 {
		t.Fatalf("dr.patel's acceptance: %s", r.stderr)
	}

	// A: every node's policy now gives dr.li nothing yet (offered, not accepted); the
	// former holder has lost the role everywhere.
	var asks [][]string
	for i, n := range nodes {
		asks = append(asks, []string{n.dir, "ask", "--node", n.url, "--api-key", keys["dr.smith@n"+fmt.Sprint(i)], "--brain", "summariser", "Summarise: handover."})
	}
	for i, r := range runAll(t, asks...) {
		if r.code == 0 {
			t.Fatalf("n%d: the former holder still has the guardian's authority", i)
		}
	}

	// Partition: n2 (an observer of the guardian) goes away. dr.li accepts through n3;
	// with two of the three shares released there, the letter does not open.
	n2Addr := nodes[2].fleetAddr
	nodes[2].stop(t)
	live := []*runningNode{nodes[0], nodes[1], nodes[3], nodes[4]}
	liveKeys := []string{li[0], li[1], li[3], li[4]}
	if r := sios(t, dirs[3], "role", "accept", "guardian", "--node", nodes[3].url, "--api-key", li[3]); r.code != 0 {
		t.Fatalf("dr.li's acceptance: %s", r.stderr)
	}
	eventually(t, 20*time.Second, "n3 holds two released shares and cannot open the letter", func() (bool, string) {
		r := sios(t, dirs[3], "role", "letter", "open", "guardian", "--node", nodes[3].url, "--api-key", li[3])
		return r.code != 0 && strings.Contains(r.stderr, "2 valid shares of the 3 needed"), r.stderr
	})
	if r := sios(t, dirs[0], "role", "letter", "open", "guardian", "--node", nodes[0].url, "--api-key", li[0]); r.code == 0 || !strings.Contains(r.stderr, "only there") {
		t.Fatalf("the letter opened on a node dr.li did not accept through: %s", r.stderr)
	}
	// Authority and memory followed dr.li, on every live node.
	asks = nil
	for i, n := range live {
		asks = append(asks, []string{n.dir, "ask", "--node", n.url, "--api-key", liveKeys[i], "--brain", "summariser", "Summarise: handover done."})
	}
	for i, r := range runAll(t, asks...) {
		if r.code != 0 {
			t.Fatalf("%s: the successor has not the guardian's authority: %s", filepath.Base(live[i].dir), r.stderr)
		}
	}
	if searchRole(li[3]) != http.StatusOK || searchRole(smith3) != http.StatusForbidden {
		t.Fatal("after the handover the guardian's memory is not dr.li's alone")
	}

	// The partitioned side cannot be outvoted by forgery: a role whose observers are n1
	// (live) and n2 (away), k=2. A courier node carries a forged suspicion claiming n2,
	// one by itself (not an observer) and two more by n1.
	define("caldicott-deputy", "dr.white", "dr.li", obs(1, 2), "2", "", "2s", "2s", "60s")
	deputy := roleOn(t, nodes[0], li[0], "caldicott-deputy")
	charterTime := deputy.History[0].Time
	eventually(t, 20*time.Second, "n1 alone suspects the deputy's holder", func() (bool, string) {
		st := roleOn(t, nodes[1], li[1], "caldicott-deputy")
		return st.State == succession.StateSuspected, st.State
	})
	courier := injectSuspicions(t, courierDir, dirs[1], deputy.Charter, charterTime, ids[2])
	nc := startNode(t, courierDir, "--fleet-listen", "127.0.0.1:0", "--join", nodes[0].fleetAddr)
	eventually(t, 20*time.Second, "the courier's documents reach the live nodes", func() (bool, string) {
		for i, n := range live {
			st := roleOn(t, n, liveKeys[i], "caldicott-deputy")
			// All four: the forged and the non-observer's rejected, n1's two duplicates
			// received beside its own suspicion (they travel separately).
			if len(st.Rejected) < 2 || countSteps(st, succession.StepSuspect, ids[1]) < 3 {
				return false, fmt.Sprintf("%s: %d rejected, %d suspicions by n1", filepath.Base(n.dir), len(st.Rejected), countSteps(st, succession.StepSuspect, ids[1]))
			}
		}
		return true, ""
	})
	for hold := time.Now().Add(4 * time.Second); time.Now().Before(hold); time.Sleep(300 * time.Millisecond) {
		for i, n := range live {
			st := roleOn(t, n, liveKeys[i], "caldicott-deputy")
			if st.State != succession.StateSuspected || len(st.Suspicions) != 1 || st.Suspicions[0].Observer != ids[1] {
				t.Fatalf("%s: forged or duplicated suspicions counted: %s, %+v", filepath.Base(n.dir), st.State, st.Suspicions)
			}
			why := map[string]string{}
			for _, r := range st.Rejected {
				why[r.Event] = r.Reason
			}
			if !strings.Contains(why[courier.forged], "verif") || !strings.Contains(why[courier.notObserver], "not an observer") {
				t.Fatalf("%s: rejections %v", filepath.Base(n.dir), st.Rejected)
			}
			if n := countSteps(st, succession.StepSuspect, ids[1]); n < 3 {
				t.Fatalf("n1's duplicated suspicions were not received (%d)", n)
			}
		}
	}

	// The partition heals: n2 releases its share (the letter opens, for dr.li alone), and
	// suspects the deputy's holder too, so that k observers agree.
	nodes[2] = startNode(t, dirs[2], "--fleet-listen", n2Addr, "--join", nodes[0].fleetAddr)
	var letter result
	eventually(t, 30*time.Second, "n3 opens the letter with the third share", func() (bool, string) {
		letter = sios(t, dirs[3], "role", "letter", "open", "guardian", "--node", nodes[3].url, "--api-key", li[3])
		return letter.code == 0, letter.stderr
	})
	if letter.stdout != secret {
		t.Fatalf("the opened letter is %q", letter.stdout)
	}
	if r := sios(t, dirs[3], "role", "letter", "open", "guardian", "--node", nodes[3].url, "--api-key", smith3); r.code == 0 {
		t.Fatal("the former holder opened the letter")
	}
	onAll(t, 30*time.Second, "the healed partition hands the deputy role over", "caldicott-deputy", nodes[:1], li[:1], func(st succession.RoleState) bool {
		return st.State == succession.StateHandedOver
	})
	t.Logf("all stories done: %s", time.Since(start).Round(time.Millisecond))
	shown := decode[succession.RoleState](t, ok(t, dirs[3], "role", "show", "guardian", "--json"))
	if shown.Holder != "dr.li" || shown.HolderNode != ids[3] {
		t.Fatalf("role show: holder %q via %q", shown.Holder, shown.HolderNode)
	}

	// Every step is in the ledger of the node that took it.
	for _, n := range append(nodes, nc) {
		n.stop(t)
	}
	for _, d := range append(slices.Clone(dirs), courierDir) {
		if found := plaintextRuns(t, d, secret); len(found) > 0 {
			t.Fatalf("the letter is on disk: %v", found)
		}
	}
	recs := make([][]*oar.Record, 5)
	for i, d := range dirs {
		recs[i] = ledgerRecords(t, d)
	}
	byRole := func(i int, action, role string) []*oar.Record {
		var out []*oar.Record
		for _, r := range recs[i] {
			if r.Action == action && r.Resource == "role/default/"+role {
				out = append(out, r)
			}
		}
		return out
	}
	certs := map[string]bool{}
	for i := range 5 {
		h := byRole(i, oar.ActionRoleHandover, "guardian")
		if len(h) != 1 || len(h[0].Parties) != 3 {
			t.Fatalf("n%d's ledger holds %d guardian handovers (want 1 with the 3 suspicions as parties)", i, len(h))
		}
		var d struct {
			Certificate string `json:"certificate"`
		}
		json.Unmarshal(h[0].Detail, &d)
		certs[d.Certificate] = true
		if len(byRole(i, oar.ActionRoleHandover, "clinical-lead")) != 1 {
			t.Fatalf("n%d did not record the removal's handover", i)
		}
	}
	if len(certs) != 1 || certs[ga.CertificateHash] != true {
		t.Fatalf("the nodes recorded different certificates: %v (shown %s)", certs, ga.CertificateHash)
	}
	for i, want := range map[int][]string{
		0: {oar.ActionRoleDefine, oar.ActionRoleSuspect, oar.ActionRoleLetterDeposit, oar.ActionRoleLetterRelease, oar.ActionRoleReject},
		1: {oar.ActionRoleSuspect, oar.ActionRoleLetterRelease, oar.ActionRoleRemove, oar.ActionRoleReject},
		2: {oar.ActionRoleSuspect, oar.ActionRoleLetterRelease, oar.ActionRoleRemove},
		3: {oar.ActionRoleAccept, oar.ActionRoleLetterOpen, oar.ActionRoleCascade, oar.ActionRoleReject},
		4: {oar.ActionRoleRefute, oar.ActionRoleAccept, oar.ActionRoleCascade},
	} {
		for _, a := range want {
			if !slices.ContainsFunc(recs[i], func(r *oar.Record) bool { return r.Action == a }) {
				t.Errorf("n%d's ledger has no %s", i, a)
			}
		}
	}
	// The handover certificate's record, traced on the successor's node and verified
	// offline: the record, its inclusion in n3's log, and each observer's signed
	// suspicion under the observer's enrolled keys, chained to the institution's root.
	traceFile := filepath.Join(t.TempDir(), "handover-trace.json")
	idx := recordIndex(t, dirs[3], func(r *oar.Record) bool {
		return r.Action == oar.ActionRoleHandover && r.Resource == "role/default/guardian"
	})
	ok(t, dirs[3], "audit", "trace", "--record", fmt.Sprint(idx), "--out", traceFile)
	verified := decode[map[string]any](t, ok(t, "", "audit", "verify", "--trace", traceFile, "--json"))
	if verified["verified"] != true {
		t.Fatalf("the handover's trace: %v", verified)
	}
	if chain, _ := verified["chain"].(map[string]any); chain["unchecked"] != nil {
		t.Fatalf("the handover's trace left parts unchecked: %v", chain["unchecked"])
	}
	human := ok(t, "", "audit", "verify", "--trace", traceFile)
	for _, id := range ids[:3] {
		if !strings.Contains(human, id) {
			t.Fatalf("the trace does not name observer %s:\n%s", id, human)
		}
	}
	t.Logf("total: %s", time.Since(start).Round(time.Millisecond))
}

// recordIndex is the index in a stopped node's log of the first record pred accepts.
func recordIndex(t *testing.T, dir string, pred func(*oar.Record) bool) uint64 {
	t.Helper()
	rd := openTestReader(t, dir)
	raws, err := rd.Entries(context.Background(), 0, rd.Size())
	if err != nil {
		t.Fatal(err)
	}
	for i, raw := range raws {
		if e, err := oar.Parse(raw); err == nil && e.Record != nil && pred(e.Record) {
			return uint64(i)
		}
	}
	t.Fatalf("no such record in %s's log", filepath.Base(dir))
	return 0
}

func countSteps(st succession.RoleState, action, node string) int {
	n := 0
	for _, h := range st.History {
		if h.Action == action && h.Node == node {
			n++
		}
	}
	return n
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// injected names the documents injectSuspicions carried.
type injected struct{ forged, notObserver string }

// injectSuspicions writes, into the feed of the stopped courier node, suspicions of
// the charter: one forged (claiming forgedAs, signed by the courier), one by the
// courier itself (not an observer), and two more by the observer whose data
// directory is observerDir, signed with its key. They are dated after suspect_after
// (2 s) has passed since the charter.
func injectSuspicions(t *testing.T, courierDir, observerDir, charter string, charterTime time.Time, forgedAs string) injected {
	t.Helper()
	courier, err := identity.Load(courierDir)
	if err != nil {
		t.Fatal(err)
	}
	observer, err := identity.Load(observerDir)
	if err != nil {
		t.Fatal(err)
	}
	for time.Now().Before(charterTime.Add(5 * time.Second)) {
		time.Sleep(100 * time.Millisecond) // the documents must be dated in the past
	}
	// Since a second after the charter: the observer's own suspicion (since the charter)
	// is never the same document.
	sign := func(n *identity.Node, at time.Time) []byte {
		doc, err := succession.SignSuspicion(n.Key, succession.Suspicion{Tenant: "default", Role: "caldicott-deputy", Charter: charter,
			Holder: "dr.white", Node: n.ID(), Since: succession.FormatTime(charterTime.Add(time.Second)), Time: succession.FormatTime(at)})
		if err != nil {
			t.Fatal(err)
		}
		return doc
	}
	notObserver := sign(courier, charterTime.Add(3*time.Second))
	forged := bytes.Replace(sign(courier, charterTime.Add(4*time.Second)), []byte(courier.ID()), []byte(forgedAs), 1)
	feed, err := fleet.OpenPublisher(node.FeedDir(courierDir), courier, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range [][]byte{forged, notObserver, sign(observer, charterTime.Add(3*time.Second)), sign(observer, charterTime.Add(4*time.Second))} {
		if _, err := feed.Publish(fleet.KindRole, fleet.NewSuccessionBody(doc), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return injected{forged: succession.EventHash(forged), notObserver: succession.EventHash(notObserver)}
}

// cmdWaitRole is the scenarios' waitrole NAME ROLE STATE.
func cmdWaitRole(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: waitrole NAME ROLE STATE")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ := exec.Command(siosBin, "--data", ts.MkAbs(args[0]), "role", "show", args[1], "--json").Output()
		var st succession.RoleState
		if json.Unmarshal(out, &st) == nil && st.State == args[2] {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s does not show role %s %s after 30s: %s", args[0], args[1], args[2], out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
