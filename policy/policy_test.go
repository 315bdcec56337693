package policy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sios-project/sios/oar"
)

// invoke is a request by a principal of tenant "nhs" to invoke a brain in tenant "nhs",
// with data at the principal's clearance flowing to the brain's classification.
func invoke(clearance, brain Level) Request {
	return Request{
		Principal: Principal{ID: "alice", Tenant: "nhs", Clearance: clearance, Roles: []string{"clinician"}},
		Action:    ActionInvoke,
		Resource:  Resource{Type: ResourceBrain, ID: "clinical-coding", Classification: brain, Kind: "domain"},
		Context:   Context{Tenant: "nhs", DataClassification: min(clearance, brain), TargetAccreditation: brain},
	}
}

func toolCall(allowed bool) Request {
	return Request{
		Principal: Principal{ID: "alice", Tenant: "nhs", Clearance: Secret},
		Action:    ActionTool,
		Resource:  Resource{Type: ResourceTool, ID: "calculator"},
		Context:   Context{Tenant: "nhs", DataClassification: Official, TargetAccreditation: Secret, ToolAllowed: allowed},
	}
}

// peerSend is a request by a SECRET-cleared principal of tenant "nhs" to send data of
// classification data to peer "node-b" of another institution, attested in software and
// accredited at peer, with the data flowing to the peer's accreditation.
// peerSend is a request to a peer of another institution, under a grant of the tenant
// for that institution up to TOP-SECRET.
func peerSend(data, peer Level) Request {
	return Request{
		Principal: Principal{ID: "alice", Tenant: "nhs", Clearance: Secret, Roles: []string{"clinician"}},
		Action:    ActionPeerSend,
		Resource: Resource{Type: ResourcePeer, ID: "node-b", Classification: peer,
			Institution: "root_partner", Attestation: "software"},
		Context: Context{Tenant: "nhs", DataClassification: data, TargetAccreditation: peer,
			Grant: grantFor("invoke", "root_partner", "nhs", TopSecret)},
	}
}

// grantFor is context.grant of a grant of tenant to institution up to max, as
// consent.Grant.CedarAttrs gives it.
func grantFor(action, institution, tenant string, max Level) map[string]any {
	brain, subjects := "clinical-coding", []string{}
	if action == ActionMemoryRead {
		brain, subjects = "", []string{"case-1187"}
	}
	return map[string]any{
		"id": "00112233445566778899aabbccddeeff", "grantor": "alice", "tenant": tenant, "grantor_clearance": int64(Secret),
		"origin": "node_a", "origin_institution": "root_ours", "audience": institution, "audience_node": "",
		"audience_principal": "", "action": action, "brain": brain, "subjects": subjects,
		"max_classification": int64(max), "purpose": "direct care", "issued": int64(1767323045),
		"expires": int64(1767323045 + 86400), "uses": int64(0), "retain": false,
	}
}

func with(r Request, f func(*Request)) Request { f(&r); return r }

// consentGrant is a principal of tenant nhs cleared clearance making an invoke grant up
// to max.
func consentGrant(clearance, max Level) Request {
	return Request{
		Principal: Principal{ID: "alice", Tenant: "nhs", Clearance: clearance},
		Action:    ActionConsentGrant,
		Resource:  Resource{Type: ResourceConsent, ID: "00112233445566778899aabbccddeeff", Classification: max, Tenant: "nhs"},
		Context: Context{Tenant: "nhs", DataClassification: max, TargetAccreditation: max,
			Grant: grantFor("invoke", "root_partner", "nhs", max)},
	}
}

// release is a holding node's release of an nhs memory at lvl to another institution's
// principal, under grant.
func release(lvl Level, grant map[string]any) Request {
	return Request{
		Principal: Principal{ID: "dr.okafor@root_partner", Tenant: "gp@root_partner", Clearance: Secret},
		Action:    ActionMemoryRead,
		Resource:  Resource{Type: ResourceMemory, ID: "case-1187", Classification: lvl, Tenant: "nhs"},
		Context:   Context{Tenant: "nhs", DataClassification: lvl, TargetAccreditation: Secret, Grant: grant},
	}
}

type decideCase struct {
	name    string
	req     Request
	allow   bool
	reasons []string
	deflt   bool
}

