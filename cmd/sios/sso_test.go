package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sios-project/sios/internal/oidctest"
	"github.com/sios-project/sios/oar"
)

// Users of the organisation's identity provider sign in with its tokens: mapped to a
// tenant, clearance and roles by the operator's rules, nothing more; the node keeps
// working on cached keys when the provider goes away.
func TestSingleSignOn(t *testing.T) {
	t.Parallel()
	idp := oidctest.Start(t, map[string]map[string]any{
		"alice":   {"groups": []string{"clinicians", "staff"}},
		"mallory": {"groups": []string{"visitors"}},
	})
	other := oidctest.Start(t, map[string]map[string]any{"alice": {"groups": []string{"clinicians"}}})
	dir := initNode(t)
	writeFile(t, dir, "config.json", fmt.Sprintf(`{"oidc":[{"name":"corp","issuer":%q,"audience":["sios-console"],
  "claims":{"rules":[{"when":{"groups":"clinicians"},"tenant":"hospital","clearance":"OFFICIAL-SENSITIVE","roles":["clinician"]}]}}]}`, idp.Issuer))
	n := startNode(t, dir)
	alice, _ := idp.SignIn(t, "sios-console", "alice")
	mallory, _ := idp.SignIn(t, "sios-console", "mallory")
	foreign, _ := other.SignIn(t, "sios-console", "alice")
	// The clinician gets the mapped tenant and clearance, and nothing more.
	if resp, out := n.post(t, alice, "/v1/memory", `{"subject":"p1","classification":"OFFICIAL-SENSITIVE","text":"Seen in clinic."}`); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	if resp, out := n.post(t, alice, "/v1/memory", `{"subject":"p1","classification":"SECRET","text":"x"}`); resp.StatusCode != 403 {
		t.Fatalf("wrote above the mapped clearance: %d %s", resp.StatusCode, out)
	}
	if resp, out := n.post(t, alice, "/v1/chat/completions", `{"model":"cyber-threat","messages":[{"role":"user","content":"x"}]}`); resp.StatusCode != 403 {
		t.Fatalf("used a SECRET brain: %d %s", resp.StatusCode, out)
	}
	for range 3 {
		if resp, out := n.post(t, mallory, "/v1/memory/search", `{"query":"clinic"}`); resp.StatusCode != 403 || !strings.Contains(out, "unmapped_identity") {
			t.Fatalf("an unmapped user: %d %s", resp.StatusCode, out)
		}
	}
	if resp, out := n.post(t, foreign, "/v1/memory/search", `{"query":"clinic"}`); resp.StatusCode != 401 || !strings.Contains(out, "invalid_token") {
		t.Fatalf("a token of an unconfigured issuer: %d %s", resp.StatusCode, out)
	}
	// The provider goes away; the node restarts on its cached keys.
	idp.Stop()
	n.stop(t)
	n = startNode(t, dir)
	resp, out := n.post(t, alice, "/v1/memory/search", `{"query":"clinic"}`)
	if resp.StatusCode != 200 || !strings.Contains(out, "Seen in clinic") {
		t.Fatalf("after the provider went away: %d %s", resp.StatusCode, out)
	}
	n.stop(t)
	recs := ledgerRecords(t, dir)
	signIns := recordsWith(recs, oar.ActionSSOSignIn)
	if len(signIns) == 0 || !strings.HasPrefix(signIns[0].Actor.ID, "oidc:corp:") || signIns[0].Tenant != "hospital" {
		t.Fatalf("sign-in records: %+v", signIns)
	}
	var unmapped, badToken int
	for _, r := range recordsWith(recs, oar.ActionAuthRefuse) {
		d := string(r.Detail)
		switch {
		case strings.Contains(d, "no rule grants") && strings.Contains(d, `"subject":"mallory"`) && strings.Contains(d, "no rule matched"):
			unmapped++
		case strings.Contains(d, "no configured identity provider issued"):
			badToken++
		}
	}
	if unmapped != 1 || badToken == 0 {
		t.Fatalf("refused sign-ins: %d records of the unmapped user (want 1, naming them), %d of the foreign token", unmapped, badToken)
	}
	for _, r := range recs {
		if strings.Contains(string(r.Detail), alice[:40]) {
			t.Fatal("a record holds a token")
		}
	}
	if len(recordsWith(recs, oar.ActionSSOKeys)) == 0 {
		t.Fatal("key fetches are not recorded")
	}
}
