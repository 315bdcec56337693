package consent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
)

func TestSignParseRoundTrip(t *testing.T) {
	fx := newFixture()
	for _, g := range []Grant{fx.invokeGrant(), fx.memoryGrant()} {
		b := mustSign(t, fx.hospital.node, g)
		if !jcs.IsCanonical(b) {
			t.Fatalf("Sign made a grant that is not canonical: %s", b)
		}
		p := mustParse(t, b)
		again, err := p.Encode()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("Parse then Encode changed the grant (%v):\n%s\n%s", err, b, again)
		}
		if p.V != Version || p.ID != g.ID || !p.IssuedAt().Equal(t0) || p.ExpiresAt().Sub(p.IssuedAt()) <= 0 {
			t.Fatalf("parsed grant %+v does not match what was signed", p)
		}
		if err := Verify(p, fx.hospital.signer(), useFor(fx, p)); err != nil {
			t.Fatalf("a fresh grant does not verify: %v", err)
		}
		if h := Hash(b); len(h) != 64 || h == Hash(append(b[:len(b):len(b)], ' ')) {
			t.Fatalf("Hash %q is not a SHA-256 of the exact bytes", h)
		}
	}
}

func useFor(fx *fixture, g *Grant) Use {
	if g.Scope.Action == ActionInvoke {
		return fx.invokeUse()
	}
	return fx.memoryUse()
}

func TestSignFillsVersionAndID(t *testing.T) {
	fx := newFixture()
	g := fx.invokeGrant()
	g.ID, g.V = "", "something else"
	a, b := mustParse(t, mustSign(t, fx.hospital.node, g)), mustParse(t, mustSign(t, fx.hospital.node, g))
	if a.V != Version || !isHexID(a.ID) || a.ID == b.ID {
		t.Fatalf("Sign gave ids %q and %q, v %q: want fresh random ids and %q", a.ID, b.ID, a.V, Version)
	}
}

func TestSignRefusesAnotherNodesGrant(t *testing.T) {
	fx := newFixture()
	_, err := Sign(fx.practice.node, fx.invokeGrant())
	if err == nil || !strings.Contains(err.Error(), "signing key") {
		t.Fatalf("a node signed a grant naming another node as origin: %v", err)
	}
}