func defaultCases() []decideCase {
	return []decideCase{
		{name: "OFFICIAL principal to SECRET brain is read up", req: invoke(Official, Secret),
			reasons: []string{"forbid-read-up"}},
		{name: "SECRET principal to SECRET brain", req: invoke(Secret, Secret),
			allow: true, reasons: []string{"permit-tenant-members"}},
		{name: "TOP-SECRET principal to OFFICIAL brain", req: invoke(TopSecret, Official),
			allow: true, reasons: []string{"permit-tenant-members"}},
		{name: "SECRET data to OFFICIAL brain is flow down",
			req:     with(invoke(Secret, Official), func(r *Request) { r.Context.DataClassification = Secret }),
			reasons: []string{"forbid-flow-down"}},
		{name: "read up and flow down both fire",
			req:     with(invoke(Official, Secret), func(r *Request) { r.Context.DataClassification, r.Context.TargetAccreditation = TopSecret, Secret }),
			reasons: []string{"forbid-flow-down", "forbid-read-up"}},
		{name: "cross-tenant without consent",
			req:     with(invoke(Secret, Secret), func(r *Request) { r.Context.Tenant = "mod" }),
			reasons: []string{"forbid-cross-tenant"}},
		{name: "cross-tenant with consent",
			req:   with(invoke(Secret, Secret), func(r *Request) { r.Context.Tenant, r.Context.Consent = "mod", true }),
			allow: true, reasons: []string{"permit-cross-tenant-consent"}},
		{name: "memory of another tenant without consent",
			req: with(invoke(Secret, Secret), func(r *Request) {
				r.Action, r.Resource = ActionMemoryRead, Resource{Type: ResourceMemory, ID: "m1", Classification: Official, Tenant: "mod"}
			}),
			reasons: []string{"forbid-cross-tenant", "forbid-release-without-grant"}},
		{name: "memory of own tenant",
			req: with(invoke(Secret, Secret), func(r *Request) {
				r.Action, r.Resource = ActionMemoryWrite, Resource{Type: ResourceMemory, ID: "m1", Classification: Official, Tenant: "nhs"}
			}),
			allow: true, reasons: []string{"permit-tenant-members"}},
		{name: "memory above clearance is read up",
			req: with(invoke(Official, Official), func(r *Request) {
				r.Action, r.Resource = ActionMemoryRead, Resource{Type: ResourceMemory, ID: "m1", Classification: Secret, Tenant: "nhs"}
			}),
			reasons: []string{"forbid-read-up"}},
		{name: "tool allowed by allowlist and policy", req: toolCall(true),
			allow: true, reasons: []string{"permit-brain-tools"}},
		{name: "tool not on the allowlist", req: toolCall(false),
			reasons: []string{"forbid-tool-not-allowlisted"}},
		{name: "admin with role admin",
			req: with(invoke(Secret, Secret), func(r *Request) {
				r.Action, r.Principal.Roles = ActionAdmin, []string{"clinician", "admin"}
			}),
			allow: true, reasons: []string{"permit-admins"}},
		{name: "admin without role admin is denied by default",
			req:   with(invoke(Secret, Secret), func(r *Request) { r.Action = ActionAdmin }),
			deflt: true},
		{name: "admin without roles is denied by default",
			req:   with(invoke(Secret, Secret), func(r *Request) { r.Action, r.Principal.Roles = ActionAdmin, nil }),
			deflt: true},
		{name: "invoke on a peer is denied by default",
			req:   with(invoke(Secret, Secret), func(r *Request) { r.Resource = peerSend(Secret, Secret).Resource }),
			deflt: true},
		{name: "OFFICIAL data to a peer accredited OFFICIAL", req: peerSend(Official, Official),
			allow: true, reasons: []string{"permit-peer-send"}},
		{name: "SECRET data to a peer accredited SECRET", req: peerSend(Secret, Secret),
			allow: true, reasons: []string{"permit-peer-send"}},
		{name: "SECRET data to a peer accredited OFFICIAL is flow down", req: peerSend(Secret, Official),
			reasons: []string{"forbid-flow-down"}},
		{name: "OFFICIAL principal sending to a SECRET peer is not read up",
			req:   with(peerSend(Official, Secret), func(r *Request) { r.Principal.Clearance = Official }),
			allow: true, reasons: []string{"permit-peer-send"}},
		{name: "peer.send in another tenant without consent",
			req:     with(peerSend(Official, Official), func(r *Request) { r.Context.Tenant, r.Context.Grant, r.Resource.SameInstitution = "mod", nil, true }),
			reasons: []string{"forbid-cross-tenant"}},
		{name: "peer.send in another tenant with consent is denied by default",
			req: with(peerSend(Official, Official), func(r *Request) {
				r.Context.Tenant, r.Context.Consent, r.Context.Grant, r.Resource.SameInstitution = "mod", true, nil, true
			}),
			deflt: true},
		{name: "peer.send to another institution without a grant",
			req:     with(peerSend(Official, Official), func(r *Request) { r.Context.Grant = nil }),
			reasons: []string{"forbid-cross-institution-without-grant"}},
		{name: "peer.send within the institution needs no grant",
			req:   with(peerSend(Secret, Secret), func(r *Request) { r.Context.Grant, r.Resource.SameInstitution = nil, true }),
			allow: true, reasons: []string{"permit-peer-send"}},
		{name: "peer.send under a grant for another institution",
			req:     with(peerSend(Official, Official), func(r *Request) { r.Context.Grant = grantFor("invoke", "root_other", "nhs", TopSecret) }),
			reasons: []string{"forbid-cross-institution-without-grant"}},
		{name: "peer.send above the grant's maximum",
			req:     with(peerSend(Secret, Secret), func(r *Request) { r.Context.Grant = grantFor("invoke", "root_partner", "nhs", OfficialSensitive) }),
			reasons: []string{"forbid-cross-institution-without-grant"}},
		{name: "peer.send under a memory.read grant",
			req:     with(peerSend(Official, Official), func(r *Request) { r.Context.Grant = grantFor("memory.read", "root_partner", "nhs", TopSecret) }),
			reasons: []string{"forbid-cross-institution-without-grant"}},
		{name: "granting consent up to one's clearance", req: consentGrant(Secret, Secret),
			allow: true, reasons: []string{"permit-consent-grant"}},
		{name: "granting consent above one's clearance is denied by default", req: consentGrant(OfficialSensitive, Secret),
			deflt: true},
		{name: "granting consent over another tenant's data is denied by default",
			req:   with(consentGrant(Secret, Official), func(r *Request) { r.Context.Grant = grantFor("invoke", "root_partner", "mod", Official) }),
			deflt: true},
		{name: "releasing memory to another institution's principal under a grant",
			req:   release(Official, grantFor("memory.read", "root_partner", "nhs", OfficialSensitive)),
			allow: true, reasons: []string{"permit-cross-tenant-consent"}},
		{name: "releasing memory above the grant's maximum",
			req:     release(Secret, grantFor("memory.read", "root_partner", "nhs", OfficialSensitive)),
			reasons: []string{"forbid-release-without-grant"}},
		{name: "releasing memory without a grant",
			req:     release(Official, nil),
			reasons: []string{"forbid-cross-tenant", "forbid-release-without-grant"}},
		{name: "releasing memory under an invoke grant",
			req:     release(Official, grantFor("invoke", "root_partner", "nhs", OfficialSensitive)),
			reasons: []string{"forbid-release-without-grant"}},
		{name: "peer.send to a brain is denied by default",
			req:   with(peerSend(Official, Official), func(r *Request) { r.Resource = invoke(Secret, Secret).Resource }),
			deflt: true},
	}
}

