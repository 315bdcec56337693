package ledger

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
)

// breakLock puts a directory where Tessera opens its lock file, so that opening it
// fails (EISDIR) as it does on a file system that went read-only or failed; mend puts
// the file back.
func breakLock(t *testing.T, logDir string) (mend func()) {
	t.Helper()
	p := filepath.Join(logDir, ".state", "treeState.lock")
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Tessera as sios builds it (third_party/tessera) returns an error where v1.0.4
// panicked — the log's lock file cannot be opened — and after one failed batch it
// sequences nothing more, even once the cause is gone: a later batch would otherwise
// take the failed batch's indices.
func TestTesseraFailureIsAnErrorAndSticky(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key, err := identity.GenerateKey(identity.KindNode)
	if err != nil {
		t.Fatal(err)
	}
	driver, err := posix.New(ctx, posix.Config{Path: dir, HTTPClient: noNetwork})
	if err != nil {
		t.Fatal(err)
	}
	ed, _ := key.NoteSigners("test/tessera")
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	app, _, _, err := tessera.NewAppender(tctx, driver, tessera.NewAppendOptions().
		WithCheckpointSigner(ed).WithBatching(16, 10*time.Millisecond).WithCheckpointInterval(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	add := func(s string) (tessera.Index, error) { return app.Add(ctx, tessera.NewEntry([]byte(s)))() }
	if idx, err := add("first"); err != nil || idx.Index != 0 {
		t.Fatalf("first entry: %v, %v", idx, err)
	}
	mend := breakLock(t, dir)
	if _, err := add("second"); err == nil || !strings.Contains(err.Error(), "treeState.lock") {
		t.Fatalf("with the lock file unopenable: %v, want an error naming treeState.lock", err)
	}
	mend()
	if idx, err := add("third"); err == nil || !strings.Contains(err.Error(), "an earlier batch failed") {
		t.Fatalf("after a failed batch: index %d, %v; want the earlier failure", idx.Index, err)
	}
}

// A ledger whose log cannot be written stops taking records with an error (Err), never
// a panic; records receipted before that are journaled, and the next Open integrates
// every one of them at the index its receipt names.
func TestLogFailureStopsTheLedgerAndOpenRecovers(t *testing.T) {
	node := newTestNode(t)
	dir := t.TempDir()
	l := openTest(t, dir, node)
	receipts, entries := appendN(t, l, 100, 4)
	if err := l.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	mend := breakLock(t, filepath.Join(dir, logDirName))
	deadline := time.Now().Add(30 * time.Second)
	var failed error
	for i := 100; failed == nil; i++ {
		if time.Now().After(deadline) {
			t.Fatal("the ledger kept taking records for 30s with its log unwritable")
		}
		rc, e, err := l.Append(context.Background(), testRecord(i))
		if err != nil {
			failed = err
			break
		}
		receipts[rc.Index], entries[rc.Index] = rc, e
	}
	if !strings.Contains(failed.Error(), "audit ledger stopped") || !strings.Contains(failed.Error(), "treeState.lock") {
		t.Fatalf("append after the failure: %v", failed)
	}
	if err := l.Err(); err == nil || err.Error() != failed.Error() {
		t.Fatalf("Err() = %v, want %v", err, failed)
	}
	if _, _, err := l.Append(context.Background(), testRecord(0)); err == nil {
		t.Fatal("an append succeeded after the failure")
	}
	if err := l.Close(context.Background()); err == nil {
		t.Fatal("Close of a failed ledger reported no error")
	}
	if len(receipts) <= 100 {
		t.Fatalf("only %d receipts: the failure came before any record reached the journal alone", len(receipts))
	}
	mend()
	checkRecovered(t, dir, node, receipts, entries)
}

// checkRecovered opens the ledger (recovering from the journal), closes it, and checks
// that every receipted record is in the log at its index and that the log verifies.
func checkRecovered(t *testing.T, dir string, node *identity.Node, receipts map[uint64]*oar.Receipt, entries map[uint64][]byte) {
	t.Helper()
	l := openTest(t, dir, node)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := OpenReader(dir, node.ID(), node.Public())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Verify(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	for i, rc := range receipts {
		e, err := r.Entry(context.Background(), i)
		if err != nil {
			t.Fatalf("receipted record %d: %v", i, err)
		}
		if !bytes.Equal(e, entries[i]) {
			t.Fatalf("the log holds another entry at %d than the one receipted", i)
		}
		if _, err := rc.Verify(node.Public(), e); err != nil {
			t.Fatalf("receipt %d: %v", i, err)
		}
	}
}
