package console_test

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/node"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// forbidVisitors keeps the roles from principals with the role visitor: a Cedar
// decision beyond the tenant.
const forbidVisitors = `@id("forbid-roles-to-visitors")
forbid (principal, action == Sios::Action::"role.read", resource is Sios::Role)
when { principal.roles.contains("visitor") };
`

// roleFleet is a node with a peer of its own institution (a role's observers are two
// nodes at least), with the principals of a role: its holder, its successor, its two
// admins, the tenant's admin who defines it, a visitor and another tenant's user.
func roleFleet(t *testing.T) *testNode {
	t.Helper()
	aDir := filepath.Join(t.TempDir(), "data")
	a := startNodeIn(t, aDir, func(cfg *node.Config, _ string) {
		cfg.FleetListen = "127.0.0.1:0"
		if err := os.WriteFile(filepath.Join(aDir, policy.Dir, "visitors.cedar"), []byte(forbidVisitors), 0o644); err != nil {
			t.Fatal(err)
		}
	},
		policy.NewPrincipal{Tenant: "hospital", ID: "hadmin", Clearance: "SECRET", Roles: []string{"admin"}},
		policy.NewPrincipal{Tenant: "hospital", ID: "dr.okafor", Clearance: "SECRET"},
		policy.NewPrincipal{Tenant: "hospital", ID: "dr.li", Clearance: "SECRET", Roles: []string{"guardian"}}, // a stored role of a chartered name counts for nothing
		policy.NewPrincipal{Tenant: "hospital", ID: "admin.a", Clearance: "OFFICIAL"},
		policy.NewPrincipal{Tenant: "hospital", ID: "admin.b", Clearance: "OFFICIAL"},
		policy.NewPrincipal{Tenant: "hospital", ID: "visitor", Clearance: "SECRET", Roles: []string{"visitor"}},
		eve)
	bDir := filepath.Join(t.TempDir(), "data")
	if _, err := identity.Init(bDir, "ward-2", filepath.Join(a.dir, "root.key"), time.Now()); err != nil {
		t.Fatal(err)
	}
	peer := startNodeIn(t, bDir, func(cfg *node.Config, _ string) {
		cfg.FleetListen = "127.0.0.1:0"
		cfg.Join = []string{a.n.Fleet().Addr()}
	})
	a.defineRole(t, a.keys["hadmin"], fmt.Sprintf(`{"name":"guardian","holder":"dr.okafor","successors":["dr.li"],"observers":[%q,%q],"k":2,
		"admins":["admin.a","admin.b"],"suspect_after":3600,"wait":3600,"accept_within":3600}`, a.id, peer.id))
	return a
}

