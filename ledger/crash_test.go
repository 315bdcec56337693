package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
	"github.com/transparency-dev/tessera/api/layout"
)

// The crash helper is this test binary run again with SIOS_LEDGER_CRASH set to
// "IDENTITY-DIR LEDGER-DIR INTEGRATED PENDING [UNSEALED]": it opens the ledger, appends
// INTEGRATED records and waits until Tessera integrated them (no checkpoint is
// published for them), appends PENDING more that Tessera holds back, writes UNSEALED
// more that are durable but not yet sealed, and kills itself with SIGKILL once every
// receipt (and every Write) is in hand: the state a crash leaves.
func init() {
	if spec := os.Getenv("SIOS_LEDGER_CRASH"); spec != "" {
		os.Exit(crashHelper(strings.Fields(spec)))
	}
}

func crashHelper(args []string) int {
	node, err := identity.Load(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	integrated, _ := strconv.Atoi(args[2])
	pending, _ := strconv.Atoi(args[3])
	ctx := context.Background()
	l, err := Open(ctx, args[1], node, Options{CheckpointInterval: time.Hour, TesseraBatchSize: 64, TesseraBatchAge: time.Hour, SealMaxRecords: 8})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	for i := range integrated {
		if _, _, err := l.Append(ctx, testRecord(i)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
	}
	// Tessera integrates whole batches of 64: wait for the ones it can.
	for want := l.Size() / 64 * 64; l.integrated.Load() < want; {
		time.Sleep(time.Millisecond)
	}
	for i := range pending {
		if _, _, err := l.Append(ctx, testRecord(integrated+i)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
	}
	if len(args) > 4 {
		// Seal nothing more: the next records stay durable and unsealed. (The writer
		// reads the option after receiving the next record, which orders the two.)
		l.opts.SealMaxDelay, l.opts.SealMaxRecords = time.Hour, 4096
		l.sealBudget, l.budgetAt = 0, time.Now()
		unsealed, _ := strconv.Atoi(args[4])
		for i := range unsealed {
			if _, err := l.Write(ctx, testRecord(integrated+pending+i)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 3
			}
		}
	}
	fmt.Println(l.Size(), l.integrated.Load())
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// crashedLedger makes a ledger with a published checkpoint of some records, then
// entries integrated beyond it and entries only the journal holds, as a crash leaves
// them. It returns the ledger directory, the node, the journaled size and Tessera's
// integrated size.
func crashedLedger(t *testing.T) (string, *identity.Node, uint64, uint64) {
	t.Helper()
	return crashedLedgerWith(t, 0)
}

// crashedLedgerWith is crashedLedger, with unsealed records after the last seal:
// durable (Write returned) but not yet sealed when the process died.
func crashedLedgerWith(t *testing.T, unsealed int) (string, *identity.Node, uint64, uint64) {
	t.Helper()
	idDir := t.TempDir()
	res, err := identity.Init(idDir, "crash-node", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	l := openTest(t, dir, res.Node)
	appendN(t, l, 20, 4)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("SIOS_LEDGER_CRASH=%s %s 100 13 %d", idDir, dir, unsealed))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("crash helper: %v\n%s%s", err, out, stderr.Bytes())
	}
	var size, integrated uint64
	if _, err := fmt.Sscan(string(out), &size, &integrated); err != nil {
		t.Fatalf("crash helper said %q: %v", out, err)
	}
	return dir, res.Node, size, integrated
}

// snapshot records every file under dir: its bytes, mode and modification time.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		var data []byte
		if !d.IsDir() {
			if data, err = os.ReadFile(p); err != nil {
				return err
			}
		}
		files[p] = fmt.Sprintf("%v %d %x", info.Mode(), info.ModTime().UnixNano(), data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// Verification reads a crashed ledger without changing a byte, and verifies what
// lies beyond its checkpoint: entries Tessera integrated and entries only the journal
// holds (issue 12, item 6).
func TestVerifyAfterACrashIsReadOnlyAndCoversTheJournal(t *testing.T) {
	dir, node, size, integrated := crashedLedger(t)
	before := snapshot(t, dir)
	_, res := verifiedLog(t, dir, node)
	after := snapshot(t, dir)
	if len(before) != len(after) {
		t.Fatalf("verification changed the file set: %d files before, %d after", len(before), len(after))
	}
	for p, v := range before {
		if after[p] != v {
			t.Fatalf("verification changed %s", p)
		}
	}
	if res.Live || res.Integrated != integrated || res.JournalEnd != size || res.Entries >= integrated || integrated >= size {
		t.Fatalf("result %+v; the crash left %d journaled and %d integrated", res, size, integrated)
	}
	if res.BeyondRecords != 113 {
		t.Fatalf("%d records beyond the checkpoint, want 113", res.BeyondRecords)
	}
	// The node recovers exactly what verification saw.
	l := openTest(t, dir, node)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := OpenReader(dir, node.ID(), node.Public())
	if err != nil {
		t.Fatal(err)
	}
	if r.Size() != size {
		t.Fatalf("after recovery the log holds %d entries, want %d", r.Size(), size)
	}
}

// rewriteJournalEntry replaces an entry in a journal frame, keeping the frame's
// checksums valid: what a forger with write access could do.
func rewriteJournalEntry(t *testing.T, dir string, edit func(entry []byte) []byte) {
	t.Helper()
	segs, err := readSegments(filepath.Join(dir, journalDirName), false)
	if err != nil || len(segs) == 0 {
		t.Fatalf("journal: %v", err)
	}
	s := segs[len(segs)-1]
	b := s.batches[len(s.batches)-1]
	b.entries[0] = edit(bytes.Clone(b.entries[0]))
	data, err := os.ReadFile(s.path)
	if err != nil {
		t.Fatal(err)
	}
	offs := frameOffsets(t, s.path)
	last := offs[len(offs)-1]
	frame := encodeFrame(nil, b)
	clear(data[last:])
	copy(data[last:], frame)
	if crc32.Checksum(frame[frameHeaderSize:], crcTable) != binary.BigEndian.Uint32(frame[4:]) {
		t.Fatal("bad frame")
	}
	if err := os.WriteFile(s.path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyCatchesAForgedJournalEntry(t *testing.T) {
	dir, node, _, _ := crashedLedger(t)
	rewriteJournalEntry(t, dir, func(e []byte) []byte { return bytes.Replace(e, []byte("user-"), []byte("USER-"), 1) })
	r, err := OpenReader(dir, node.ID(), node.Public())
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Verify(context.Background(), false)
	if err == nil || !strings.Contains(err.Error(), "root does not match") || !strings.Contains(err.Error(), "only the journal holds") {
		t.Fatalf("verify: %v", err)
	}
}

// A crash during an integration can leave tile and bundle files that hold entries
// beyond Tessera's integrated size (log/.state/treeState). No checkpoint or state
// commits to them yet, but they must hold the journal's entries, which the node
// integrates there when it next starts: verification compares them with the journal,
// and recovery rewrites them.
func TestRecoveryRewritesFilesBeyondTesseraState(t *testing.T) {
	dir, node, size, integrated := crashedLedger(t)
	// Junk where Tessera will write the entries the journal holds beyond its state:
	// the bundle and level-0 tile of the journal's end.
	idx := (size - 1) / layout.EntryBundleWidth
	w := layout.PartialTileSize(0, idx, size)
	log := filepath.Join(dir, logDirName)
	junkBundle := filepath.Join(log, layout.EntriesPath(idx, w))
	junkTile := filepath.Join(log, layout.TilePath(0, idx, w))
	// Well-formed files: the entries and hashes below the state as they are, junk for
	// those beyond it.
	st := newStore(log)
	var bundle, tile []byte
	for i := idx * layout.EntryBundleWidth; i < size; i++ {
		e, h := bytes.Repeat([]byte{0xa5}, 40), bytes.Repeat([]byte{0xa5}, 32)
		if i < integrated {
			es, err := st.entries(context.Background(), i, i+1, integrated)
			if err != nil {
				t.Fatal(err)
			}
			e, h = es[0], oar.RecordHash(es[0])
		}
		bundle = append(binary.BigEndian.AppendUint16(bundle, uint16(len(e))), e...)
		tile = append(tile, h...)
	}
	for p, data := range map[string][]byte{junkBundle: bundle, junkTile: tile} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := OpenReader(dir, node.ID(), node.Public())
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Verify(context.Background(), false)
	if err == nil || !strings.Contains(err.Error(), "than the journal") || !strings.Contains(err.Error(), filepath.Base(junkBundle)) {
		t.Fatalf("junk beyond Tessera's state: %v", err)
	}
	// The node recovers: Tessera integrates the journal's entries over the junk.
	l, err := Open(context.Background(), dir, node, Options{CheckpointInterval: 100 * time.Millisecond, TesseraBatchAge: time.Millisecond, TesseraBatchSize: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err = OpenReader(dir, node.ID(), node.Public())
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Verify(context.Background(), false)
	if err != nil || res.Entries != size {
		t.Fatalf("after recovery: %+v, %v", res, err)
	}
	for _, p := range []string{junkBundle, junkTile} {
		if data, _ := os.ReadFile(p); bytes.Contains(data, []byte{0xa5, 0xa5, 0xa5, 0xa5}) {
			t.Fatalf("%s still holds the junk after recovery", p)
		}
	}
}

// A record is durable once Write returns, before its seal: one that a crash caught
// unsealed is in the journal, verification reports it as such, and the node seals it
// first when it next starts (issue 11, item 1: the admission record is durable before
// anything leaves, while sealing overlaps the backend's work).
func TestDurableRecordsACrashLeftUnsealedAreSealedAtStart(t *testing.T) {
	dir, node, size, _ := crashedLedgerWith(t, 5)
	r, res := verifiedLog(t, dir, node)
	if res.Unsealed != 5 || res.JournalEnd != size || res.BeyondRecords != 118 {
		t.Fatalf("result %+v: want 5 unsealed records at the end of a journal of %d entries, 118 beyond the checkpoint", res, size)
	}
	records := res.Records + res.BeyondRecords
	pend, err := r.Pending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(pend) == 0 || pend[len(pend)-1].Index != size-1 {
		t.Fatalf("pending entries end at %v, want %d", pend[len(pend)-1:], size-1)
	}

	l := openTest(t, dir, node)
	rc, _, err := l.Append(context.Background(), testRecord(1000))
	if err != nil {
		t.Fatal(err)
	}
	// The unsealed records took the seal at index size; the new record follows it.
	if rc.Index != size+1 {
		t.Fatalf("the first record after the restart is at %d, want %d (after the seal of the unsealed ones at %d)", rc.Index, size+1, size)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, res = verifiedLog(t, dir, node)
	if res.Unsealed != 0 || res.Pending != 0 || res.Records != records+1 || res.Entries != size+3 {
		t.Fatalf("after the restart: %+v; want %d records, %d entries, nothing unsealed", res, records+1, size+3)
	}
	es, err := r.Entries(context.Background(), size, size+1)
	if err != nil {
		t.Fatal(err)
	}
	e, err := oar.Parse(es[0])
	if err != nil || e.Seal == nil || e.Seal.First != size-5 || e.Seal.Count != 5 {
		t.Fatalf("entry %d is not the seal of the 5 unsealed records: %v %+v", size, err, e)
	}
}
