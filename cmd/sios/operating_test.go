package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/sios-project/sios/oar"
)

// scrape reads the node's metrics: family name → series (label set as
// `k="v",…` sorted by name) → value (a histogram's sample count).
func scrape(t *testing.T, url string) map[string]map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the metrics are not Prometheus text: %v", err)
	}
	out := map[string]map[string]float64{}
	for name, f := range fams {
		series := map[string]float64{}
		for _, m := range f.Metric {
			var labels []string
			for _, l := range m.Label {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			series[strings.Join(labels, ",")] = value(f.GetType(), m)
		}
		out[name] = series
	}
	return out
}

func value(t dto.MetricType, m *dto.Metric) float64 {
	switch t {
	case dto.MetricType_COUNTER:
		return m.Counter.GetValue()
	case dto.MetricType_GAUGE:
		return m.Gauge.GetValue()
	case dto.MetricType_HISTOGRAM:
		return float64(m.Histogram.GetSampleCount())
	}
	return m.Untyped.GetValue()
}

// sum adds the series of family whose labels contain every one of want.
func sum(m map[string]map[string]float64, family string, want ...string) float64 {
	total := 0.0
	for labels, v := range m[family] {
		all := true
		for _, w := range want {
			all = all && strings.Contains(labels, w)
		}
		if all {
			total += v
		}
	}
	return total
}

// An operator scrapes the node: the series the issue names are there and move with
// traffic; /readyz says what it checked; the log has one JSON line per request with
// its record's hash, and never a key or a prompt.
func TestMetricsReadinessAndRequestLog(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	n := startNode(t, dir, "--metrics-listen", "127.0.0.1:0", "--log-format", "json")
	if n.metricsURL == "" {
		t.Fatal("the node did not say where its metrics are")
	}
	resp, err := http.Get(n.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var ready struct {
		Status string
		Checks []struct {
			Name   string
			OK     bool
			Detail string
		}
	}
	if err := json.Unmarshal(body, &ready); err != nil || resp.StatusCode != 200 || ready.Status != "ready" || len(ready.Checks) != 3 {
		t.Fatalf("/readyz: %d %s", resp.StatusCode, body)
	}
	writes := regexp.MustCompile(`journal writes by (aio|pwritev2|fdatasync)$`).FindStringSubmatch(ready.Checks[0].Detail)
	if ready.Checks[0].Name != "ledger" || writes == nil {
		t.Fatalf("/readyz's ledger check does not say how the journal writes: %s", body)
	}
	before := scrape(t, n.metricsURL)
	clerk := n.addPrincipal(t, "default", "clerk", "OFFICIAL")
	const secretPrompt = "the patient's name is Jane Example"
	for range 3 {
		if r, out := n.post(t, n.adminKey, "/v1/chat/completions", `{"model":"calculator","messages":[{"role":"user","content":"what is 6*7? `+secretPrompt+`"}]}`); r.StatusCode != 200 {
			t.Fatalf("%d %s", r.StatusCode, out)
		}
	}
	if r, out := n.post(t, clerk, "/v1/chat/completions", `{"model":"cyber-threat","messages":[{"role":"user","content":"x"}]}`); r.StatusCode != 403 {
		t.Fatalf("%d %s", r.StatusCode, out)
	}
	if r, out := n.post(t, n.adminKey, "/v1/memory", `{"subject":"p1","classification":"OFFICIAL","text":"`+secretPrompt+`"}`); r.StatusCode != 200 {
		t.Fatalf("%d %s", r.StatusCode, out)
	}
	if r, out := n.post(t, n.adminKey, "/v1/memory/search", `{"query":"patient"}`); r.StatusCode != 200 {
		t.Fatalf("%d %s", r.StatusCode, out)
	}
	after := scrape(t, n.metricsURL)
	grew := func(family string, by float64, labels ...string) {
		t.Helper()
		if d := sum(after, family, labels...) - sum(before, family, labels...); d < by {
			t.Errorf("%s%v grew by %v, want at least %v", family, labels, d, by)
		}
	}
	grew("sios_http_requests_total", 3, `route="POST /v1/chat/completions"`, `status="200"`)
	grew("sios_http_requests_total", 1, `route="POST /v1/chat/completions"`, `status="403"`)
	grew("sios_http_requests_total", 1, `route="POST /v1/memory"`, `status="200"`)
	grew("sios_http_request_duration_seconds", 6)
	grew("sios_brain_requests_total", 3, `brain="calculator"`, `code="ok"`)
	grew("sios_brain_requests_total", 1, `brain="cyber-threat"`, `code="policy_denied"`)
	grew("sios_chat_node_seconds", 4)
	grew("sios_chat_backend_seconds", 3, `kind="model"`)
	grew("sios_policy_decisions_total", 3, `action="invoke"`, `effect="allow"`)
	grew("sios_policy_decisions_total", 1, `action="invoke"`, `effect="deny"`)
	grew("sios_ledger_append_seconds", 6)
	grew("sios_ledger_seal_seconds", 1)
	grew("sios_ledger_fsync_seconds", 1)
	grew("sios_ledger_entries", 6)
	grew("sios_memory_operations_total", 1, `op="add"`, `outcome="ok"`)
	grew("sios_memory_operations_total", 1, `op="search"`, `outcome="ok"`)
	if got := sum(after, "sios_ledger_journal_writes", `mode="`+writes[1]+`"`); got != 1 {
		t.Errorf("sios_ledger_journal_writes{mode=%q} = %v, want 1 as /readyz says", writes[1], got)
	}
	if got := sum(after, "sios_brains"); got < 40 {
		t.Errorf("sios_brains = %v", got)
	}
	if got := sum(after, "sios_policies"); got < 1 {
		t.Errorf("sios_policies = %v", got)
	}
	if sum(after, "go_goroutines") == 0 || sum(after, "process_resident_memory_bytes") == 0 {
		t.Error("the runtime and process collectors are missing")
	}
	// Only /metrics is served there.
	if r, err := http.Get(strings.TrimSuffix(n.metricsURL, "/metrics") + "/v1/models"); err != nil || r.StatusCode != 404 {
		t.Errorf("the metrics listener serves more than /metrics: %v %v", r, err)
	}
	n.stop(t)

	logged := n.stderr.String()
	if strings.Contains(logged, n.adminKey) || strings.Contains(logged, clerk) || strings.Contains(logged, "Jane Example") {
		t.Fatal("the log holds a key or prompt text")
	}
	hash := regexp.MustCompile(`^[0-9a-f]{64}$`)
	chats := 0
	for _, line := range strings.Split(logged, "\n") {
		if line == "" {
			continue
		}
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("a log line is not JSON: %q", line)
		}
		if l["msg"] != "request" || l["route"] != "POST /v1/chat/completions" || l["status"] != float64(200) {
			continue
		}
		rec, _ := l["record"].(string)
		if !hash.MatchString(rec) || l["principal"] != "admin" || l["duration_ms"] == nil {
			t.Fatalf("a request line lacks its record, principal or duration: %q", line)
		}
		chats++
	}
	if chats != 3 {
		t.Fatalf("%d request lines for 3 chat completions:\n%s", chats, logged)
	}
}