// unsigned encodes g with a signature of the right shape, skipping every check, so that
// the reading side can be tested on members the writing side would refuse.
func unsigned(t testing.TB, g Grant) []byte {
	t.Helper()
	g.V = Version
	g.Sig = &identity.Signature{MLDSA65: make([]byte, 3309), Ed25519: make([]byte, 64)}
	b, err := jcs.Marshal(&g)
	if err != nil { // text canonical JSON cannot hold: encoding/json's bytes, for Parse to refuse
		b, err = json.Marshal(&g)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMemberRules: every member rule refuses on both sides: Sign (writing) and Parse
// (reading) refuse the same grants.
func TestMemberRules(t *testing.T) {
	fx := newFixture()
	long := func(n int, c string) string { return strings.Repeat(c, n) }
	cases := []struct {
		name   string
		mutate func(g *Grant)
	}{
		{"id not hex", func(g *Grant) { g.ID = "0F1E2D3C4B5A69788796A5B4C3D2E1F0" }},
		{"id short", func(g *Grant) { g.ID = "0f1e" }},
		{"grantor principal empty", func(g *Grant) { g.Grantor.Principal = "" }},
		{"grantor principal with a space", func(g *Grant) { g.Grantor.Principal = "dr adeyemi" }},
		{"grantor principal too long", func(g *Grant) { g.Grantor.Principal = long(MaxIDLen+1, "a") }},
		{"grantor tenant starts with a dot", func(g *Grant) { g.Grantor.Tenant = ".oncology" }},
		{"origin node is a root id", func(g *Grant) { g.Origin.Node = fx.hospital.rootID }},
		{"origin institution is a node id", func(g *Grant) { g.Origin.Institution = fx.hospital.nodeID }},
		{"audience institution missing", func(g *Grant) { g.Audience.Institution = "" }},
		{"audience institution upper case", func(g *Grant) { g.Audience.Institution = strings.ToUpper(fx.regional.rootID) }},
		{"audience node bad", func(g *Grant) { g.Audience.Node = "node_!" }},
		{"audience principal without root", func(g *Grant) { g.Audience.Principal = "dr.okafor" }},
		{"audience principal of another institution", func(g *Grant) { g.Audience.Principal = "dr.okafor@" + fx.third.rootID }},
		{"unknown action", func(g *Grant) { g.Scope.Action = "memory.write" }},
		{"invoke without brain", func(g *Grant) { g.Scope.Brain = "" }},
		{"invoke with a bad brain id", func(g *Grant) { g.Scope.Brain = "Oncology" }},
		{"invoke with subjects", func(g *Grant) { g.Scope.Subjects = []string{"case-1"} }},
		{"memory.read with a brain", func(g *Grant) { g.Scope.Action, g.Scope.Subjects = ActionMemoryRead, []string{"case-1"} }},
		{"memory.read without subjects", func(g *Grant) { g.Scope.Action, g.Scope.Brain = ActionMemoryRead, "" }},
		{"subjects unsorted", func(g *Grant) {
			g.Scope.Action, g.Scope.Brain, g.Scope.Subjects = ActionMemoryRead, "", []string{"b", "a"}
		}},
		{"subjects repeated", func(g *Grant) {
			g.Scope.Action, g.Scope.Brain, g.Scope.Subjects = ActionMemoryRead, "", []string{"a", "a"}
		}},
		{"too many subjects", func(g *Grant) {
			g.Scope.Action, g.Scope.Brain, g.Scope.Subjects = ActionMemoryRead, "", nil
			for i := 0; i <= MaxSubjects; i++ {
				g.Scope.Subjects = append(g.Scope.Subjects, fmt.Sprintf("case-%03d", i))
			}
		}},
		{"subject too long", func(g *Grant) {
			g.Scope.Action, g.Scope.Brain, g.Scope.Subjects = ActionMemoryRead, "", []string{long(MaxSubjectLen+1, "s")}
		}},
		{"subject with a control character", func(g *Grant) {
			g.Scope.Action, g.Scope.Brain, g.Scope.Subjects = ActionMemoryRead, "", []string{"case\n1"}
		}},
		{"purpose empty", func(g *Grant) { g.Purpose = "" }},
		{"purpose too long", func(g *Grant) { g.Purpose = long(MaxPurposeLen+1, "p") }},
		{"purpose with a noncharacter", func(g *Grant) { g.Purpose = "care\uFFFE" }},
		{"issued with an offset", func(g *Grant) { g.Issued = "2026-03-02T10:00:00+01:00" }},
		{"issued not a time", func(g *Grant) { g.Issued = "yesterday" }},
		{"expires before issued", func(g *Grant) { g.Expires = "2026-03-01T09:00:00Z" }},
		{"expires equals issued", func(g *Grant) { g.Expires = g.Issued }},
		{"valid longer than a year", func(g *Grant) {
			g.Expires = oar.FormatTime(t0.Add(MaxGrantLifetime + time.Second))
		}},
		{"negative uses", func(g *Grant) { g.Uses = -1 }},
		{"too many uses", func(g *Grant) { g.Uses = MaxUses + 1 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := fx.invokeGrant()
			tc.mutate(&g)
			if _, err := Sign(fx.hospital.node, g); err == nil {
				t.Fatal("Sign accepted it")
			}
			b := unsigned(t, g)
			_, err := Parse(b)
			wantCode(t, err, CodeMalformed)
		})
	}
	// The edges themselves are accepted.
	g := fx.invokeGrant()
	g.Expires, g.Uses, g.Purpose = oar.FormatTime(t0.Add(MaxGrantLifetime)), MaxUses, long(MaxPurposeLen, "p")
	g.Grantor.Principal = "a" + long(MaxIDLen-1, "@")
	mustParse(t, mustSign(t, fx.hospital.node, g))
}

// TestParseRefusesOtherBytes: the strict decoding of the format, byte by byte.
func TestParseRefusesOtherBytes(t *testing.T) {
	fx := newFixture()
	good := mustSign(t, fx.hospital.node, fx.invokeGrant())
	replace := func(old, new string) []byte {
		if !bytes.Contains(good, []byte(old)) {
			t.Fatalf("vector lacks %q", old)
		}
		return bytes.Replace(good, []byte(old), []byte(new), 1)
	}
	cases := map[string][]byte{
		"empty":                    nil,
		"not an object":            []byte(`[]`),
		"whitespace":               replace(`"retain":false`, `"retain": false`),
		"trailing newline":         append(append([]byte(nil), good...), '\n'),
		"unknown member":           replace(`"retain":false`, `"retain":false,"scope2":1`),
		"duplicate member":         replace(`"retain":false`, `"retain":false,"retain":false`),
		"differently cased member": replace(`"purpose"`, `"Purpose"`),
		"missing member":           replace(`"retain":false,`, ``),
		"null member":              replace(`"retain":false`, `"retain":null`),
		"uses zero spelt out":      replace(`"uses":3`, `"uses":0`),
		"uses as a float":          replace(`"uses":3`, `"uses":3.5`),
		"lower-case marking":       replace(`"max_classification":"OFFICIAL-SENSITIVE"`, `"max_classification":"official-sensitive"`),
		"unknown marking":          replace(`"max_classification":"OFFICIAL-SENSITIVE"`, `"max_classification":"RESTRICTED"`),
		"other version":            replace(`"v":"consent-grant/1"`, `"v":"consent-grant/2"`),
		"oversized":                append(replace(`"retain":false`, `"retain":false,"x":"`+strings.Repeat("x", MaxGrantSize)+`"`), '}'),
	}
	noSig := fx.invokeGrant()
	noSig.V = Version
	cases["without sig"], _ = jcs.Marshal(&noSig)
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(b)
			wantCode(t, err, CodeMalformed)
		})
	}
}

