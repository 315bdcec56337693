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

	"github.com/sios-project/sios/node"
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

func replicaStatuses(t *testing.T, dir string) []node.ReplicaStatus {
	t.Helper()
	return decode[[]node.ReplicaStatus](t, ok(t, dir, "audit", "replicas", "--json"))
}

func logSize(t *testing.T, dir string) uint64 {
	t.Helper()
	return openTestReader(t, dir).Size()
}

// sameFiles requires every file of the copy to be the source's file at that path, byte
// for byte, and the copy to hold the source's checkpoint. (The source may also hold
// partial tiles it has since completed: they are not part of the log at its checkpoint.)
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
		if d.IsDir() {
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
	var fromB *node.ReplicaStatus
	for _, s := range replicaStatuses(t, b) {
		if s.NodeID == idA && s.Role == "source" {
			fromB = &s
		}
	}
	if fromB == nil || fromB.State != "ok" {
		t.Fatalf("B does not report its copy of A: %+v", replicaStatuses(t, b))
	}

	// Stop B, keep appending on A, restart B: it catches up and nothing is lost.
	nb.stop(t)
	appendRecords(t, a, 300, 10500)
	nb = startNode(t, b, "--fleet-listen", "127.0.0.1:0", "--join", na.fleetAddr)
	caughtUp("B catches up after a restart")

	na.stop(t)
	nb.stop(t)
	nc.stop(t)
	sizeA := logSize(t, a)
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