// SIGHUP puts edited policies and brains in force without a restart, recorded first; a
// broken file keeps the old set in force and is recorded as refused.
func TestSIGHUPReloadsPoliciesAndBrains(t *testing.T) {
	t.Parallel()
	dir := initNode(t)
	n := startNode(t, dir, "--metrics-listen", "127.0.0.1:0")
	chief := n.addPrincipal(t, "default", "chief", "TOP-SECRET")
	chat := func() (int, string) {
		r, out := n.post(t, chief, "/v1/chat/completions", `{"model":"calculator","messages":[{"role":"user","content":"1+1"}]}`)
		return r.StatusCode, out
	}
	if code, out := chat(); code != 200 {
		t.Fatalf("%d %s", code, out)
	}
	writeFile(t, dir, "policies/site.cedar", `@id("forbid-calculator")
forbid (principal, action == Sios::Action::"invoke", resource == Sios::Brain::"calculator");
`)
	writeFile(t, dir, "brains/tumour-board.yaml", tumourBrain)
	writeFile(t, dir, "panels/ward.yaml", "id: ward\nmembers: [clinical-triage, pharmacology]\n")
	if code, _ := chat(); code != 200 {
		t.Fatal("an edited policy took effect before the reload")
	}
	if r, out := n.post(t, chief, "/v1/decisions", `{"panel":"ward","question":"Admit?","options":["yes","no"],"classification":"OFFICIAL"}`); r.StatusCode == 200 {
		t.Fatalf("a panel file took effect before the reload: %s", out)
	}
	hangup := func() {
		t.Helper()
		if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	hangup()
	eventually(t, 10*time.Second, "the reload", func() (bool, string) {
		code, out := chat()
		return code == 403 && strings.Contains(out, "forbid-calculator"), out
	})
	r, out := n.get(t, chief, "/v1/models")
	if r.StatusCode != 200 || !strings.Contains(out, `"tumour-board"`) {
		t.Fatalf("the new brain is not listed after the reload: %s", out)
	}
	// The new panel is asked: a decision of it is counted (the builtin members abstain).
	r, out = n.post(t, chief, "/v1/decisions", `{"panel":"ward","question":"Admit?","options":["yes","no"],"classification":"OFFICIAL"}`)
	var dec struct {
		Ballots []struct {
			Brain string `json:"brain"`
		} `json:"ballots"`
	}
	json.Unmarshal([]byte(out), &dec)
	if r.StatusCode != 200 || len(dec.Ballots) != 2 || dec.Ballots[0].Brain != "clinical-triage" || dec.Ballots[1].Brain != "pharmacology" {
		t.Fatalf("the panel added by the reload was not asked: %d %s", r.StatusCode, out)
	}
	// A syntax error: refused, the node goes on with the set in force.
	writeFile(t, dir, "policies/zz-broken.cedar", `@id("broken") permit (principal, action, resource`)
	os.Remove(filepath.Join(dir, "policies", "site.cedar"))
	hangup()
	eventually(t, 10*time.Second, "the refused reload", func() (bool, string) {
		m := scrape(t, n.metricsURL)
		return sum(m, "sios_reloads_total", `outcome="error"`) == 1, fmt.Sprint(m["sios_reloads_total"])
	})
	if code, out := chat(); code != 403 {
		t.Fatalf("a broken reload changed the policies in force: %d %s", code, out)
	}
	if !strings.Contains(n.stderr.String(), "zz-broken.cedar") {
		t.Fatalf("the log does not name the broken file: %s", n.stderr)
	}
	n.stop(t)
	var allowed, denied int
	for _, rec := range recordsWith(ledgerRecords(t, dir), oar.ActionNodeReload) {
		var d map[string]any
		json.Unmarshal(rec.Detail, &d)
		switch {
		case rec.Decision.Effect == "allow" && fmt.Sprint(d["policies_added"]) == "[forbid-calculator]" && fmt.Sprint(d["brains_added"]) == "[tumour-board]" &&
			fmt.Sprint(d["panels_added"]) == "[ward]":
			allowed++
		case rec.Decision.Effect == "deny" && strings.Contains(fmt.Sprint(d["error"]), "zz-broken.cedar"):
			denied++
		}
	}
	if allowed != 1 || denied != 1 {
		t.Fatalf("node.reload records: %d accepted, %d refused", allowed, denied)
	}
}

// Un-pinning an institution on a running node evicts its nodes at once, recorded
// first; they do not come back.
func TestTrustRemoveEvictsTheInstitutionsNodes(t *testing.T) {
	t.Parallel()
	hospital, lab := newInstitution(t, "h1"), newInstitution(t, "l1")
	hospital.trusts(t, lab)
	lab.trusts(t, hospital)
	l1 := startNode(t, lab.dirs[0], "--fleet-listen", "127.0.0.1:0")
	h1 := startNode(t, hospital.dirs[0], "--fleet-listen", "127.0.0.1:0", "--join", l1.fleetAddr)
	labNode := nodeIDOf(t, lab.dirs[0])
	seesAlive(t, hospital.dirs[0], labNode)
	labRoot := decode[map[string]string](t, ok(t, lab.dirs[0], "id", "--json"))["root"]
	own := decode[map[string]string](t, ok(t, hospital.dirs[0], "id", "--json"))["root"]
	fails(t, 1, hospital.dirs[0], []string{"trust", "remove", own}, "own institution")
	fails(t, 1, hospital.dirs[0], []string{"trust", "remove", "root_nope"}, "not")
	res := decode[map[string]any](t, ok(t, hospital.dirs[0], "trust", "remove", labRoot, "--json"))
	if fmt.Sprint(res["evicted"]) != "["+labNode+"]" {
		t.Fatalf("trust remove answered %v", res)
	}
	if s := peerState(peersOf(t, hospital.dirs[0]), labNode); s != "unknown" {
		t.Fatalf("the lab's node is still a peer (%s) right after the removal", s)
	}
	time.Sleep(2 * time.Second) // gossip and probes go on: it must not come back
	if s := peerState(peersOf(t, hospital.dirs[0]), labNode); s != "unknown" {
		t.Fatalf("the lab's node came back as %s", s)
	}
	if out := ok(t, hospital.dirs[0], "trust", "list"); strings.Contains(out, labRoot) {
		t.Fatalf("trust list still shows the lab: %s", out)
	}
	h1.stop(t)
	var removed int
	for _, rec := range recordsWith(ledgerRecords(t, hospital.dirs[0]), oar.ActionTrustRemove) {
		if rec.Resource == "root/"+labRoot && strings.Contains(string(rec.Detail), labNode) {
			removed++
		}
	}
	if removed != 1 || len(recordsWith(ledgerRecords(t, hospital.dirs[0]), oar.ActionTrustAddRoot)) != 1 {
		t.Fatal("the trust changes are not recorded")
	}
}
