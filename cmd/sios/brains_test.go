package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBrainsListShowAndPolicyCheck(t *testing.T) {
	dir := initNode(t)
	if _, err := os.Stat(filepath.Join(dir, "policies", "default.cedar")); err != nil {
		t.Fatalf("init did not write the default policies: %v", err)
	}
	list := decode[[]map[string]any](t, ok(t, dir, "brains", "list", "--json"))
	kinds := map[string]int{}
	for _, b := range list {
		for _, k := range []string{"id", "kind", "classification", "backend", "model"} {
			if _, present := b[k]; !present {
				t.Fatalf("brain %v lacks %q", b["id"], k)
			}
		}
		kinds[b["kind"].(string)]++
	}
	if kinds["domain"] != 25 || kinds["operational"] != 25 {
		t.Fatalf("catalogue kinds: %v", kinds)
	}
	if out := ok(t, dir, "brains", "show", "calculator"); !strings.Contains(out, "id: calculator") {
		t.Fatalf("brains show: %s", out)
	}
	fails(t, 1, dir, []string{"brains", "show", "nope"}, "no brain")

	ok(t, dir, "principal", "add", "--tenant", "bank", "--id", "teller", "--clearance", "OFFICIAL")
	ok(t, dir, "principal", "add", "--tenant", "bank", "--id", "mlro", "--clearance", "SECRET", "--role", "mlro")
	fails(t, 1, dir, []string{"principal", "add", "--tenant", "bank", "--id", "mlro", "--clearance", "SECRET"}, "already exists")
	fails(t, 2, dir, []string{"principal", "add", "--tenant", "bank", "--id", "x", "--clearance", "PUBLIC"}, "OFFICIAL")

	allow := decode[map[string]any](t, ok(t, dir, "policy", "check", "--principal", "mlro", "--tenant", "bank", "--brain", "anti-money-laundering", "--json"))
	if allow["decision"] != "allow" {
		t.Fatalf("SECRET principal: %v", allow)
	}
	r := sios(t, dir, "policy", "check", "--principal", "teller", "--tenant", "bank", "--brain", "anti-money-laundering", "--json")
	if r.code != 3 {
		t.Fatalf("deny exit %d, want 3: %s %s", r.code, r.stdout, r.stderr)
	}
	deny := decode[map[string]any](t, r.stdout)
	if deny["decision"] != "deny" || !strings.Contains(strings.Join(toStrings(deny["reasons"]), ","), "forbid-read-up") {
		t.Fatalf("deny: %v", deny)
	}
	if r := sios(t, dir, "policy", "check", "--principal", "teller", "--tenant", "bank", "--brain", "anti-money-laundering"); r.code != 3 || !strings.Contains(r.stdout, "forbid-read-up") {
		t.Fatalf("explanation: %d %s", r.code, r.stdout)
	}
	// Every principal added was audited, and the log still verifies.
	ok(t, dir, "audit", "verify")
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
