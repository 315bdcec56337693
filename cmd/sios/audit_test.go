package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/oar"
	"github.com/transparency-dev/tessera/api/layout"
)

func TestAuditAppendShowTailProveVerify(t *testing.T) {
	dir := initNode(t)
	var last map[string]any
	for i := range 3 {
		last = decode[map[string]any](t, ok(t, dir, "audit", "append", "--action", "brain.invoke",
			"--actor", fmt.Sprintf("alice-%d", i), "--resource", "brain/legal", "--tenant", "t1", "--json"))
	}
	for _, k := range []string{"index", "record_hash", "seal_index", "inclusion_proof", "seal"} {
		if _, ok := last[k]; !ok {
			t.Fatalf("receipt lacks %q: %v", k, last)
		}
	}
	idx := fmt.Sprint(last["index"])
	out := ok(t, dir, "audit", "verify")
	// init logs node.init, then three appends.
	if !strings.HasPrefix(out, "verified 4 records") {
		t.Fatalf("verify said %q", out)
	}
	shown := decode[map[string]any](t, ok(t, dir, "audit", "show", idx, "--json"))
	if shown["record_hash"] != last["record_hash"] || shown["kind"] != "record" {
		t.Fatalf("show %s: %v", idx, shown)
	}
	if entry := shown["entry"].(map[string]any); entry["action"] != "brain.invoke" || entry["actor"].(map[string]any)["id"] != "alice-2" {
		t.Fatalf("show %s entry: %v", idx, entry)
	}
	tail := decode[[]map[string]any](t, ok(t, dir, "audit", "tail", "-n", "3", "--json"))
	if len(tail) != 3 || tail[2]["kind"] != "seal" {
		t.Fatalf("tail: %v", tail)
	}
	if out := ok(t, dir, "audit", "tail"); !strings.Contains(out, "brain.invoke") || !strings.Contains(out, "alice-2") {
		t.Fatalf("tail text: %s", out)
	}
	proof := decode[map[string]any](t, ok(t, dir, "audit", "prove", idx, "--json"))
	if proof["receipt"] == nil || proof["checkpoint"] == nil || proof["tree_size"] == nil {
		t.Fatalf("prove: %v", proof)
	}
	fails(t, 1, dir, []string{"audit", "show", "999"}, "beyond")
}

func TestAuditVerifyNamesTheTamperedEntry(t *testing.T) {
	dir := initNode(t)
	for i := range 5 {
		ok(t, dir, "audit", "append", "--action", "a", "--actor", fmt.Sprint("u", i))
	}
	ok(t, dir, "audit", "verify")
	r := openTestReader(t, dir)
	bundle := filepath.Join(dir, "ledger", "log", layout.EntriesPath(0, layout.PartialTileSize(0, 0, r.Size())))
	raw, _ := os.ReadFile(bundle)
	raw[len(raw)-10] ^= 0x20
	os.WriteFile(bundle, raw, 0o644)
	fails(t, 1, dir, []string{"audit", "verify"}, "verification failed", "entry ")
}

