package fleet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/identity/tpm"
	"github.com/sios-project/sios/internal/swtpmtest"
)

func TestTrustStore(t *testing.T) {
	a, err := identity.Init(t.TempDir(), "a", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, err := identity.Init(t.TempDir(), "b", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	trust, list, err := LoadTrust(dir, a.Node.Cert)
	if err != nil || len(list) != 1 || !list[0].Own || !trust.Has(a.Node.Cert.RootID, a.Node.Root) {
		t.Fatalf("own root: %v %v", list, err)
	}
	exported, _ := json.Marshal(ExportRoot(b.Node.Cert))
	if _, err := AddRoot(dir, exported); err != nil {
		t.Fatal(err)
	}
	if _, err := AddRoot(dir, exported); err != nil {
		t.Fatalf("pinning twice: %v", err)
	}
	trust, list, err = LoadTrust(dir, a.Node.Cert)
	if err != nil || len(list) != 2 || !trust.Has(b.Node.Cert.RootID, b.Node.Root) {
		t.Fatalf("after add: %v %v", list, err)
	}
	// A root file whose id does not match its keys is refused.
	var forged RootFile
	json.Unmarshal(exported, &forged)
	forged.PublicKeyJSON = ExportRoot(a.Node.Cert).PublicKeyJSON
	bad, _ := json.Marshal(forged)
	if _, err := AddRoot(dir, bad); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("forged root: %v", err)
	}
	// A tampered file in the store stops loading, naming the file.
	p := filepath.Join(rootsDir(dir), b.Node.Cert.RootID+".json")
	os.WriteFile(p, bad, 0o644)
	if _, _, err := LoadTrust(dir, a.Node.Cert); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("tampered store: %v", err)
	}
}

