package consent

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json")

// vectors is the published test-vector file described in docs/consent.md.
// Regenerate with: go test ./consent -run TestVectors -update
type vectors struct {
	Comment      string              `json:"comment"`
	Institutions []institutionVector `json:"institutions"`
	Grants       []grantVector       `json:"grants"`
	Checks       []checkVector       `json:"checks"`
	Malformed    []malformedVector   `json:"malformed"`
	Releases     []releaseVector     `json:"releases"`
	StateFile    string              `json:"state_file"`
}

type institutionVector struct {
	Name        string                 `json:"name"`
	RootMLDSA65 string                 `json:"root_mldsa65_seed_hex"`
	RootEd25519 string                 `json:"root_ed25519_seed_hex"`
	RootID      string                 `json:"root_id"`
	NodeMLDSA65 string                 `json:"node_mldsa65_seed_hex"`
	NodeEd25519 string                 `json:"node_ed25519_seed_hex"`
	NodeID      string                 `json:"node_id"`
	NodePublic  identity.PublicKeyJSON `json:"node_public_key"`
}

type grantVector struct {
	Name          string         `json:"name"`
	Canonical     string         `json:"canonical"`
	SignedMessage string         `json:"signed_message_hex"` // SignDomain || 0x0A || canonical without sig
	GrantHash     string         `json:"grant_hash"`
	Cedar         map[string]any `json:"cedar"`
}

// checkVector is one verification: grant Grants[Grant], keys of institution Signer's
// node, the use; Result is "ok" or the refusal's code.
type checkVector struct {
	Name   string    `json:"name"`
	Grant  int       `json:"grant"`
	Signer string    `json:"signer"`
	Use    useVector `json:"use"`
	Result string    `json:"result"`
}

// malformedVector is bytes one edit away from Grants[0] that a reader must refuse.
type malformedVector struct {
	Name   string `json:"name"`
	Bytes  string `json:"bytes"`
	Result string `json:"result"`
}

type useVector struct {
	Institution    string   `json:"institution"`
	Node           string   `json:"node"`
	Principal      string   `json:"principal,omitempty"`
	From           string   `json:"from"`
	Tenant         string   `json:"tenant"`
	Action         string   `json:"action"`
	Brain          string   `json:"brain,omitempty"`
	Subjects       []string `json:"subjects,omitempty"`
	Classification string   `json:"classification"`
	Time           string   `json:"time"`
}

type releaseVector struct {
	Grant                 int    `json:"grant"`
	GrantorClearance      string `json:"grantor_clearance"`
	RequesterClearance    string `json:"requester_clearance"`
	ReceiverAccreditation string `json:"receiver_accreditation"`
	Max                   string `json:"max"`
}

func institutionVectorOf(in *institution) institutionVector {
	rm, re := seeds(in.rootSeed)
	nm, ne := seeds(in.nodeSeed)
	return institutionVector{Name: in.name,
		RootMLDSA65: hex.EncodeToString(rm[:]), RootEd25519: hex.EncodeToString(re[:]), RootID: in.rootID,
		NodeMLDSA65: hex.EncodeToString(nm[:]), NodeEd25519: hex.EncodeToString(ne[:]), NodeID: in.nodeID,
		NodePublic: in.node.Public().JSON()}
}

func useVectorOf(u Use) useVector {
	return useVector{Institution: u.Institution, Node: u.Node, Principal: u.Principal, From: u.From, Tenant: u.Tenant,
		Action: u.Action, Brain: u.Brain, Subjects: u.Subjects, Classification: u.Classification.String(), Time: oar.FormatTime(u.Time)}
}

func (v useVector) use(t testing.TB) Use {
	c, err := policy.ParseLevel(v.Classification)
	if err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339Nano, v.Time)
	if err != nil {
		t.Fatal(err)
	}
	return Use{Institution: v.Institution, Node: v.Node, Principal: v.Principal, From: v.From, Tenant: v.Tenant,
		Action: v.Action, Brain: v.Brain, Subjects: v.Subjects, Classification: c, Time: at}
}

