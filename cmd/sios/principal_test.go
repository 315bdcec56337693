package main

import (
	"strings"
	"testing"

	"github.com/sios-project/sios/oar"
)

// A principal's keys are revocable at once, through the running node; every change is
// recorded.
func TestPrincipalLifecycleThroughTheNode(t *testing.T) {
	t.Parallel()
	dir := initNode(t)
	n := startNode(t, dir)
	key := n.addPrincipal(t, "hospital", "dr.ng", "OFFICIAL")
	status := func(k string) int {
		resp, _ := n.post(t, k, "/v1/memory/search", `{"query":"x"}`)
		return resp.StatusCode
	}
	if status(key) != 200 {
		t.Fatal("a new key does not work")
	}
	out := decode[map[string]any](t, ok(t, dir, "principal", "rotate-key", "dr.ng", "--json"))
	newKey, _ := out["api_key"].(string)
	if !strings.HasPrefix(newKey, "sios_") || status(key) != 401 || status(newKey) != 200 {
		t.Fatalf("after rotation: old %d, new %d", status(key), status(newKey))
	}
	ci := decode[map[string]any](t, ok(t, dir, "principal", "rotate-key", "dr.ng", "--name", "ci", "--expires", "1h", "--json"))["api_key"].(string)
	if status(ci) != 200 || status(newKey) != 200 {
		t.Fatal("a second named key, or the first, does not work")
	}
	ok(t, dir, "principal", "disable", "dr.ng")
	if status(newKey) != 401 || status(ci) != 401 {
		t.Fatal("a disabled principal's keys work")
	}
	ok(t, dir, "principal", "enable", "dr.ng")
	if status(newKey) != 200 {
		t.Fatal("an enabled principal's key does not work")
	}
	// Clearance governs at the next request.
	chat := func(k string) int {
		resp, _ := n.post(t, k, "/v1/chat/completions", `{"model":"cyber-threat","messages":[{"role":"user","content":"x"}]}`)
		return resp.StatusCode
	}
	if chat(newKey) != 403 {
		t.Fatal("an OFFICIAL principal used a SECRET brain")
	}
	ok(t, dir, "principal", "set", "dr.ng", "--clearance", "SECRET", "--role", "analyst")
	if c := chat(newKey); c != 200 {
		t.Fatalf("after set: %d", c)
	}
	show := decode[map[string]any](t, ok(t, dir, "principal", "show", "dr.ng", "--json"))
	if show["clearance"] != "SECRET" || len(show["keys"].([]any)) != 2 || strings.Contains(ok(t, dir, "principal", "list"), "sios_") {
		t.Fatalf("show: %v", show)
	}
	ok(t, dir, "principal", "remove", "dr.ng")
	if status(newKey) != 401 || status(ci) != 401 {
		t.Fatal("a removed principal's keys work")
	}
	fails(t, 1, dir, []string{"principal", "show", "dr.ng"}, "no principal dr.ng")
	n.stop(t)
	actions := map[string]int{}
	for _, r := range ledgerRecords(t, dir) {
		if strings.HasPrefix(r.Action, "principal.") {
			actions[r.Action]++
		}
	}
	for a, want := range map[string]int{oar.ActionPrincipalAdd: 1, oar.ActionPrincipalRotateKey: 2, oar.ActionPrincipalDisable: 1,
		oar.ActionPrincipalEnable: 1, oar.ActionPrincipalSet: 1, oar.ActionPrincipalRemove: 1} {
		if actions[a] != want {
			t.Errorf("%d %s records, want %d", actions[a], a, want)
		}
	}
	// Offline, on the data directory.
	ok(t, dir, "principal", "add", "--tenant", "t", "--id", "offline", "--clearance", "OFFICIAL")
	ok(t, dir, "principal", "disable", "offline")
	if !strings.Contains(ok(t, dir, "principal", "list"), "disabled") {
		t.Fatal("an offline change did not take")
	}
	ok(t, dir, "audit", "verify")
}