func TestTrustStoreEKs(t *testing.T) {
	a, err := identity.Init(t.TempDir(), "a", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, err := identity.Init(t.TempDir(), "b", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rootA, rootB := a.Node.Cert.RootID, b.Node.Cert.RootID
	ek1, ek2 := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
	for _, ek := range []string{ek1, ek2, ek1} { // pinning twice changes nothing
		if _, err := AddEK(dir, rootA, ek, nil); err != nil {
			t.Fatal(err)
		}
	}
	ca := testCA(t, "EK CA 1")
	et, err := AddEK(dir, rootB, "", ca)
	if err != nil || len(et.CAs) != 1 {
		t.Fatalf("pin an EK CA: %v", err)
	}
	exported, _ := json.Marshal(ExportRoot(b.Node.Cert))
	if _, err := AddRoot(dir, exported); err != nil {
		t.Fatal(err)
	}
	trust, list, err := LoadTrust(dir, a.Node.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if p := trust.EKPolicy(rootA); len(p.EKSHA256) != 2 || p.EKSHA256[0] != ek1 || p.EKSHA256[1] != ek2 || p.CAs != nil {
		t.Errorf("institution A's EK policy: %+v", p)
	}
	if p := trust.EKPolicy(rootB); len(p.EKSHA256) != 0 || p.CAs == nil {
		t.Errorf("institution B's EK policy: %+v", p)
	}
	if len(list) != 2 || len(list[0].EKSHA256) != 2 || len(list[1].EKCAs) != 1 || list[1].EKCAs[0].Subject != "CN=EK CA 1" {
		t.Errorf("trust list: %+v", list)
	}

	for _, c := range []struct {
		name, root, ek string
		ca             []byte
		want           string
	}{
		{"hash not hex", rootA, strings.Repeat("AB", 32), nil, "64 lowercase hex"},
		{"hash too short", rootA, "abcd", nil, "64 lowercase hex"},
		{"not a root id", "node_abc", ek1, nil, "not a root id"},
		{"both", rootA, ek1, ca, "either"},
		{"neither", rootA, "", nil, "either"},
		{"not a certificate", rootA, "", []byte("hello"), "no certificate"},
	} {
		if _, err := AddEK(dir, c.root, c.ek, c.ca); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
	// Un-pinning: what is pinned goes, what is not is refused naming it, and an
	// institution may end with nothing pinned.
	if et, err := RemoveEK(dir, rootA, ek1, nil); err != nil || len(et.EKSHA256) != 1 || et.EKSHA256[0] != ek2 {
		t.Fatalf("un-pin %s: %v %+v", ek1, err, et)
	}
	if _, err := RemoveEK(dir, rootA, ek1, nil); err == nil || !strings.Contains(err.Error(), "is not pinned") {
		t.Errorf("un-pin an EK not pinned: %v", err)
	}
	if _, err := RemoveEK(dir, rootB, "", testCA(t, "EK CA 2")); err == nil || !strings.Contains(err.Error(), "is not pinned") {
		t.Errorf("un-pin an EK CA not pinned: %v", err)
	}
	if et, err := RemoveEK(dir, rootB, "", ca); err != nil || len(et.CAs) != 0 {
		t.Fatalf("un-pin the EK CA: %v", err)
	}
	if _, err := RemoveEK(dir, "root_"+strings.Repeat("a", 26), ek1, nil); err == nil || !strings.Contains(err.Error(), "no TPM endorsement keys are pinned") {
		t.Errorf("un-pin for an institution with none: %v", err)
	}
	trust, _, err = LoadTrust(dir, a.Node.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if p := trust.EKPolicy(rootA); len(p.EKSHA256) != 1 || p.EKSHA256[0] != ek2 {
		t.Errorf("institution A's EK policy after un-pinning: %+v", p)
	}
	if p := trust.EKPolicy(rootB); len(p.EKSHA256) != 0 || p.CAs != nil {
		t.Errorf("institution B's EK policy after un-pinning its CA: %+v", p)
	}
	// A tampered file in the store stops loading, naming the file.
	p := filepath.Join(eksDir(dir), rootA+".json")
	os.WriteFile(p, []byte(`{"v":"sios-ek-trust/1","institution":"`+rootA+`","ek_sha256":["xyz"],"ek_cas":[]}`), 0o644)
	if _, _, err := LoadTrust(dir, a.Node.Cert); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("tampered EK store: %v", err)
	}
	// A file named for another institution than it holds is refused.
	good, _ := os.ReadFile(filepath.Join(eksDir(dir), rootB+".json"))
	os.WriteFile(p, good, 0o644)
	if _, _, err := LoadTrust(dir, a.Node.Cert); err == nil || !strings.Contains(err.Error(), "file name") {
		t.Fatalf("misnamed EK file: %v", err)
	}
}

// A node whose key is sealed to a TPM accepts its own TPM's EK for its institution.
func TestTrustStoreOwnEK(t *testing.T) {
	sim := swtpmtest.Start(t, swtpmtest.Options{})
	tp, err := tpm.Open(sim.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	dir, other := t.TempDir(), t.TempDir()
	res, err := tpm.Init(tp, dir, "a", "", nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tpm.Init(tp, other, "b", "", nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	trust, list, err := LoadTrust(dir, res.Node.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if list[0].OwnEKSHA256 != res.EKSHA256 || !slices.Contains(trust.EKPolicy(res.Node.Cert.RootID).EKSHA256, res.EKSHA256) {
		t.Fatalf("own EK not accepted: %+v %+v", list[0], trust.EKPolicy(res.Node.Cert.RootID))
	}
	// Another node's evidence in its place is not taken for this node's.
	b, _ := os.ReadFile(filepath.Join(other, tpm.EvidenceFile))
	os.WriteFile(filepath.Join(dir, tpm.EvidenceFile), b, 0o644)
	if _, _, err := LoadTrust(dir, res.Node.Cert); !errors.Is(err, tpm.ErrBindingMismatch) || !strings.Contains(err.Error(), tpm.EvidenceFile) {
		t.Fatalf("another node's evidence: %v, want ErrBindingMismatch naming %s", err, tpm.EvidenceFile)
	}
}

// testCA is a self-signed CA certificate (DER) named cn.
func testCA(t testing.TB, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// FuzzParseEKTrust: whatever ParseEKTrust accepts holds only valid hashes and CA
// certificates, and writes back to a file that parses to the same.
func FuzzParseEKTrust(f *testing.F) {
	root := "root_" + strings.Repeat("a", 52)
	ca, _ := json.Marshal([][]byte{testCA(f, "fuzz CA")})
	f.Add([]byte(`{"v":"sios-ek-trust/1","institution":"` + root + `","ek_sha256":["` + strings.Repeat("ab", 32) + `"],"ek_cas":[]}`))
	f.Add([]byte(`{"v":"sios-ek-trust/1","institution":"` + root + `","ek_sha256":[],"ek_cas":` + string(ca) + `}`))
	f.Add([]byte(`{"v":"sios-ek-trust/1","institution":"` + root + `","ek_sha256":null,"ek_cas":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		et, err := ParseEKTrust(b)
		if err != nil {
			return
		}
		for _, h := range et.EKSHA256 {
			if !tpm.ValidEKSHA256(h) {
				t.Fatalf("accepted EK hash %q", h)
			}
		}
		if len(et.certs) != len(et.CAs) {
			t.Fatalf("%d CAs, %d parsed", len(et.CAs), len(et.certs))
		}
		again, err := json.Marshal(et)
		if err != nil {
			t.Fatal(err)
		}
		et2, err := ParseEKTrust(again)
		if err != nil || !slices.Equal(et2.EKSHA256, et.EKSHA256) || len(et2.CAs) != len(et.CAs) || et2.Institution != et.Institution {
			t.Fatalf("written back, it does not parse to the same: %v", err)
		}
	})
}

// TestParseRootStrict: a root file another institution sends is read the same by every
// reader or not at all: repeated, differently cased and unknown members are refused,
// naming the member, and so is anything after the document.
func TestParseRootStrict(t *testing.T) {
	b, err := identity.Init(t.TempDir(), "b", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	good, _ := json.MarshalIndent(ExportRoot(b.Node.Cert), "", "  ")
	if _, _, err := ParseRoot(good); err != nil {
		t.Fatalf("the file 'sios root export' writes: %v", err)
	}
	body := string(good[1:]) // after the opening brace
	for _, c := range []struct{ name, in, want string }{
		{"repeated member", `{"root_id":"root_x",` + body, `duplicate object member name "root_id"`},
		{"differently cased member", strings.Replace(string(good), `"root_id"`, `"Root_ID"`, 1), `unknown object member name "Root_ID"`},
		{"unknown member", `{"comment":"from b",` + body, `unknown object member name "comment"`},
		{"data after the document", string(good) + "{}", "trailing data"},
		{"too large", string(good) + strings.Repeat(" ", maxRootFile), "(maxRootFile)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, _, err := ParseRoot([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseRoot = %v, want an error saying %q", err, c.want)
			}
		})
	}
}

// TestParseEKTrustStrict: an EK trust file refuses what readers could read differently.
func TestParseEKTrustStrict(t *testing.T) {
	root := "root_" + strings.Repeat("a", 52)
	good := `{"v":"sios-ek-trust/1","institution":"` + root + `","ek_sha256":["` + strings.Repeat("ab", 32) + `"],"ek_cas":[]}`
	if _, err := ParseEKTrust([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, in, want string }{
		{"repeated member", `{"ek_sha256":[],` + good[1:], `duplicate object member name "ek_sha256"`},
		{"differently cased member", strings.Replace(good, `"institution"`, `"Institution"`, 1), `unknown object member name "Institution"`},
		{"unknown member", `{"note":"x",` + good[1:], `unknown object member name "note"`},
		{"data after the document", good + " {}", "trailing data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ParseEKTrust([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseEKTrust = %v, want an error saying %q", err, c.want)
			}
		})
	}
}

// FuzzParseRoot: whatever ParseRoot accepts names the root its keys make, and the
// file AddRoot writes of it parses to the same root.
func FuzzParseRoot(f *testing.F) {
	b, err := identity.Init(f.TempDir(), "b", "", time.Now())
	if err != nil {
		f.Fatal(err)
	}
	good, _ := json.MarshalIndent(ExportRoot(b.Node.Cert), "", "  ")
	f.Add(good)
	f.Add([]byte(`{"v":"sios-root/1","root_id":"root_x","root_id":"root_y"}`))
	f.Add([]byte(`{"V":"sios-root/1"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		rf, pub, err := ParseRoot(in)
		if err != nil {
			return
		}
		if id := pub.ID(identity.RootPrefix); id != rf.RootID {
			t.Fatalf("accepted root_id %s for the keys of %s", rf.RootID, id)
		}
		again, _ := json.MarshalIndent(rf, "", "  ")
		rf2, _, err := ParseRoot(again)
		if err != nil || rf2 != rf {
			t.Fatalf("written back, it does not parse to the same: %v", err)
		}
	})
}
