package fleet

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/identity"
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
