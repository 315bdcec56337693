package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/replication"
)

// appendRecords appends n records through sios audit append --stdin (through the
// running node when there is one).
func appendRecords(t *testing.T, dir string, n, from int) {
	t.Helper()
	var in bytes.Buffer
	for i := range n {
		fmt.Fprintf(&in, `{"actor":{"id":"svc-%d"},"action":"test.replicate","resource":"item/%d","tenant":"default"}`+"\n", (from+i)%97, from+i)
	}
	cmd := exec.Command(siosBin, "--data", dir, "audit", "append", "--stdin")
	cmd.Stdin = &in
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("audit append --stdin: %v: %s", err, errb.String())
	}
	if got := bytes.Count(out, []byte("\n")); got != n {
		t.Fatalf("%d receipts for %d records", got, n)
	}
}

func replicaStatuses(t *testing.T, dir string) []replication.ReplicaStatus {
	t.Helper()
	return decode[[]replication.ReplicaStatus](t, ok(t, dir, "audit", "replicas", "--json"))
}

func logSize(t *testing.T, dir string) uint64 {
	t.Helper()
	return openTestReader(t, dir).Size()
}

// sameFiles requires every file of the copy to be the source's file at that path, byte
// for byte. The checkpoint is the one mutable file: a source that went on appending
// has a newer one (audit compare proves the two consistent). The source may also hold
// partial tiles it has since completed: they are not part of the log at its checkpoint.
func sameFiles(t *testing.T, src, copyDir string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(copyDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(copyDir, p)
		if rel != "." && strings.HasPrefix(rel, ".") { // the replica's own state, not part of the copy
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || rel == "checkpoint" {
			return nil
		}
		a, err := os.ReadFile(filepath.Join(src, rel))
		b, _ := os.ReadFile(p)
		if err != nil || !bytes.Equal(a, b) {
			return fmt.Errorf("%s in the copy is not the source's (%v)", rel, err)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 40+1 { // 10,800 entries: 43 entry bundles, their hash tiles, the checkpoint
		t.Fatalf("only %d files compared", n)
	}
}

func TestReplicationToTwoReplicas(t *testing.T) {
	site := newInstitution(t, "a", "b", "c")
	a, b, c := site.dirs[0], site.dirs[1], site.dirs[2]
	idA, idB, idC := nodeIDOf(t, a), nodeIDOf(t, b), nodeIDOf(t, c)
	if idB == idC {
		t.Fatal("two nodes share an id")
	}
	ok(t, a, "audit", "replicas", "add", idB, "--cadence", "300ms")
	ok(t, a, "audit", "replicas", "add", idC, "--cadence", "300ms")
	appendRecords(t, a, 10000, 0) // before the node runs: straight into the ledger

	na := startNode(t, a, "--fleet-listen", "127.0.0.1:0")
	nb := startNode(t, b, "--fleet-listen", "127.0.0.1:0", "--join", na.fleetAddr)
	nc := startNode(t, c, "--fleet-listen", "127.0.0.1:0", "--join", na.fleetAddr)
	appendRecords(t, a, 500, 10000) // and through the running node

	caughtUp := func(what string) {
		t.Helper()
		eventually(t, 60*time.Second, what, func() (bool, string) {
			st := replicaStatuses(t, a)
			done := 0
			for _, s := range st {
				if s.Role == "replica" && s.State == "ok" && s.LagRecords == 0 && s.Size > 10500 {
					done++
				}
			}
			return done == 2, fmt.Sprintf("%+v", st)
		})
	}
	caughtUp("both replicas catch up")

	// B's view: it keeps a copy of A, verified.
	var fromB *replication.ReplicaStatus
	for _, s := range replicaStatuses(t, b) {
		if s.NodeID == idA && s.Role == "source" {
			fromB = &s
		}
	}
	if fromB == nil || fromB.State != "ok" {
		t.Fatalf("B does not report its copy of A: %+v", replicaStatuses(t, b))
	}

	// audit compare across the fleet, from both sides: one history, proven.
	for _, tc := range []struct{ dir, peer string }{{a, idB}, {a, idC}, {b, idA}, {c, idA}} {
		out := ok(t, tc.dir, "audit", "compare", "--peer", tc.peer)
		if !strings.Contains(out, "identical up to size") {
			t.Fatalf("compare %s with %s: %s", filepath.Base(tc.dir), tc.peer, out)
		}
	}

	// Stop B, keep appending on A, restart B: it catches up and nothing is lost.
	nb.stop(t)
	appendRecords(t, a, 300, 10500)
	nb = startNode(t, b, "--fleet-listen", "127.0.0.1:0", "--join", na.fleetAddr)
	caughtUp("B catches up after a restart")

	// Kill A while it is still appending: the copies hold what they verified, and export.
	done := make(chan struct{})
	go func() {
		defer close(done)
		cmd := exec.Command(siosBin, "--data", a, "audit", "append", "--stdin")
		var in bytes.Buffer
		for i := range 3000 {
			fmt.Fprintf(&in, `{"actor":{"id":"late"},"action":"test.replicate","resource":"late/%d"}`+"\n", i)
		}
		cmd.Stdin = &in
		cmd.Run() // cut short by the kill
	}()
	time.Sleep(300 * time.Millisecond)
	na.cmd.Process.Kill()
	na.cmd.Wait()
	<-done
	nb.stop(t)
	nc.stop(t)
	sizeA := logSize(t, a)
	// All three hold the same history: B's copy against C's, and each against A's log.
	for _, pair := range [][2]string{{b, c}, {b, a}, {c, a}} {
		if out := ok(t, pair[0], "audit", "compare", "--peer", idA, "--with", pair[1]); !strings.Contains(out, "identical up to size") {
			t.Fatalf("%s's copy against %s: %s", pair[0], pair[1], out)
		}
	}
	for _, d := range []string{b, c} {
		copyDir := filepath.Join(d, "replicas", idA)
		sameFiles(t, filepath.Join(a, "ledger", "log"), copyDir)
		bundle := filepath.Join(t.TempDir(), "copy.json")
		ok(t, d, "audit", "export", "--source", idA, "--out", bundle)
		ok(t, "", "audit", "verify", "--bundle", bundle)
	}
	if sizeA < 10800 {
		t.Fatalf("A's log has %d entries", sizeA)
	}
}

func TestReplicationDetectsAFork(t *testing.T) {
	site := newInstitution(t, "a", "b")
	a, b := site.dirs[0], site.dirs[1]
	idA, idB := nodeIDOf(t, a), nodeIDOf(t, b)
	ok(t, a, "audit", "replicas", "add", idB, "--cadence", "200ms")
	appendRecords(t, a, 1000, 0)
	backup := filepath.Join(t.TempDir(), "ledger")
	if err := os.CopyFS(backup, os.DirFS(filepath.Join(a, "ledger"))); err != nil {
		t.Fatal(err)
	}
	appendRecords(t, a, 500, 1000)

	na := startNode(t, a, "--fleet-listen", "127.0.0.1:0")
	nb := startNode(t, b, "--fleet-listen", "127.0.0.1:0", "--join", na.fleetAddr)
	copyState := func() replication.ReplicaStatus {
		for _, s := range replicaStatuses(t, b) {
			if s.NodeID == idA && s.Role == "source" {
				return s
			}
		}
		return replication.ReplicaStatus{}
	}
	eventually(t, 60*time.Second, "B copies A", func() (bool, string) {
		s := copyState()
		return s.State == "ok" && s.Size >= 1500, fmt.Sprintf("%+v", s)
	})
	held := copyState().Size

	// A's operator restores an old copy of its ledger and writes a different history on it.
	fleetAddr := na.fleetAddr
	na.stop(t)
	os.RemoveAll(filepath.Join(a, "ledger"))
	if err := os.CopyFS(filepath.Join(a, "ledger"), os.DirFS(backup)); err != nil {
		t.Fatal(err)
	}
	appendRecords(t, a, 800, 50000)
	na = startNode(t, a, "--fleet-listen", fleetAddr)
	eventually(t, 60*time.Second, "B detects the fork", func() (bool, string) {
		s := copyState()
		return s.State == "forked", fmt.Sprintf("%+v", s)
	})
	time.Sleep(time.Second) // more notifications: replication stays stopped
	if s := copyState(); s.State != "forked" || s.Size != held {
		t.Fatalf("after the fork, B's copy moved: %+v (held %d)", s, held)
	}
	na.stop(t)
	nb.stop(t)
	evidence, _ := filepath.Glob(filepath.Join(b, "replicas", idA, ".replica", "evidence", "*", "*checkpoint"))
	if len(evidence) != 2 {
		t.Fatalf("fork evidence kept: %v", evidence)
	}
	alerts := 0
	for _, r := range ledgerRecords(t, b) {
		if r.Action == "audit.replica-fork" && r.Resource == "node/"+idA {
			alerts++
		}
	}
	if alerts != 1 {
		t.Fatalf("B wrote %d fork alerts, want 1", alerts)
	}
	// The copy as verified before the fork still exports and verifies offline.
	bundle := filepath.Join(t.TempDir(), "copy.json")
	ok(t, b, "audit", "export", "--source", idA, "--out", bundle)
	ok(t, "", "audit", "verify", "--bundle", bundle)
	// The operator acts: replication may resume; the evidence stays.
	ok(t, b, "audit", "replicas", "resume", idA)
	if rep, _, err := replication.OpenCopy(b, idA); err != nil {
		t.Fatal(err)
	} else if halted, _ := rep.Halted(); halted {
		t.Fatal("still halted after resume")
	}
	if again, _ := filepath.Glob(filepath.Join(b, "replicas", idA, ".replica", "evidence", "*", "*checkpoint")); len(again) != 2 {
		t.Fatal("resume removed the evidence")
	}
}
