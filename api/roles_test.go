package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/policy"
	"github.com/sios-project/sios/roles"
	"github.com/sios-project/sios/succession"
)

// roleGateway is fakeGateway with the role endpoints: it keeps what reached it and
// refuses the role "late" as a role's state would.
type roleGateway struct {
	fakeGateway
	mu   sync.Mutex
	acts []invoke.RoleAct
}

func (g *roleGateway) RoleList(context.Context, *policy.Principal) ([]succession.RoleState, error) {
	return []succession.RoleState{{Name: "guardian", Tenant: "t", State: succession.StateHeld}}, nil
}

func (g *roleGateway) RoleShow(_ context.Context, _ *policy.Principal, name string) (succession.RoleState, error) {
	if name != "guardian" {
		return succession.RoleState{}, &invoke.Error{Code: invoke.CodeUnknownRole, Message: "no such role"}
	}
	return succession.RoleState{Name: name, Tenant: "t", State: succession.StateHeld}, nil
}

func (g *roleGateway) Role(_ context.Context, _ *policy.Principal, a invoke.RoleAct) (*roles.Outcome, error) {
	g.mu.Lock()
	g.acts = append(g.acts, a)
	g.mu.Unlock()
	if a.Name == "late" {
		return nil, &invoke.Error{Code: invoke.CodeRoleNotNow, Message: "handed over", Receipt: fakeReceipt}
	}
	return &roles.Outcome{Published: true, Receipt: fakeReceipt, Letter: []byte("the letter")}, nil
}

func roleServer(t testing.TB) (*httptest.Server, *roleGateway) {
	g := &roleGateway{}
	srv := httptest.NewServer(NewServer(g, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	return srv, g
}

func roleCall(t testing.TB, srv *httptest.Server, method, path, body string) (int, string) {
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		return 0, ""
	}
	req.Header.Set("Authorization", "Bearer sios_good")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRoleEndpoints(t *testing.T) {
	srv, g := roleServer(t)
	for _, c := range []struct {
		method, path, body string
		status             int
		has                string
	}{
		{"GET", "/v1/roles", "", 200, `"guardian"`},
		{"GET", "/v1/roles/guardian", "", 200, `"held"`},
		{"GET", "/v1/roles/nobody", "", 404, "unknown_role"},
		{"GET", "/v1/roles/-bad", "", 400, "invalid_role_name"},
		{"POST", "/v1/roles", `{"name":"guardian","holder":"a","successors":["b"],"observers":["node_x","node_y"],"k":2,"suspect_after":60,"wait":30,"accept_within":20}`, 200, `"published":true`},
		{"POST", "/v1/roles", `{"name":`, 400, "invalid_json"},
		{"POST", "/v1/roles/guardian/checkin", "", 200, `"published":true`},
		{"POST", "/v1/roles/guardian/refute", `{"reason":"here"}`, 200, `"published"`},
		{"POST", "/v1/roles/guardian/refute", "", 400, "invalid_body"},
		{"POST", "/v1/roles/late/accept", "", 409, "role_not_now"},
		{"POST", "/v1/roles/guardian/remove", `{"reason":"resigned"}`, 200, `"published"`},
		{"POST", "/v1/roles/guardian/letter", `{"letter":"aGVsbG8="}`, 200, `"published"`},
		{"POST", "/v1/roles/guardian/letter", `{"letter":""}`, 400, "invalid_letter"},
		{"POST", "/v1/roles/guardian/letter", `{"letter":"` + strings.Repeat("A", 4*(succession.MaxLetterPlaintext/3+2)) + `"}`, 400, "MaxLetterPlaintext"},
		{"POST", "/v1/roles/guardian/letter/open", "", 200, `"letter":"dGhlIGxldHRlcg=="`},
	} {
		status, body := roleCall(t, srv, c.method, c.path, c.body)
		if status != c.status || !strings.Contains(body, c.has) {
			t.Errorf("%s %s: %d %s, want %d with %q", c.method, c.path, status, body, c.status, c.has)
		}
	}
	var got []string
	for _, a := range g.acts {
		name := a.Name
		if a.Spec != nil {
			name = a.Spec.Name
		}
		got = append(got, a.Act+" "+name)
	}
	want := "define guardian,checkin guardian,refute guardian,accept late,remove guardian,letter-deposit guardian,letter-open guardian"
	if strings.Join(got, ",") != want {
		t.Fatalf("acts reaching the pipeline: %v\nwant %s", got, want)
	}
	if a := g.acts[0]; a.Spec == nil || a.Spec.K != 2 || a.Spec.SuspectAfter != 60 || len(a.Spec.Observers) != 2 {
		t.Fatalf("define's spec: %+v", a.Spec)
	}
}

// FuzzRoleRequests: no body or role name makes the role endpoints fail with a 5xx,
// and nothing reaches the pipeline under a name succession would refuse, or with a
// letter outside its bounds.
func FuzzRoleRequests(f *testing.F) {
	srv, g := roleServer(f)
	f.Add("guardian", "refute", `{"reason":"here"}`)
	f.Add("guardian", "letter", `{"letter":"aGVsbG8="}`)
	f.Add("a.b@c", "remove", `{"reason":"x","extra":[1,2]}`)
	f.Add("x", "", `{"name":"x","k":"two"}`)
	f.Add("", "accept", "")
	f.Fuzz(func(t *testing.T, name, act, body string) {
		path := "/v1/roles"
		if name != "" {
			path += "/" + url.PathEscape(name)
			if act != "" {
				path += "/" + act
			}
		}
		g.mu.Lock()
		before := len(g.acts)
		g.mu.Unlock()
		status, _ := roleCall(t, srv, "POST", path, body)
		if status >= 500 {
			t.Fatalf("POST %s %q: %d", path, body, status)
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, a := range g.acts[before:] {
			if a.Act != invoke.RoleActDefine && (a.Name == "" || len(a.Name) > succession.MaxIDLen || strings.ContainsAny(a.Name, "/ ")) {
				t.Fatalf("act %s reached the pipeline for role %q", a.Act, a.Name)
			}
			if a.Act == invoke.RoleActDeposit && (len(a.Letter) == 0 || len(a.Letter) > succession.MaxLetterPlaintext) {
				t.Fatalf("a letter of %d bytes reached the pipeline", len(a.Letter))
			}
		}
	})
}