// defineRole defines a role through the API with key, once the node knows the
// observers the charter names (its peers join in the background).
func (tn *testNode) defineRole(t testing.TB, key, spec string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, out := tn.api(t, key, "POST", "/v1/roles", spec)
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) || !strings.Contains(out, "is not a node of this institution") {
			t.Fatalf("define the role: %d %s", code, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var roleRows = regexp.MustCompile(`<tr id="r-([^"]+)">`)

// The roles page shows a tenant's roles to those policy lets see them, as 'sios role
// show' does; the holder checks in and the successor accepts through the API's
// function, each recorded; nobody else may.
func TestRolesPage(t *testing.T) {
	tn := roleFleet(t)
	holder := tn.browser(t)
	hcsrf := holder.signIn(tn.keys["dr.okafor"])
	list := holder.get("/console/roles")
	if m := roleRows.FindAllStringSubmatch(list.body, -1); list.status != http.StatusOK || len(m) != 1 || m[0][1] != "guardian" {
		t.Fatalf("the holder's roles page: %d\n%s", list.status, list.body)
	}
	// Policy sees the holder with the role, in the console as in the API.
	if !strings.Contains(list.body, `<span class="tag role">guardian</span>`) {
		t.Fatal("the holder is not shown holding the role")
	}
	role := holder.get("/console/roles/guardian").body
	for _, s := range []string{`<dd id="role-state" class="role-held">held</dd>`, `<dd id="holder">dr.okafor`, `<dd id="successors">dr.li</dd>`,
		`(k = <span id="k">2</span>)`, `id="checkin"`, "role.define"} {
		if !strings.Contains(role, s) {
			t.Errorf("the holder's role page lacks %q", s)
		}
	}
	if strings.Contains(role, `id="accept"`) {
		t.Error("the holder is offered to accept the role")
	}
	// Check-in: the session's token, the console's origin; then recorded as the holder's.
	checkin := url.Values{"name": {"guardian"}}
	if p := holder.post("/console/roles/checkin", checkin); p.status != http.StatusForbidden {
		t.Fatalf("a check-in without the token: %d", p.status)
	}
	checkin.Set("csrf", hcsrf)
	if p := holder.post("/console/roles/checkin", checkin, "Sec-Fetch-Site", "cross-site"); p.status != http.StatusForbidden {
		t.Fatalf("a cross-site check-in: %d", p.status)
	}
	p := holder.post("/console/roles/checkin", checkin)
	if p.status != http.StatusOK || !strings.Contains(p.body, "Checked in to role guardian") {
		t.Fatalf("check-in: %d\n%s", p.status, p.body)
	}
	tn.records(t, func(r *oar.Record) bool {
		return (r.Action == oar.ActionRolePresence || r.Action == oar.ActionRoleCheckin) && r.Actor.ID == "dr.okafor" &&
			r.Resource == "role/hospital/guardian" && r.Decision.Effect == "allow"
	})

	// The successor may not check in: refused by policy, and the refusal is recorded.
	succ := tn.browser(t)
	scsrf := succ.signIn(tn.keys["dr.li"])
	if strings.Contains(succ.get("/console/roles").body, `<span class="tag role">guardian</span>`) {
		t.Fatal("a stored role of a chartered name is shown as held")
	}
	if body := succ.get("/console/roles/guardian").body; strings.Contains(body, `id="checkin"`) || strings.Contains(body, `id="accept"`) {
		t.Fatal("the successor is offered an act before any handover")
	}
	p = succ.post("/console/roles/checkin", url.Values{"csrf": {scsrf}, "name": {"guardian"}})
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "may not checkin role guardian") || !strings.Contains(p.body, `id="refusal"`) {
		t.Fatalf("the successor's check-in: %d\n%s", p.status, p.body)
	}
	tn.records(t, func(r *oar.Record) bool {
		return r.Action == oar.ActionRoleCheckin && r.Actor.ID == "dr.li" && r.Decision.Effect == "deny"
	})

	// Another tenant's user, and a principal policy keeps from roles, see none: the
	// role answers as one that does not exist.
	for _, who := range []string{"eve", "visitor"} {
		b := tn.browser(t)
		csrf := b.signIn(tn.keys[who])
		if body := b.get("/console/roles").body; roleRows.MatchString(body) || strings.Contains(body, "guardian") {
			t.Errorf("%s sees a role:\n%s", who, body)
		}
		hidden, none := b.get("/console/roles/guardian"), b.get("/console/roles/warden")
		if hidden.status != http.StatusNotFound || none.status != http.StatusNotFound ||
			strings.Replace(hidden.body, "guardian", "NAME", -1) != strings.Replace(none.body, "warden", "NAME", -1) {
			t.Errorf("%s: the role answers %d, a missing one %d:\n%s", who, hidden.status, none.status, hidden.body)
		}
		if p := b.post("/console/roles/accept", url.Values{"csrf": {csrf}, "name": {"guardian"}}); p.status < 400 {
			t.Errorf("%s accepted the role: %d", who, p.status)
		}
	}

	// Two admins remove the holder (through the API): the role is handed over and
	// offered to the successor, who accepts it in the console.
	for _, a := range []string{"admin.a", "admin.b"} {
		if code, out := tn.api(t, tn.keys[a], "POST", "/v1/roles/guardian/remove", `{"reason":"on leave"}`); code != http.StatusOK {
			t.Fatalf("%s's removal: %d %s", a, code, out)
		}
	}
	role = succ.get("/console/roles/guardian").body
	for _, s := range []string{`class="role-handed-over">handed-over`, `<dd id="offer">dr.li from`, `id="accept"`, "on leave", "role.remove"} {
		if !strings.Contains(role, s) {
			t.Errorf("the successor's page after the removals lacks %q", s)
		}
	}
	if body := holder.get("/console/roles/guardian").body; strings.Contains(body, `id="checkin"`) {
		t.Error("the former holder is offered a check-in after the handover")
	}
	accept := url.Values{"csrf": {hcsrf}, "name": {"guardian"}} // the holder's token in the successor's session
	if p := succ.post("/console/roles/accept", accept); p.status != http.StatusForbidden {
		t.Fatalf("an accept with another session's token: %d", p.status)
	}
	accept.Set("csrf", scsrf)
	p = succ.post("/console/roles/accept", accept)
	if p.status != http.StatusOK || !strings.Contains(p.body, "You accepted role guardian") || !strings.Contains(p.body, "held by dr.li") {
		t.Fatalf("accept: %d\n%s", p.status, p.body)
	}
	tn.records(t, func(r *oar.Record) bool {
		return r.Action == oar.ActionRoleAccept && r.Actor.ID == "dr.li" && r.Decision.Effect == "allow"
	})
	// The role follows: the successor holds it now, in the console as in the API.
	if body := succ.get("/console/roles").body; !strings.Contains(body, `<span class="tag role">guardian</span>`) {
		t.Fatal("the successor is not shown holding the role after accepting it")
	}
	if body := holder.get("/console/roles").body; strings.Contains(body, `<span class="tag role">guardian</span>`) {
		t.Fatal("the former holder is still shown holding the role")
	}
}