// generateVectors builds every vector from fixed seeds, ids and times.
func generateVectors(t *testing.T) *vectors {
	fx := newFixture()
	v := &vectors{Comment: "consent-grant/1 test vectors; see docs/consent.md. Regenerate: go test ./consent -run TestVectors -update"}
	byName := map[string]*institution{}
	for _, in := range []*institution{fx.hospital, fx.practice, fx.regional, fx.third} {
		v.Institutions = append(v.Institutions, institutionVectorOf(in))
		byName[in.name] = in
	}
	addGrant := func(name string, b []byte) int {
		g := mustParse(t, b)
		signed, err := g.SignedBytes()
		if err != nil {
			t.Fatal(err)
		}
		v.Grants = append(v.Grants, grantVector{Name: name, Canonical: string(b),
			SignedMessage: hex.EncodeToString(identity.Message(SignDomain, signed)), GrantHash: Hash(b), Cedar: g.CedarAttrs()})
		return len(v.Grants) - 1
	}
	inv := addGrant("first story: a clinician at the small hospital sends a case to the regional centre's oncology brain",
		mustSign(t, fx.hospital.node, fx.invokeGrant()))
	mem := addGrant("second story: Dr Okafor at the hospital lets her practice principal read two cases",
		mustSign(t, fx.hospital.node, fx.memoryGrant()))
	// The first grant with its purpose changed after signing: well-formed, not genuine.
	altered := mustParse(t, []byte(v.Grants[inv].Canonical))
	altered.Purpose = "research: outcomes of the 2025 cohort"
	ab, err := altered.Encode()
	if err != nil {
		t.Fatal(err)
	}
	alt := addGrant("the first grant with its purpose altered after signing (refused: consent_forged)", ab)

	check := func(name string, grant int, signer string, u Use) {
		g := mustParse(t, []byte(v.Grants[grant].Canonical))
		result := "ok"
		if err := Verify(g, byName[signer].signer(), u); err != nil {
			result = string(CodeOf(err))
			if result == "" {
				t.Fatalf("vector %q: %v", name, err)
			}
		}
		v.Checks = append(v.Checks, checkVector{Name: name, Grant: grant, Signer: signer, Use: useVectorOf(u), Result: result})
	}
	with := func(u Use, f func(u *Use)) Use { f(&u); return u }
	check("the regional centre serves the first story's call", inv, "hospital", fx.invokeUse())
	check("the hospital releases to Dr Okafor's practice principal", mem, "hospital", fx.memoryUse())
	check("altered after signing", alt, "hospital", fx.invokeUse())
	check("verified with another node's keys", inv, "practice", fx.invokeUse())
	check("used at its expiry", inv, "hospital", with(fx.invokeUse(), func(u *Use) { u.Time = t0.AddDate(0, 0, 30) }))
	check("replayed by a third institution", inv, "hospital", with(fx.invokeUse(), func(u *Use) {
		u.Institution, u.Node = fx.third.rootID, fx.third.nodeID
	}))
	check("used by another practice principal", mem, "hospital", with(fx.memoryUse(), func(u *Use) { u.Principal = "dr.ng@" + fx.practice.rootID }))
	check("another brain", inv, "hospital", with(fx.invokeUse(), func(u *Use) { u.Brain = "clinical-coding" }))
	check("another subject", mem, "hospital", with(fx.memoryUse(), func(u *Use) { u.Subjects = []string{"case-9999"} }))
	check("SECRET data", inv, "hospital", with(fx.invokeUse(), func(u *Use) { u.Classification = policy.Secret }))

	first := v.Grants[inv].Canonical
	for _, m := range []struct{ name, old, new string }{
		{"a duplicate member", `"retain":false`, `"retain":false,"retain":false`},
		{"an unknown member", `"retain":false`, `"retain":false,"scope_note":"x"`},
		{"a differently cased member", `"purpose"`, `"Purpose"`},
		{"a marking in lower case", `"max_classification":"OFFICIAL-SENSITIVE"`, `"max_classification":"official-sensitive"`},
		{"whitespace", `"retain":false`, `"retain": false`},
		{"uses spelt 0", `"uses":3`, `"uses":0`},
		{"a brain for memory.read", `"action":"invoke"`, `"action":"memory.read"`},
	} {
		b := bytes.Replace([]byte(first), []byte(m.old), []byte(m.new), 1)
		if string(b) == first {
			t.Fatalf("malformed vector %q: no %q in the grant", m.name, m.old)
		}
		_, err := Parse(b)
		if CodeOf(err) != CodeMalformed {
			t.Fatalf("malformed vector %q: Parse gave %v", m.name, err)
		}
		v.Malformed = append(v.Malformed, malformedVector{Name: m.name, Bytes: string(b), Result: string(CodeMalformed)})
	}

	for _, r := range [][3]policy.Level{
		{policy.Secret, policy.Secret, policy.Secret},
		{policy.Secret, policy.Official, policy.Secret},
		{policy.Official, policy.Secret, policy.Secret},
		{policy.Secret, policy.Secret, policy.Official},
	} {
		g := mustParse(t, []byte(v.Grants[mem].Canonical))
		max, err := ReleaseMax(g, r[0], r[1], r[2])
		if err != nil {
			t.Fatal(err)
		}
		v.Releases = append(v.Releases, releaseVector{Grant: mem, GrantorClearance: r[0].String(), RequesterClearance: r[1].String(),
			ReceiverAccreditation: r[2].String(), Max: max.String()})
	}
	raw := []byte(v.Grants[inv].Canonical)
	sf, err := EncodeState(&Entry{Grant: mustParse(t, raw), Raw: raw, Used: 1})
	if err != nil {
		t.Fatal(err)
	}
	v.StateFile = string(sf)
	return v
}