// TestWorstCaseGrantFits: a grant with every member at its cap, its free text chosen to
// need the most bytes in canonical JSON, is signed and read back within MaxGrantSize.
func TestWorstCaseGrantFits(t *testing.T) {
	fx := newFixture()
	worstText := func(n int, i int) string { // '"' escapes to two bytes, the most any allowed character costs per byte
		return fmt.Sprintf("%03d", i) + strings.Repeat(`"`, n-3)
	}
	g := fx.memoryGrant()
	g.Grantor.Principal, g.Grantor.Tenant = "p"+strings.Repeat("_", MaxIDLen-1), "t"+strings.Repeat("_", MaxIDLen-1)
	g.Audience.Node = fx.practice.nodeID
	g.Audience.Principal = "d" + strings.Repeat("_", MaxIDLen-1) + "@" + fx.practice.rootID
	g.Scope.Subjects = nil
	for i := 0; i < MaxSubjects; i++ {
		g.Scope.Subjects = append(g.Scope.Subjects, worstText(MaxSubjectLen, i))
	}
	g.Purpose = strings.Repeat(`\`, MaxPurposeLen)
	g.Uses = MaxUses
	g.Issued, g.Expires = "2026-03-02T09:00:00.123456789Z", "2027-03-02T09:00:00.123456788Z"
	b, err := Sign(fx.hospital.node, g)
	if err != nil {
		t.Fatalf("the largest grant the member caps allow does not fit: %v", err)
	}
	t.Logf("largest grant: %d bytes of %d (MaxGrantSize)", len(b), MaxGrantSize)
	mustParse(t, b)
	e := &Entry{Grant: mustParse(t, b), Raw: b, Used: MaxUseCount, Revoked: t0}
	if _, err := EncodeState(e); err != nil {
		t.Fatalf("the largest store file does not fit: %v", err)
	}
}

func TestSplitPrincipal(t *testing.T) {
	fx := newFixture()
	r := fx.practice.rootID
	for _, tc := range []struct {
		in       string
		id, root string
		ok       bool
	}{
		{"dr.okafor@" + r, "dr.okafor", r, true},
		{"okafor@example.org@" + r, "okafor@example.org", r, true},
		{"dr.okafor", "", "", false},
		{"@" + r, "", r, false},
		{"dr.okafor@" + fx.practice.nodeID, "dr.okafor", fx.practice.nodeID, false},
	} {
		id, root, ok := SplitPrincipal(tc.in)
		if id != tc.id || root != tc.root || ok != tc.ok {
			t.Errorf("SplitPrincipal(%q) = %q, %q, %v; want %q, %q, %v", tc.in, id, root, ok, tc.id, tc.root, tc.ok)
		}
	}
}

// TestGrantJSONMembers pins the member names: they are the published format.
func TestGrantJSONMembers(t *testing.T) {
	fx := newFixture()
	var m map[string]any
	if err := json.Unmarshal(mustSign(t, fx.hospital.node, fx.memoryGrant()), &m); err != nil {
		t.Fatal(err)
	}
	var got []string
	for k, v := range m {
		got = append(got, k)
		if sub, ok := v.(map[string]any); ok {
			for k2 := range sub {
				got = append(got, k+"."+k2)
			}
		}
	}
	want := "audience audience.institution audience.principal expires grantor grantor.clearance grantor.principal grantor.tenant id issued origin origin.institution origin.node purpose retain scope scope.action scope.max_classification scope.subjects sig sig.ed25519 sig.ml-dsa-65 v"
	slices.Sort(got)
	if s := strings.Join(got, " "); s != want {
		t.Fatalf("members:\n got %s\nwant %s", s, want)
	}
}
