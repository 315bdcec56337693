package console_test

import (
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/node"
)

// The fleet page of a node with a peer of its own institution: the peer, its state
// and its brains — only those the viewer may use are named; the rest are counted —,
// the routes to them, and the institution.
func TestFleetPage(t *testing.T) {
	a := startNode(t, func(cfg *node.Config, _ string) { cfg.FleetListen = "127.0.0.1:0" }, official)
	bDir := filepath.Join(t.TempDir(), "data")
	if _, err := identity.Init(bDir, "ward-2", filepath.Join(a.dir, "root.key"), time.Now()); err != nil {
		t.Fatal(err)
	}
	peer := startNodeIn(t, bDir, func(cfg *node.Config, _ string) {
		cfg.FleetListen = "127.0.0.1:0"
		cfg.Join = []string{a.n.Fleet().Addr()}
	})
	admin := a.browser(t)
	admin.signIn(a.keys["admin"])
	var page string
	deadline := time.Now().Add(20 * time.Second)
	for {
		p := admin.get("/console/fleet")
		if p.status != http.StatusOK {
			t.Fatalf("the fleet page: %d\n%s", p.status, p.body)
		}
		if page = p.body; strings.Contains(page, `<td class="state-alive">alive`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the peer is not alive on the fleet page after 20 s:\n%s", page)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(page, peer.id[:16]) || !strings.Contains(page, "(ward-2)") || !strings.Contains(page, "this node's own") {
		t.Fatalf("the admin's fleet page lacks the peer or the institution:\n%s", page)
	}
	if !strings.Contains(page, ">cyber-threat<") || !regexp.MustCompile(`<th>Address</th>`).MatchString(page) {
		t.Fatal("the TOP-SECRET admin is not shown the peer's SECRET brains or its address")
	}
	o := a.browser(t)
	o.signIn(a.keys["dr.official"])
	body := o.get("/console/fleet").body
	if !strings.Contains(body, peer.id[:16]) || !strings.Contains(body, ">education<") {
		t.Fatalf("the OFFICIAL user's fleet page lacks the peer or its OFFICIAL brains:\n%s", body)
	}
	if strings.Contains(body, "cyber-threat") || strings.Contains(body, "<th>Address</th>") || strings.Contains(body, a.n.Fleet().Addr()) {
		t.Fatalf("the OFFICIAL user's fleet page names a SECRET brain or an address:\n%s", body)
	}
	if !regexp.MustCompile(`<small>and \d+ more</small>`).MatchString(body) {
		t.Fatal("the peer's other brains are not counted")
	}
}