func TestVectors(t *testing.T) {
	path := filepath.Join("testdata", "vectors.json")
	got, err := json.MarshalIndent(generateVectors(t), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date with the code: the format changed, or run with -update", path)
	}
}

// TestVectorsVerifyIndependently checks the published file from its own contents, the
// way another implementation would: keys from seeds, canonical bytes, the signed
// message built without this package, both signatures with the algorithms' own
// libraries, the grant hash; then that this package reaches every published result.
func TestVectorsVerifyIndependently(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	keys := map[string]identity.PublicKey{}
	roots := map[string]string{}
	for _, in := range v.Institutions {
		var m [mldsa65.SeedSize]byte
		var e [ed25519.SeedSize]byte
		hex.Decode(m[:], []byte(in.NodeMLDSA65))
		hex.Decode(e[:], []byte(in.NodeEd25519))
		pub := identity.KeyFromSeeds(identity.KindNode, m, e).Public()
		if pub.ID(identity.NodePrefix) != in.NodeID || pub.JSON() != in.NodePublic {
			t.Fatalf("%s: the node key from the seeds is not the published one", in.Name)
		}
		hex.Decode(m[:], []byte(in.RootMLDSA65))
		hex.Decode(e[:], []byte(in.RootEd25519))
		if id := identity.KeyFromSeeds(identity.KindRoot, m, e).Public().ID(identity.RootPrefix); id != in.RootID {
			t.Fatalf("%s: root id %s from the seeds, %s published", in.Name, id, in.RootID)
		}
		keys[in.Name], roots[in.Name] = pub, in.RootID
	}
	hospital := keys["hospital"]
	for i, gv := range v.Grants {
		b := []byte(gv.Canonical)
		if !jcs.IsCanonical(b) {
			t.Fatalf("grant %d is not canonical", i)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		var sig struct {
			Ed25519 string `json:"ed25519"`
			MLDSA65 string `json:"ml-dsa-65"`
		}
		json.Unmarshal(m["sig"], &sig)
		delete(m, "sig")
		without, _ := json.Marshal(m)
		without, err = jcs.Canonicalize(without)
		if err != nil {
			t.Fatal(err)
		}
		msg := append([]byte("consent-grant/1 grant\n"), without...)
		if hex.EncodeToString(msg) != gv.SignedMessage {
			t.Fatalf("grant %d: signed_message_hex is not the domain, a newline and the grant without sig", i)
		}
		sum := sha256.Sum256(append([]byte("consent-grant/1 hash\n"), b...))
		if hex.EncodeToString(sum[:]) != gv.GrantHash {
			t.Fatalf("grant %d: grant_hash mismatch", i)
		}
		ms, _ := base64.StdEncoding.DecodeString(sig.MLDSA65)
		es, _ := base64.StdEncoding.DecodeString(sig.Ed25519)
		genuine := mldsa65.Verify(hospital.MLDSA65, msg, nil, ms) && ed25519.Verify(hospital.Ed25519, msg, es)
		if wantGenuine := i < 2; genuine != wantGenuine {
			t.Fatalf("grant %d (%s): signatures verify = %v", i, gv.Name, genuine)
		}
	}
	for _, c := range v.Checks {
		g, err := Parse([]byte(v.Grants[c.Grant].Canonical))
		if err != nil {
			t.Fatal(err)
		}
		got := "ok"
		if err := Verify(g, Signer{Key: keys[c.Signer], Institution: roots[c.Signer]}, c.Use.use(t)); err != nil {
			got = string(CodeOf(err))
		}
		if got != c.Result {
			t.Errorf("check %q: %s, published %s", c.Name, got, c.Result)
		}
	}
	for _, m := range v.Malformed {
		if _, err := Parse([]byte(m.Bytes)); string(CodeOf(err)) != m.Result {
			t.Errorf("malformed %q: Parse gave %v, published %s", m.Name, err, m.Result)
		}
	}
	for _, r := range v.Releases {
		g, _ := Parse([]byte(v.Grants[r.Grant].Canonical))
		lv := func(s string) policy.Level { l, _ := policy.ParseLevel(s); return l }
		max, err := ReleaseMax(g, lv(r.GrantorClearance), lv(r.RequesterClearance), lv(r.ReceiverAccreditation))
		if err != nil || max.String() != r.Max {
			t.Errorf("release %+v: %v %v", r, max, err)
		}
	}
	if e, err := ParseState([]byte(v.StateFile)); err != nil || e.Used != 1 {
		t.Fatalf("state_file: %v", err)
	}
}
