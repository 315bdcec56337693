package policy

import (
	"strings"
	"testing"
)

// FuzzLoadPolicy feeds arbitrary bytes to the loader as an operator's policy file beside
// the default set. Loading must not panic; an error must name the file; and whatever
// loads, the default forbids still hold: no permit can let an OFFICIAL principal invoke a
// TOP-SECRET brain, send SECRET data to an OFFICIAL brain or peer, or cross tenants
// without consent.
func FuzzLoadPolicy(f *testing.F) {
	f.Add(defaultPolicies)
	f.Add([]byte(permitAll))
	f.Add([]byte(peerPolicies))
	f.Add([]byte(`@id("x") permit (principal, action, resource) when { principal.clearance >= 1 || context.consent };`))
	f.Add([]byte(`@id("y") forbid (principal == Sios::Principal::"alice", action in [Sios::Action::"invoke"], resource is Sios::Brain) unless { resource.kind like "dom*" };`))
	f.Add([]byte(`@id("z") permit (principal, action, resource) when { context.n == 99999999999999999999999 };`))
	f.Add([]byte("@id(\"w\") permit (principal, action, resource) when { decimal(\"1.5\") < decimal(\"2\") && ip(\"10.0.0.1\").isLoopback() };"))
	f.Add([]byte("@id(\"a\")\npermit (principal, action, resource)\n;\x00\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		if len(text) > MaxPolicyFileSize {
			return
		}
		// Alone, the file must load or fail cleanly, and decide without panicking.
		if e, err := newEngine([]source{{name: "fuzz.cedar", text: text}}); err == nil {
			e.Decide(invoke(Official, TopSecret))
			e.Explain(toolCall(true))
		} else if !strings.HasPrefix(err.Error(), "fuzz.cedar:") {
			t.Fatalf("error does not name the file: %v", err)
		}

		e, err := newEngine([]source{{name: "default.cedar", text: defaultPolicies}, {name: "fuzz.cedar", text: text}})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.cedar:") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		mustDeny := []Request{
			invoke(Official, TopSecret),
			with(invoke(Official, TopSecret), func(r *Request) { r.Context.Consent, r.Principal.Roles = true, []string{"admin"} }),
			with(invoke(Secret, Official), func(r *Request) { r.Context.DataClassification = Secret }),
			with(invoke(Secret, Secret), func(r *Request) { r.Context.Tenant = "mod" }),
			toolCall(false),
			peerSend(Secret, Official),
			with(peerSend(Official, Official), func(r *Request) { r.Context.Tenant = "mod" }),
		}
		for _, req := range mustDeny {
			if d := e.Decide(req); d.Allow {
				t.Fatalf("allowed %+v: %+v\n%s", req, d, e.Explain(req))
			}
		}
	})
}
