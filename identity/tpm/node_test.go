package tpm

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/identity"
)

// copyDir copies a data directory's files (what an attacker who copies the disk gets).
func copyDir(t testing.TB, from string) string {
	t.Helper()
	to := t.TempDir()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

func TestInitLoadNode(t *testing.T) {
	simA := startSimulator(t, simOptions{EKCert: true})
	a := simA.open(t)
	dir := t.TempDir()
	res, err := Init(a, dir, "ward-7", "", nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res.Note != "" || res.Evidence.EKCertificate == nil {
		t.Fatalf("the manufactured TPM's EK certificate is not in the evidence (note %q)", res.Note)
	}
	// The key file is sealed: identity.Load refuses it, naming why.
	_, err = identity.Load(dir)
	var kfe *identity.KeyFileError
	if !errors.Is(err, identity.ErrKeySealed) || !errors.As(err, &kfe) || kfe.Path != filepath.Join(dir, identity.NodeKeyFile) {
		t.Fatalf("identity.Load of a sealed identity: %v, want ErrKeySealed naming node.key", err)
	}
	kf, err := ReadKeyFile(dir)
	if err != nil || kf.TPM != simA.Addr {
		t.Fatalf("ReadKeyFile: %v (tpm %q, want %q)", err, kf.TPM, simA.Addr)
	}

	n, err := Load(a, dir)
	if err != nil {
		t.Fatal(err)
	}
	if n.ID() != res.Node.ID() || !n.Public().Equal(res.Node.Public()) || n.EKSHA256 != res.EKSHA256 {
		t.Fatal("the loaded node is not the one Init made")
	}
	sig := n.Key.Sign("test", []byte("body"))
	if err := res.Node.Public().Verify("test", []byte("body"), sig); err != nil {
		t.Fatalf("the unsealed key does not sign as the node: %v", err)
	}
	v, err := Verify(n.Evidence, n.ID(), n.Public(), Policy{EKSHA256: []string{n.EKSHA256}})
	if err != nil {
		t.Fatal(err)
	}
	ch, pending, err := v.Challenge(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ans, err := n.Attestor.Answer(ch)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pending.Check(ans, time.Now()); err != nil {
		t.Fatalf("the loaded node's answer: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	// After a reboot (PCRs reset, transient objects gone) the node starts again.
	simA.Restart(t)
	a2 := simA.open(t)
	n2, err := Load(a2, dir)
	if err != nil {
		t.Fatalf("Load after the TPM restarted: %v", err)
	}
	n2.Close()

	// A missing evidence file (an init interrupted before writing it) is made again.
	copied := copyDir(t, dir)
	os.Remove(filepath.Join(dir, EvidenceFile))
	n3, err := Load(a2, dir)
	if err != nil {
		t.Fatalf("Load without node.evidence: %v", err)
	}
	if ev, err := ReadEvidence(dir); err != nil || ev.Binding.NodeID != n3.ID() {
		t.Fatalf("the evidence was not written again: %v", err)
	}
	n3.Close()

	// Another node's evidence in place of this node's is refused, naming the file.
	other := t.TempDir()
	if _, err := Init(a2, other, "other", "", nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	b2, _ := os.ReadFile(filepath.Join(other, EvidenceFile))
	os.WriteFile(filepath.Join(dir, EvidenceFile), b2, 0o644)
	_, err = Load(a2, dir)
	if !errors.Is(err, ErrBindingMismatch) || !strings.Contains(err.Error(), EvidenceFile) {
		t.Fatalf("Load with another node's evidence: %v, want ErrBindingMismatch naming %s", err, EvidenceFile)
	}

	// The data directory copied next to another TPM does not start, naming why.
	b := startSimulator(t, simOptions{}).open(t)
	_, err = Load(b, copied)
	t.Log(err)
	if !errors.Is(err, ErrOtherTPM) || !errors.As(err, &kfe) || !strings.Contains(err.Error(), identity.NodeKeyFile) {
		t.Fatalf("Load of a copied directory with another TPM: %v, want ErrOtherTPM naming node.key", err)
	}
}

func TestInitSealedToPCRsRefusesToStartAfterExtend(t *testing.T) {
	tp := startSimulator(t, simOptions{}).open(t)
	dir := t.TempDir()
	if _, err := Init(tp, dir, "n", "", []int{0, 16}, time.Now()); err != nil {
		t.Fatal(err)
	}
	extendPCR(t, tp, 16, "debugger attached")
	_, err := Load(tp, dir)
	t.Log(err)
	if !errors.Is(err, ErrPCRChanged) || !strings.Contains(err.Error(), "PCR 16 ") || !strings.Contains(err.Error(), identity.NodeKeyFile) {
		t.Fatalf("Load after a sealed PCR changed: %v, want ErrPCRChanged naming PCR 16 and node.key", err)
	}
}