func TestSecondWriterGetsAClearError(t *testing.T) {
	dir := initNode(t)
	f, err := os.OpenFile(filepath.Join(dir, "ledger", "LOCK"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	r := fails(t, 1, dir, []string{"audit", "append", "--action", "a", "--actor", "u"}, "in use by another sios process")
	if !strings.Contains(r.stderr, "sios: hint: ") {
		t.Fatalf("no hint: %s", r.stderr)
	}
	// Reading and verifying beside a live writer still works.
	ok(t, dir, "audit", "verify")
}

func TestEvidenceBundleVerifiesOfflineAndRejectsTampering(t *testing.T) {
	dir := initNode(t)
	in := strings.Builder{}
	for i := range 600 {
		fmt.Fprintf(&in, `{"actor":{"id":"u%d"},"action":"doc.read","resource":"doc/%d"}`+"\n", i, i)
	}
	cmd := exec.Command(siosBin, "--data", dir, "audit", "append", "--stdin")
	cmd.Stdin = strings.NewReader(in.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("append --stdin: %v\n%s", err, out)
	}
	whole := filepath.Join(t.TempDir(), "whole.json")
	ok(t, dir, "audit", "export", "--out", whole)
	if out := ok(t, "", "audit", "verify", "--bundle", whole); !strings.HasPrefix(out, "verified 601 records") {
		t.Fatalf("verify --bundle: %s", out)
	}
	part := filepath.Join(t.TempDir(), "part.json")
	ok(t, dir, "audit", "export", "--out", part, "--from", "300", "--to", "310")
	ok(t, "", "audit", "verify", "--bundle", part)
	b := readBundle(t, part)
	if len(b.Left) == 0 || len(b.Right) == 0 {
		t.Fatalf("a middle export should carry both compact ranges: %d left, %d right", len(b.Left), len(b.Right))
	}

	other := initNode(t)
	otherCert, err := identity.LoadCertificate(filepath.Join(other, "node.cert"))
	if err != nil {
		t.Fatal(err)
	}
	firstRecord := func(b *ledger.Bundle) int {
		for i, e := range b.Entries {
			if p, err := oar.Parse([]byte(e)); err == nil && p.Kind == oar.KindRecord {
				return i
			}
		}
		t.Fatal("no record in bundle")
		return 0
	}
	for name, tc := range map[string]struct {
		mutate func(b *ledger.Bundle)
		want   string
	}{
		"wrong key":       {func(b *ledger.Bundle) { b.Certificate = otherCert }, "checkpoint"},
		"truncated left":  {func(b *ledger.Bundle) { b.Left = b.Left[:len(b.Left)-1] }, "compact range"},
		"truncated right": {func(b *ledger.Bundle) { b.Right = b.Right[:len(b.Right)-1] }, "compact range"},
		"swapped records": {func(b *ledger.Bundle) {
			i := firstRecord(b)
			b.Entries[i], b.Entries[i+1] = b.Entries[i+1], b.Entries[i]
		}, "entry "},
		"extra trailing record": {func(b *ledger.Bundle) {
			b.Entries = append(b.Entries, b.Entries[firstRecord(b)])
		}, "not covered by a seal"},
		"altered record": {func(b *ledger.Bundle) {
			i := firstRecord(b)
			b.Entries[i] = strings.Replace(b.Entries[i], "doc.read", "doc.wipe", 1)
		}, "root does not match"},
		"wrong start": {func(b *ledger.Bundle) { b.Start++ }, "bundle"},
	} {
		t.Run(name, func(t *testing.T) {
			b := readBundle(t, part)
			tc.mutate(b)
			p := filepath.Join(t.TempDir(), "bad.json")
			data, _ := json.Marshal(b)
			os.WriteFile(p, data, 0o644)
			fails(t, 1, "", []string{"audit", "verify", "--bundle", p}, "failed verification", tc.want)
		})
	}
	trunc := filepath.Join(t.TempDir(), "trunc.json")
	data, _ := os.ReadFile(part)
	os.WriteFile(trunc, data[:len(data)/2], 0o644)
	fails(t, 1, "", []string{"audit", "verify", "--bundle", trunc}, "not valid JSON")
}

func openTestReader(t *testing.T, dir string) *ledger.Reader {
	t.Helper()
	cert, err := identity.LoadCertificate(filepath.Join(dir, "node.cert"))
	if err != nil {
		t.Fatal(err)
	}
	pub, _, err := cert.Verify()
	if err != nil {
		t.Fatal(err)
	}
	r, err := ledger.OpenReader(filepath.Join(dir, "ledger"), cert.NodeID, pub)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func readBundle(t *testing.T, path string) *ledger.Bundle {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := ledger.ReadBundle(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKillNineMidStream kills the appending process at random points, many times:
// every record whose receipt was printed must be in the log and verify afterwards.
func TestKillNineMidStream(t *testing.T) {
	dir := initNode(t)
	var receipts []oar.Receipt
	rounds := 8
	if testing.Short() {
		rounds = 3
	}
	for round := range rounds {
		receipts = append(receipts, appendUntilKilled(t, dir, round)...)
	}
	if len(receipts) == 0 {
		t.Fatal("no receipt was printed before any kill")
	}
	// Verification reads what the crash left, the journal included, and changes nothing.
	out := ok(t, dir, "audit", "verify")
	if !strings.HasPrefix(out, "verified ") {
		t.Fatalf("verify after kills: %s", out)
	}
	// Every receipted record is there: in the checkpointed log or beyond it.
	checkReceipted := func(wantCheckpointed bool) *ledger.Reader {
		r := openTestReader(t, dir)
		pending, err := r.Pending(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if wantCheckpointed && len(pending) > 0 {
			t.Fatalf("%d entries beyond the checkpoint after recovery", len(pending))
		}
		seen := map[uint64]bool{}
		for _, rc := range receipts {
			if seen[rc.Index] {
				t.Fatalf("index %d was receipted twice", rc.Index)
			}
			seen[rc.Index] = true
			var entry []byte
			if rc.Index < r.Size() {
				if entry, err = r.Entry(context.Background(), rc.Index); err != nil {
					t.Fatalf("receipted record %d: %v", rc.Index, err)
				}
			} else if k := rc.Index - r.Size(); k < uint64(len(pending)) {
				entry = pending[k].Entry
			} else {
				t.Fatalf("receipted record %d is neither in the log of %d entries nor among %d beyond it", rc.Index, r.Size(), len(pending))
			}
			if _, err := rc.Verify(r.PublicKey(), entry); err != nil {
				t.Fatalf("receipted record %d: %v", rc.Index, err)
			}
		}
		return r
	}
	checkReceipted(false)
	// Appends continue after the crashes; opening the ledger integrates the journal.
	ok(t, dir, "audit", "append", "--action", "after.crash", "--actor", "u")
	ok(t, dir, "audit", "verify")
	r := checkReceipted(true)
	t.Logf("%d receipts over %d kills; log holds %d entries", len(receipts), rounds, r.Size())
}

func appendUntilKilled(t *testing.T, dir string, round int) []oar.Receipt {
	t.Helper()
	cmd := exec.Command(siosBin, "--data", dir, "audit", "append", "--stdin", "--json")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		w := bufio.NewWriter(stdin)
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, `{"actor":{"id":"r%d"},"action":"kill.test","resource":"n%d"}`+"\n", round, i); err != nil {
				return
			}
			if i%64 == 0 {
				if w.Flush() != nil {
					return
				}
			}
		}
	}()
	var mu sync.Mutex
	var got []oar.Receipt
	first := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var rc oar.Receipt
			if json.Unmarshal(sc.Bytes(), &rc) != nil {
				continue // a line cut by the kill was never printed whole
			}
			mu.Lock()
			got = append(got, rc)
			if len(got) == 1 {
				close(first)
			}
			mu.Unlock()
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case <-first:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("round %d: no receipt within 20s; stderr: %s", round, stderr.String())
	}
	time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond)
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
	cmd.Wait()
	mu.Lock()
	defer mu.Unlock()
	return got
}