func check(t *testing.T, e *Engine, c decideCase) {
	t.Helper()
	d := e.Decide(c.req)
	if d.Allow != c.allow || !slices.Equal(d.Reasons, c.reasons) || d.Default != c.deflt || len(d.Errors) > 0 {
		t.Errorf("Decide = %+v, want allow=%v reasons=%v default=%v no errors\n%s",
			d, c.allow, c.reasons, c.deflt, e.Explain(c.req))
	}
}

func TestDecideDefaults(t *testing.T) {
	e, err := Load(t.TempDir()) // no policies directory: the embedded defaults
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range defaultCases() {
		t.Run(c.name, func(t *testing.T) { check(t, e, c) })
	}
}

// writePolicies makes dataDir/policies holding the default set and the given files.
func writePolicies(t *testing.T, files map[string]string) string {
	t.Helper()
	data := t.TempDir()
	if err := WriteDefaults(data); err != nil {
		t.Fatal(err)
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(data, Dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return data
}

const permitAll = "@id(\"operator-permit-all\")\npermit (principal, action, resource);\n"

// An operator's blanket permit adds permits, but every forbid still holds.
func TestPermitAllCannotOverrideForbids(t *testing.T) {
	e, err := Load(writePolicies(t, map[string]string{"operator.cedar": permitAll}))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range defaultCases() {
		if c.allow {
			c.reasons = append(c.reasons, "operator-permit-all")
			slices.Sort(c.reasons)
		}
		if c.deflt { // now permitted by the blanket permit
			c.allow, c.deflt, c.reasons = true, false, []string{"operator-permit-all"}
		}
		t.Run(c.name, func(t *testing.T) { check(t, e, c) })
	}
}

// A tool call needs both the brain's allowlist and a permit.
func TestToolNeedsAllowlistAndPolicy(t *testing.T) {
	forbidCalc := "@id(\"no-calculator\")\nforbid (principal, action == Sios::Action::\"tool\", resource == Sios::Tool::\"calculator\");\n"
	noToolPermit := strings.Replace(string(defaultPolicies), `@id("permit-brain-tools")`, `@id("permit-brain-tools") @disabled`, 1)
	noToolPermit = strings.Replace(noToolPermit, `action == Sios::Action::"tool",
  resource is Sios::Tool
)
when { context.tool_allowed }`, `action == Sios::Action::"tool",
  resource is Sios::Tool
)
when { false }`, 1)
	withForbid, err := Load(writePolicies(t, map[string]string{"tools.cedar": forbidCalc}))
	if err != nil {
		t.Fatal(err)
	}
	withoutPermit, err := LoadBytes("no-tool-permit.cedar", []byte(noToolPermit))
	if err != nil {
		t.Fatal(err)
	}
	defaults, _ := Load(t.TempDir())
	cases := []struct {
		name    string
		e       *Engine
		allowed bool
		want    bool
		reasons []string
	}{
		{"allowlist yes, policy yes", defaults, true, true, []string{"permit-brain-tools"}},
		{"allowlist no, policy yes", defaults, false, false, []string{"forbid-tool-not-allowlisted"}},
		{"allowlist yes, policy forbids the tool", withForbid, true, false, []string{"no-calculator"}},
		{"allowlist yes, no permit for tools", withoutPermit, true, false, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := c.e.Decide(toolCall(c.allowed))
			if d.Allow != c.want || !slices.Equal(d.Reasons, c.reasons) {
				t.Errorf("Decide = %+v, want allow=%v reasons=%v", d, c.want, c.reasons)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  []string // regexps the error must match; "DIR" is the policies directory
	}{
		{"syntax error names file, line and column",
			map[string]string{"bad.cedar": "@id(\"a\")\npermit (principal, action, resource)\nwhen { principal.x == };\n"},
			[]string{`DIR/bad\.cedar:3:\d+: `}},
		{"missing semicolon",
			map[string]string{"bad.cedar": "\n\n@id(\"a\")\npermit (principal, action, resource)"},
			[]string{`DIR/bad\.cedar:\d+:\d+: `}},
		{"number out of range names the line",
			map[string]string{"big.cedar": "@id(\"a\")\npermit (principal, action, resource)\nwhen {\n  context.n == 99999999999999999999999\n};\n"},
			[]string{`DIR/big\.cedar:4: .*out of range`}},
		{"bad escape names the line",
			map[string]string{"esc.cedar": "@id(\"a\")\npermit (principal, action, resource)\nwhen { context.s == \"\\q\" };\n"},
			[]string{`DIR/esc\.cedar:3:\d+: `}},
		{"NUL byte names the line",
			map[string]string{"nul.cedar": "@id(\"a\")\npermit (principal, action, resource)\n;\x00\n"},
			[]string{`DIR/nul\.cedar:3(:\d+)?: .*NUL`}},
		{"duplicate id names both files",
			map[string]string{"a.cedar": "@id(\"forbid-read-up\")\npermit (principal, action, resource);\n"},
			[]string{`DIR/default\.cedar:\d+:\d+: duplicate policy @id\("forbid-read-up"\)`, `DIR/a\.cedar:1:1`}},
		{"duplicate id in one file",
			map[string]string{"a.cedar": "@id(\"x\")\npermit (principal, action, resource);\n@id(\"x\")\nforbid (principal, action, resource);\n"},
			[]string{`DIR/a\.cedar:3:1: duplicate policy @id\("x"\): already defined at DIR/a\.cedar:1:1`}},
		{"policy without id",
			map[string]string{"a.cedar": "permit (principal, action, resource);\n"},
			[]string{`DIR/a\.cedar:1:1: policy has no @id`}},
		{"empty id",
			map[string]string{"a.cedar": "@id(\"\") permit (principal, action, resource);\n"},
			[]string{`DIR/a\.cedar:1:1: @id\(""\) is empty`}},
		{"file too large",
			map[string]string{"big.cedar": strings.Repeat("// padding\n", MaxPolicyFileSize/11+1)},
			[]string{`DIR/big\.cedar: larger than 1048576 bytes \(MaxPolicyFileSize\)`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := writePolicies(t, c.files)
			e, err := Load(data)
			if err == nil {
				t.Fatalf("Load succeeded (%d policies), want an error", e.Len())
			}
			dir := filepath.Join(data, Dir)
			for _, w := range c.want {
				re := regexp.MustCompile(strings.ReplaceAll(w, "DIR", regexp.QuoteMeta(dir)))
				if !re.MatchString(err.Error()) {
					t.Errorf("error %q does not match %s", err, re)
				}
			}
		})
	}
}

func TestLoadTooManyPolicies(t *testing.T) {
	var b strings.Builder
	for i := range MaxPolicies {
		fmt.Fprintf(&b, "@id(\"p%d\") forbid (principal, action, resource);\n", i)
	}
	_, err := Load(writePolicies(t, map[string]string{"many.cedar": b.String()}))
	if err == nil || !strings.Contains(err.Error(), "MaxPolicies") {
		t.Fatalf("Load = %v, want an error naming MaxPolicies", err)
	}
}

func TestLoadEmptyDirectory(t *testing.T) {
	data := t.TempDir()
	if err := os.MkdirAll(filepath.Join(data, Dir), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(data, Dir, ".#default.cedar"), []byte("junk"), 0o644) // editor lock: ignored
	if _, err := Load(data); err == nil || !strings.Contains(err.Error(), "holds no *.cedar policy files") {
		t.Fatalf("Load = %v, want an error saying the directory holds no policy files", err)
	}
}

func TestWriteDefaultsNeverOverwrites(t *testing.T) {
	data := t.TempDir()
	if err := WriteDefaults(data); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(data, Dir, DefaultFile)
	got, err := os.ReadFile(path)
	if err != nil || string(got) != string(defaultPolicies) {
		t.Fatalf("default.cedar = %q, %v; want the embedded defaults", got, err)
	}
	edited := "// edited by the operator\n" + string(defaultPolicies)
	os.WriteFile(path, []byte(edited), 0o644)
	if err := WriteDefaults(data); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != edited {
		t.Fatal("WriteDefaults overwrote an edited default.cedar")
	}
	os.Remove(path)
	if err := WriteDefaults(data); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("WriteDefaults wrote into an existing policies directory: %v", err)
	}
	if ents, _ := os.ReadDir(data); len(ents) != 1 {
		t.Errorf("data directory holds %d entries, want only %s (no leftover temporary directory)", len(ents), Dir)
	}
}

// Loading the defaults from disk decides as the embedded set does.
func TestWrittenDefaultsLoad(t *testing.T) {
	e, err := Load(writePolicies(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if e.Len() != 20 {
		t.Errorf("loaded %d policies, want 20", e.Len())
	}
	for _, c := range defaultCases() {
		t.Run(c.name, func(t *testing.T) { check(t, e, c) })
	}
}

func TestRequestsThatCannotBeJudgedAreDenied(t *testing.T) {
	e, _ := Load(t.TempDir())
	ok := invoke(Secret, Secret)
	cases := []struct {
		name string
		req  Request
		want string
	}{
		{"zero clearance", with(ok, func(r *Request) { r.Principal.Clearance = 0 }), "clearance Level(0)"},
		{"no principal tenant", with(ok, func(r *Request) { r.Principal.Tenant = "" }), "has no tenant"},
		{"no context tenant", with(ok, func(r *Request) { r.Context.Tenant = "" }), "context has no tenant"},
		{"zero data classification", with(ok, func(r *Request) { r.Context.DataClassification = 0 }), "data classification"},
		{"zero target accreditation", with(ok, func(r *Request) { r.Context.TargetAccreditation = 0 }), "target accreditation"},
		{"brain without classification", with(ok, func(r *Request) { r.Resource.Classification = 0 }), "Brain \"clinical-coding\""},
		{"unknown action", with(ok, func(r *Request) { r.Action = "invokee" }), `unknown action "invokee"`},
		{"unknown resource type", with(ok, func(r *Request) { r.Resource.Type = "brain" }), `unknown resource type "brain"`},
		{"level above TOP-SECRET", with(ok, func(r *Request) { r.Principal.Clearance = 5 }), "Level(5)"},
		{"peer without institution", with(peerSend(Official, Official), func(r *Request) { r.Resource.Institution = "" }),
			`peer "node-b" has no institution`},
		{"peer without attestation", with(peerSend(Official, Official), func(r *Request) { r.Resource.Attestation = "" }),
			`peer "node-b" has no attestation`},
		{"peer without accreditation", with(peerSend(Official, Official), func(r *Request) { r.Resource.Classification = 0 }),
			`Peer "node-b": classification Level(0)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := e.Decide(c.req)
			if d.Allow || d.Default || len(d.Reasons) > 0 || len(d.Errors) != 1 || !strings.Contains(d.Errors[0], c.want) {
				t.Errorf("Decide = %+v, want a deny with one error containing %q", d, c.want)
			}
		})
	}
}

// A forbid that fails to evaluate denies: Cedar alone would skip it.
func TestBrokenForbidDenies(t *testing.T) {
	broken := "@id(\"forbid-broken\")\nforbid (principal, action, resource) when { context.no_such_key == 1 };\n"
	e, err := Load(writePolicies(t, map[string]string{"broken.cedar": broken}))
	if err != nil {
		t.Fatal(err)
	}
	d := e.Decide(invoke(Secret, Secret))
	if d.Allow || !slices.Equal(d.Reasons, []string{"forbid-broken"}) || len(d.Errors) != 1 ||
		!strings.Contains(d.Errors[0], "broken.cedar:1:1") {
		t.Errorf("Decide = %+v, want deny by forbid-broken with its error", d)
	}
	brokenPermit := "@id(\"permit-broken\")\npermit (principal, action, resource) when { context.no_such_key == 1 };\n"
	e, _ = Load(writePolicies(t, map[string]string{"broken.cedar": brokenPermit}))
	d = e.Decide(invoke(Secret, Secret))
	if !d.Allow || !slices.Equal(d.Reasons, []string{"permit-tenant-members"}) || len(d.Errors) != 1 {
		t.Errorf("Decide = %+v, want allow by permit-tenant-members with permit-broken's error", d)
	}
}

func TestExplain(t *testing.T) {
	e, _ := Load(t.TempDir())
	cases := []struct {
		name string
		req  Request
		want []string
	}{
		{"read up", invoke(Official, Secret), []string{
			"decision: deny (forbidden by forbid-read-up)",
			`principal "alice" (tenant "nhs", clearance OFFICIAL, roles [clinician]) invoke Brain "clinical-coding" (classification SECRET`,
			"forbid-read-up ((built-in) default.cedar:",
			"no read up:",
			"permits that matched but were overridden:\n  permit-tenant-members",
		}},
		{"allow", invoke(Secret, Secret), []string{"decision: allow (permitted by permit-tenant-members)", "permitted by:\n  permit-tenant-members"}},
		{"default deny", with(invoke(Secret, Secret), func(r *Request) { r.Action = ActionAdmin }),
			[]string{"decision: deny (by default: no permit matched)"}},
		{"refused", with(invoke(Secret, Secret), func(r *Request) { r.Context.Tenant = "" }),
			[]string{"could not be judged", "request refused: context has no tenant"}},
		{"peer flow down", peerSend(Secret, Official), []string{
			"decision: deny (forbidden by forbid-flow-down)",
			`peer.send Peer "node-b" (accreditation OFFICIAL, institution "root_partner", attestation "software", same institution no)`,
			"context: tenant \"nhs\", data SECRET flowing to OFFICIAL, consent yes",
			"permits that matched but were overridden:\n  permit-peer-send",
		}},
		{"a grant", with(peerSend(Secret, Secret), func(r *Request) { r.Context.Grant = grantFor("invoke", "root_partner", "nhs", OfficialSensitive) }), []string{
			"decision: deny (forbidden by forbid-cross-institution-without-grant)",
			"context.grant (a verified consent grant covers the request):",
			`  audience: "root_partner"`,
			"  max_classification: 2 (OFFICIAL-SENSITIVE)",
			`  subjects: []`,
			"  expires: 1767409445 (2026-01-03T03:04:05Z)",
			"  retain: false",
		}},
		{"granting", consentGrant(Secret, Secret), []string{
			"decision: allow (permitted by permit-consent-grant)",
			`consent.grant Consent "00112233445566778899aabbccddeeff" (maximum SECRET, tenant "nhs")`,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := e.Explain(c.req)
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("Explain lacks %q:\n%s", w, got)
				}
			}
		})
	}
}

func TestLevels(t *testing.T) {
	cases := []struct {
		in   string
		want Level
	}{
		{"OFFICIAL", Official}, {"OFFICIAL-SENSITIVE", OfficialSensitive}, {"SECRET", Secret},
		{"TOP-SECRET", TopSecret}, {"top_secret", TopSecret}, {" official-sensitive ", OfficialSensitive},
	}
	for _, c := range cases {
		if got, err := ParseLevel(c.in); got != c.want || err != nil {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	_, err := ParseLevel("RESTRICTED")
	if err == nil || !strings.Contains(err.Error(), "OFFICIAL, OFFICIAL-SENSITIVE, SECRET, TOP-SECRET") {
		t.Errorf("ParseLevel(RESTRICTED) error = %v, want one listing the valid values", err)
	}
	if !(Official < OfficialSensitive && OfficialSensitive < Secret && Secret < TopSecret) || Official != 1 || TopSecret != 4 {
		t.Error("levels are not ranked 1..4 in order")
	}
	// The audit record spells classifications the same way.
	var names []string
	for _, l := range Levels() {
		names = append(names, l.String())
	}
	if !slices.Equal(names, oar.Classifications) {
		t.Errorf("Levels = %v, oar.Classifications = %v", names, oar.Classifications)
	}
}

// Decide is safe for concurrent use and gives the same answer every time.
func TestDecideConcurrentDeterministic(t *testing.T) {
	e, _ := Load(writePolicies(t, map[string]string{"operator.cedar": permitAll}))
	cases := defaultCases()
	want := make([]Decision, len(cases))
	for i, c := range cases {
		want[i] = e.Decide(c.req)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for n := range 200 {
				i := (g + n) % len(cases)
				if d := e.Decide(cases[i].req); !equalDecision(d, want[i]) {
					t.Errorf("%s: Decide = %+v, earlier %+v", cases[i].name, d, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
}

func equalDecision(a, b Decision) bool {
	return a.Allow == b.Allow && a.Default == b.Default && slices.Equal(a.Reasons, b.Reasons) && slices.Equal(a.Errors, b.Errors)
}

// The record memo never makes two requests share attributes they do not share.
func TestRecordCache(t *testing.T) {
	e, _ := Load(t.TempDir())
	admin := with(invoke(Secret, Secret), func(r *Request) { r.Action = ActionAdmin })
	cases := []struct {
		name  string
		roles []string
		allow bool
	}{
		{"admin", []string{"x", "admin"}, true},
		{"roles run together", []string{"xadmin"}, false},
		{"separator inside a role", []string{"x\x00admin"}, false},
		{"length prefix inside a role", []string{"\x01x\x05admin"}, false},
		{"admin again", []string{"x", "admin"}, true},
		{"empty role", []string{""}, false},
		{"no roles", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := with(admin, func(r *Request) { r.Principal.Roles = c.roles })
			if d := e.Decide(r); d.Allow != c.allow {
				t.Errorf("roles %q: Decide = %+v, want allow=%v", c.roles, d, c.allow)
			}
		})
	}
	// Past MaxCachedRecords the cache starts over, and decisions stay right.
	for i := range MaxCachedRecords + 10 {
		tenant := fmt.Sprintf("t%d", i)
		r := with(invoke(Official, Secret), func(r *Request) { r.Principal.Tenant, r.Context.Tenant = tenant, tenant })
		if d := e.Decide(r); d.Allow || !slices.Equal(d.Reasons, []string{"forbid-read-up"}) {
			t.Fatalf("tenant %s: Decide = %+v, want deny by forbid-read-up", tenant, d)
		}
		r = with(invoke(Secret, Secret), func(r *Request) { r.Principal.Tenant, r.Context.Tenant = tenant, tenant })
		if d := e.Decide(r); !d.Allow {
			t.Fatalf("tenant %s: Decide = %+v, want allow", tenant, d)
		}
	}
	if n := len(e.records.contexts.m); n == 0 || n > MaxCachedRecords {
		t.Errorf("context cache holds %d records, want 1..MaxCachedRecords (%d)", n, MaxCachedRecords)
	}
}

// docs/policy.md quotes the default policies, and the peer policies tested here, verbatim.
func TestDocQuotesDefaults(t *testing.T) {
	doc, err := os.ReadFile("../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```cedar\n"+string(defaultPolicies)+"```") {
		t.Error("docs/policy.md does not quote policy/default.cedar verbatim: copy it into the doc")
	}
	if !strings.Contains(string(doc), "```cedar\n"+peerPolicies+"```") {
		t.Error("docs/policy.md does not quote peerPolicies (policy_test.go) verbatim: copy it into the doc")
	}
}

// peerPolicies is the operator's peer policy that docs/policy.md shows: which peers may
// receive which classifications of work.
const peerPolicies = `// peers.cedar: which peers may receive which classifications of work.

@id("forbid-peer-outside-institution-above-official")
@description("nothing above OFFICIAL leaves this institution")
forbid (principal, action == Sios::Action::"peer.send", resource is Sios::Peer)
when { context.data_classification > 1 && !resource.same_institution };

@id("forbid-peer-software-attestation-secret")
@description("SECRET and above go only to peers whose identity is held in a TPM")
forbid (principal, action == Sios::Action::"peer.send", resource is Sios::Peer)
when { context.data_classification >= 3 && resource.attestation == "software" };

@id("forbid-peer-posture-below-data")
@description("a peer's own published accreditation must reach the data's classification")
forbid (principal, action == Sios::Action::"peer.send", resource is Sios::Peer)
when { resource.accreditation < context.data_classification };

@id("forbid-peer-mod-outside-partner")
@description("the mod tenant's work goes only to this institution and its partner")
forbid (principal, action == Sios::Action::"peer.send", resource is Sios::Peer)
when {
  context.tenant == "mod" && !resource.same_institution &&
  resource.institution != "root_partner" // the partner's root id, as 'sios trust list' shows it
};
`

// An operator's peer policies take effect beside the defaults, name themselves in the
// decision, and leave every other action alone.
func TestPeerSendOperatorPolicies(t *testing.T) {
	e, err := Load(writePolicies(t, map[string]string{"peers.cedar": peerPolicies}))
	if err != nil {
		t.Fatal(err)
	}
	ours := func(r *Request) { r.Resource.SameInstitution = true }
	tpm := func(r *Request) { r.Resource.Attestation = "tpm" }
	both := func(r *Request) { ours(r); tpm(r) }
	mod := func(r *Request) {
		r.Principal.Tenant, r.Context.Tenant = "mod", "mod"
		r.Context.Grant = grantFor("invoke", r.Resource.Institution, "mod", TopSecret)
	}
	cases := []decideCase{
		{name: "OFFICIAL to another institution's software peer", req: peerSend(Official, Official),
			allow: true, reasons: []string{"permit-peer-send"}},
		{name: "OFFICIAL-SENSITIVE to another institution",
			req:     with(peerSend(OfficialSensitive, Secret), tpm),
			reasons: []string{"forbid-peer-outside-institution-above-official"}},
		{name: "OFFICIAL-SENSITIVE within the institution",
			req:   with(peerSend(OfficialSensitive, Secret), ours),
			allow: true, reasons: []string{"permit-peer-send"}},
		{name: "SECRET to a software-attested peer of the institution",
			req:     with(peerSend(Secret, Secret), ours),
			reasons: []string{"forbid-peer-software-attestation-secret"}},
		{name: "SECRET to a TPM-attested peer of the institution",
			req:   with(peerSend(Secret, Secret), both),
			allow: true, reasons: []string{"permit-peer-send"}},
		{name: "TOP-SECRET to a software-attested peer of another institution",
			req:     peerSend(TopSecret, TopSecret),
			reasons: []string{"forbid-peer-outside-institution-above-official", "forbid-peer-software-attestation-secret"}},
		{name: "flow down is forbidden by the default and the posture rule",
			req:     with(peerSend(Secret, Official), both),
			reasons: []string{"forbid-flow-down", "forbid-peer-posture-below-data"}},
		{name: "posture rule holds when the context overstates the target",
			req:     with(peerSend(Secret, Official), func(r *Request) { both(r); r.Context.TargetAccreditation = Secret }),
			reasons: []string{"forbid-peer-posture-below-data"}},
		{name: "mod tenant to the partner", req: with(peerSend(Official, Official), mod),
			allow: true, reasons: []string{"permit-peer-send"}},
		{name: "mod tenant to another institution",
			req:     with(peerSend(Official, Official), func(r *Request) { r.Resource.Institution = "root_other"; mod(r) }),
			reasons: []string{"forbid-peer-mod-outside-partner"}},
		{name: "invoke is untouched", req: invoke(Secret, Secret),
			allow: true, reasons: []string{"permit-tenant-members"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { check(t, e, c) })
	}
}

// The record memo keeps apart peers that differ in one attribute alone: were a field
// missing from resourceKey, the denied request would be judged on the allowed one's
// cached record, and allowed.
func TestPeerRecordCache(t *testing.T) {
	data := writePolicies(t, map[string]string{"peers.cedar": peerPolicies})
	mod := func(r *Request) {
		r.Principal.Tenant, r.Context.Tenant = "mod", "mod"
		r.Context.Grant = grantFor("invoke", r.Resource.Institution, "mod", TopSecret)
	}
	pairs := []struct {
		name            string
		allowed, denied Request
	}{
		{"institution",
			with(peerSend(Official, Official), mod),
			with(peerSend(Official, Official), func(r *Request) { r.Resource.Institution = "root_other"; mod(r) })},
		{"attestation",
			with(peerSend(Secret, Secret), func(r *Request) { r.Resource.SameInstitution, r.Resource.Attestation = true, "tpm" }),
			with(peerSend(Secret, Secret), func(r *Request) { r.Resource.SameInstitution = true })},
		{"same institution",
			with(peerSend(OfficialSensitive, Secret), func(r *Request) { r.Resource.SameInstitution = true }),
			peerSend(OfficialSensitive, Secret)},
	}
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			e, err := Load(data) // an empty memo: the allowed request's record is cached first
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range []Request{p.allowed, p.denied, p.allowed, p.denied} {
				if d := e.Decide(r); d.Allow != (i%2 == 0) {
					t.Fatalf("request %d (%+v): Decide = %+v, want allow=%v", i, r.Resource, d, i%2 == 0)
				}
			}
		})
	}
}

// A context with a grant is never cached: two requests that differ only in their grant
// are judged each on its own, in either order, and the cache holds only contexts
// without one. A grant value of a type Cedar is not given here refuses the request.
func TestGrantContexts(t *testing.T) {
	e, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	covered := peerSend(Official, Official)
	other := with(peerSend(Official, Official), func(r *Request) { r.Context.Grant = grantFor("invoke", "root_other", "nhs", TopSecret) })
	none := with(peerSend(Official, Official), func(r *Request) { r.Context.Grant = nil })
	for i, r := range []Request{covered, other, none, covered, none, other} {
		want := r.Context.Grant != nil && r.Context.Grant["audience"] == "root_partner"
		if d := e.Decide(r); d.Allow != want {
			t.Fatalf("request %d: Decide = %+v, want allow=%v", i, d, want)
		}
	}
	if n := len(e.records.contexts.m); n != 1 {
		t.Fatalf("the context cache holds %d records, want only the one without a grant", n)
	}
	bad := with(covered, func(r *Request) { r.Context.Grant = map[string]any{"uses": 3} })
	if d := e.Decide(bad); d.Allow || len(d.Errors) == 0 || !strings.Contains(d.Errors[0], "context.grant.uses") {
		t.Fatalf("an int grant value: %+v", d)
	}
	// A grant implies consent, as context.consent has always meant.
	if !strings.Contains(e.Explain(covered), "consent yes") {
		t.Fatal("a request with a grant is explained without consent")
	}
}

// The scale is written down once, in the audit format: the named Levels are its ranks.
func TestLevelsAreTheAuditFormatsClassifications(t *testing.T) {
	named := map[Level]string{Official: "OFFICIAL", OfficialSensitive: "OFFICIAL-SENSITIVE", Secret: "SECRET", TopSecret: "TOP-SECRET"}
	if len(Levels()) != len(oar.Classifications) || len(named) != len(oar.Classifications) {
		t.Fatalf("%d levels, %d classifications", len(Levels()), len(oar.Classifications))
	}
	for l, name := range named {
		if l.String() != name || oar.ClassificationRank(name) != int(l)-1 {
			t.Fatalf("%d is %q; the audit format ranks %q at %d", l, l.String(), name, oar.ClassificationRank(name))
		}
	}
	if Level(len(oar.Classifications) + 1).Valid() {
		t.Fatal("a level beyond the scale is valid")
	}
}

// Deciding against the policies indexed by action (Engine.byAction) gives every request
// the decision, reasons, errors and explanation the whole set gives: the requests of
// these tests and of the benchmark fleet, each under every action and with the
// administrator role too.
// everyActionRequests is the requests of the policy tests and 512 of the benchmark
// fleet, each under every action, with and without the admin role.
func everyActionRequests() []Request {
	var reqs []Request
	for _, a := range Levels() {
		for _, b := range Levels() {
			reqs = append(reqs, invoke(a, b), peerSend(a, b), consentGrant(a, b), release(a, grantFor(ActionMemoryRead, "root_partner", "nhs", b)))
		}
	}
	reqs = append(reqs, toolCall(true), toolCall(false))
	_, _, fleet := benchFleet()
	reqs = append(reqs, fleet[:512]...)
	var actions []string
	for a := range actionUIDs {
		actions = append(actions, a)
	}
	actions = append(actions, roleActions...)
	var out []Request
	for _, r := range reqs {
		for _, a := range actions {
			for _, admin := range []bool{false, true} {
				q := with(r, func(q *Request) { q.Action = a })
				if admin {
					q.Principal.Roles = append(slices.Clone(q.Principal.Roles), "admin")
				}
				out = append(out, q)
			}
		}
	}
	return out
}

func TestPoliciesByActionDecideAlike(t *testing.T) {
	e, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	whole, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	whole.byAction = nil
	checked, allowed := 0, 0
	for _, q := range everyActionRequests() {
		got, gotWhy := e.decide(&q, true)
		want, wantWhy := whole.decide(&q, true)
		if !reflect.DeepEqual(got, want) || !slices.Equal(gotWhy, wantWhy) {
			t.Fatalf("%+v:\nby action: %+v %v\nwhole set: %+v %v", q, got, gotWhy, want, wantWhy)
		}
		if q.check() == nil {
			checked++
		}
		if got.Allow {
			allowed++
		}
	}
	if checked < 1000 || allowed < 100 {
		t.Fatalf("only %d requests reached the policies, %d allowed", checked, allowed)
	}
	if len(e.byAction) != len(actionUIDs)+len(roleActions) {
		t.Fatalf("%d actions indexed", len(e.byAction))
	}
}
