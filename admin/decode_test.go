package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// TestDecodeStrict: an operator's request as the CLI writes it (Client.Do marshals the
// request types) decodes to the same; a misspelt, differently cased or repeated
// member is refused with a 400 naming it, where encoding/json would drop it, match it
// anyway or let the last win.
func TestDecodeStrict(t *testing.T) {
	sent := PrincipalRequest{Tenant: "acme", ID: "alice", Kind: "user", Clearance: "SECRET", Roles: []string{"analyst"}}
	b, _ := json.Marshal(sent)
	var got PrincipalRequest
	if err := decode(httptest.NewRequest("POST", "/admin/principals", strings.NewReader(string(b))), &got); err != nil || !reflect.DeepEqual(got, sent) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	h := Handler(Deps{})
	for _, c := range []struct{ name, body, want string }{
		{"misspelt member", `{"tenant":"acme","id":"alice","clearence":"SECRET"}`, `unknown object member name "clearence"`},
		{"differently cased member", `{"tenant":"acme","id":"alice","Clearance":"SECRET"}`, `unknown object member name "Clearance"`},
		{"repeated member", `{"tenant":"acme","id":"alice","clearance":"OFFICIAL","clearance":"SECRET"}`, `duplicate object member name "clearance"`},
		{"too large", `{"tenant":"` + strings.Repeat("a", maxBody) + `"}`, "(maxBody)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("POST", "/admin/principals", strings.NewReader(c.body)))
			var e struct {
				Error string `json:"error"`
			}
			json.Unmarshal(w.Body.Bytes(), &e)
			if w.Code != http.StatusBadRequest || !strings.Contains(e.Error, c.want) {
				t.Fatalf("answered %d %q, want 400 saying %q", w.Code, e.Error, c.want)
			}
		})
	}
}

// TestClientRefusesWhatTheNodeWouldNot: the CLI does not send a request larger than
// the admin API reads.
func TestClientRefusesWhatTheNodeWouldNot(t *testing.T) {
	c := &Client{http: &http.Client{}}
	err := c.Do(t.Context(), "POST", "/admin/memory/add", MemoryRequest{Tenant: "t", Text: strings.Repeat("x", maxBody)}, nil)
	if err == nil || !strings.Contains(err.Error(), "(maxBody") {
		t.Fatalf("Do = %v, want a refusal naming maxBody", err)
	}
}

// FuzzDecode: whatever decode accepts into a request type reads the same once written
// back as the CLI writes it.
func FuzzDecode(f *testing.F) {
	f.Add(`{"tenant":"acme","id":"alice","clearance":"SECRET","roles":["a"]}`)
	f.Add(`{"tenant":"acme","subject":"s","text":"x","limit":3}`)
	f.Add(`{"tenant":"acme","id":"alice","op":"set","expires":"2030-01-01T00:00:00Z","roles":[]}`)
	f.Add(`{"tenant":"a","tenant":"b"}`)
	f.Fuzz(func(t *testing.T, in string) {
		for _, v := range []any{&PrincipalRequest{}, &MemoryRequest{}, &ChangeRequest{}, &RoleDefineRequest{}, &TrustChange{}} {
			if decode(httptest.NewRequest("POST", "/", strings.NewReader(in)), v) != nil {
				continue
			}
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			again := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := decode(httptest.NewRequest("POST", "/", strings.NewReader(string(b))), again); err != nil {
				t.Fatalf("%T of %s, written back as %s, does not decode: %v", v, in, b, err)
			}
		}
	})
}
