package tpm

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/sios-project/sios/identity"
)

func newNodeKey(t testing.TB) *identity.PrivateKey {
	t.Helper()
	k, err := identity.GenerateKey(identity.KindNode)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealUnsealRoundTrip(t *testing.T) {
	tp := startSimulator(t, simOptions{}).open(t)
	key := newNodeKey(t)
	kf, err := tp.Seal(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := kf.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m, e := key.Seeds()
	for _, seed := range [][]byte{m[:], e[:]} {
		for _, enc := range []string{string(seed), hex.EncodeToString(seed), base64.StdEncoding.EncodeToString(seed)} {
			if bytes.Contains(b, []byte(enc)) {
				t.Fatal("the sealed key file holds a seed in the clear")
			}
		}
	}
	kf2, err := ParseKeyFile(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tp.Unseal(kf2)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Public().Equal(key.Public()) {
		t.Fatal("the unsealed key is another key")
	}
	if gm, ge := got.Seeds(); gm != m || ge != e {
		t.Fatal("the unsealed seeds differ")
	}
}

func TestUnsealWithAnotherTPMFails(t *testing.T) {
	a := startSimulator(t, simOptions{}).open(t)
	b := startSimulator(t, simOptions{}).open(t)
	kf, err := a.Seal(newNodeKey(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Unseal(kf)
	t.Log(err)
	if !errors.Is(err, ErrOtherTPM) || !strings.Contains(err.Error(), "another machine") {
		t.Fatalf("unseal with another TPM: %v, want ErrOtherTPM naming the cause", err)
	}
	// With the file claiming B's storage root key, B's TPM itself refuses the blob.
	kfB, err := b.Seal(newNodeKey(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	forged := *kf
	forged.SRKName = kfB.SRKName
	_, err = b.Unseal(&forged)
	t.Log(err)
	if !errors.Is(err, ErrOtherTPM) || !strings.Contains(err.Error(), "integrity") {
		t.Fatalf("unseal of another TPM's blob: %v, want ErrOtherTPM from the TPM's integrity check", err)
	}
}

func extendPCR(t testing.TB, tp *TPM, pcr int, data string) {
	t.Helper()
	d := sha256.Sum256([]byte(data))
	err := tp.do(func(tr transport.TPM) error {
		_, err := tpm2.PCRExtend{
			PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
			Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: d[:]}}},
		}.Execute(tr)
		return err
	})
	if err != nil {
		t.Fatalf("extending PCR %d: %v", pcr, err)
	}
}

func TestPCRBoundSealFailsAfterExtend(t *testing.T) {
	tp := startSimulator(t, simOptions{}).open(t)
	key := newNodeKey(t)
	extendPCR(t, tp, 23, "boot")
	kf, err := tp.Seal(key, []int{7, 23})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tp.Unseal(kf); err != nil || !got.Public().Equal(key.Public()) {
		t.Fatalf("unseal with the PCRs unchanged: %v", err)
	}
	extendPCR(t, tp, 23, "something else ran")
	_, err = tp.Unseal(kf)
	t.Log(err)
	if !errors.Is(err, ErrPCRChanged) || !strings.Contains(err.Error(), "PCR 23 ") || strings.Contains(err.Error(), "PCR 7,") {
		t.Fatalf("unseal after extending PCR 23: %v, want ErrPCRChanged naming PCR 23 only", err)
	}
	// The TPM enforces the policy itself: with the recorded values doctored to the
	// current ones, the pre-check passes and the TPM refuses.
	now, err := func() (v [][]byte, err error) {
		err = tp.do(func(tr transport.TPM) error { v, err = readPCRs(tr, kf.PCRs); return err })
		return v, err
	}()
	if err != nil {
		t.Fatal(err)
	}
	doctored := *kf
	doctored.PCRValues = []string{hex.EncodeToString(now[0]), hex.EncodeToString(now[1])}
	_, err = tp.Unseal(&doctored)
	t.Log(err)
	if !errors.Is(err, ErrPCRChanged) || !strings.Contains(err.Error(), "TPM refuses") {
		t.Fatalf("unseal with doctored PCR values: %v, want the TPM's refusal as ErrPCRChanged", err)
	}
}

// TestParseKeyFileStrict: the vector key file parses; one with a repeated, differently
// cased or unknown member is refused naming it, where encoding/json would match a
// differently cased member anyway.
func TestParseKeyFileStrict(t *testing.T) {
	vec := readVectors(t)
	good := vec.KeyFile
	if _, err := ParseKeyFile([]byte(good)); err != nil {
		t.Fatal(err)
	}
	i := strings.Index(good, "{") + 1
	for _, c := range []struct{ name, in, want string }{
		{"repeated member", good[:i] + `"tpm":"/dev/other",` + good[i:], `duplicate object member name "tpm"`},
		{"differently cased member", strings.Replace(good, `"tpm"`, `"TPM"`, 1), `unknown object member name "TPM"`},
		{"unknown member", good[:i] + `"comment":"x",` + good[i:], `unknown object member name "comment"`},
		{"data after the document", good + "{}", "trailing data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ParseKeyFile([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseKeyFile = %v, want an error saying %q", err, c.want)
			}
		})
	}
}
