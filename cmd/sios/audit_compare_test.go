package main

import (
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// exportBundle writes an evidence bundle of the log in dir (audit export args) and
// returns its path.
func exportBundle(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bundle.json")
	ok(t, dir, append([]string{"audit", "export", "--out", out}, args...)...)
	return out
}

// copyDataDir copies a data directory as an operator's backup would: the copy is the
// same node, and may go on to write another history.
func copyDataDir(t *testing.T, dir string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", dir, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return dst
}

func rootOf(t *testing.T, dir string) string {
	t.Helper()
	return hex.EncodeToString(openTestReader(t, dir).Checkpoint().Root)
}

// TestAuditCompareBundles: one log exported twice, at two sizes, and a copy of its data
// directory that went on to write another history after size n.
func TestAuditCompareBundles(t *testing.T) {
	a := initNode(t)
	appendRecords(t, a, 300, 0)
	n := logSize(t, a)
	short, rootShort := exportBundle(t, a), rootOf(t, a)
	b := copyDataDir(t, a)
	appendRecords(t, a, 100, 300)
	appendRecords(t, b, 100, 1000)
	full, forked := exportBundle(t, a), exportBundle(t, b)

	t.Run("identical", func(t *testing.T) {
		out := ok(t, "", "audit", "compare", "--bundle", full, "--bundle", exportBundle(t, a))
		if want := fmt.Sprintf("identical up to size %d (root %s)\n", logSize(t, a), rootOf(t, a)); !strings.HasPrefix(out, want) {
			t.Fatalf("compare said %q, want %q", out, want)
		}
	})
	t.Run("longer and shorter", func(t *testing.T) {
		for _, args := range [][]string{{full, short}, {short, full}} {
			out := ok(t, "", "audit", "compare", "--bundle", args[0], "--bundle", args[1])
			if want := fmt.Sprintf("identical up to size %d (root ", n); !strings.HasPrefix(out, want) {
				t.Fatalf("compare said %q, want %q", out, want)
			}
		}
	})
	t.Run("divergent", func(t *testing.T) {
		r := fails(t, 1, "", []string{"audit", "compare", "--bundle", full, "--bundle", forked},
			fmt.Sprintf("first divergence at index %d: bundle %s holds a record of test.replicate", n, full), "bundle "+forked+" holds a record", "hash ")
		if r.stdout != "" {
			t.Fatalf("a divergence printed %q on stdout", r.stdout)
		}
	})
	t.Run("json", func(t *testing.T) {
		out := decode[map[string]any](t, ok(t, "", "audit", "compare", "--bundle", full, "--bundle", short, "--json"))
		if len(out) != 5 || out["identical"] != true || out["common_size"] != float64(n) || out["root"] != rootShort ||
			out["first_divergence"] != nil || out["reason"] == "" {
			t.Fatalf("compare --json: %v", out)
		}
		r := sios(t, "", "audit", "compare", "--bundle", full, "--bundle", forked, "--json")
		out = decode[map[string]any](t, r.stdout)
		if r.code != 1 || r.stderr != "" || len(out) != 5 || out["identical"] != false || out["first_divergence"] != float64(n) || out["root"] != nil ||
			!strings.Contains(out["reason"].(string), fmt.Sprintf("first divergence at index %d", n)) {
			t.Fatalf("compare --json of forked bundles: exit %d, %v, stderr %q", r.code, out, r.stderr)
		}
	})
	t.Run("different nodes", func(t *testing.T) {
		other := initNode(t)
		appendRecords(t, other, 5, 0)
		fails(t, 1, "", []string{"audit", "compare", "--bundle", full, "--bundle", exportBundle(t, other)},
			"only bundles of one node's log can be compared")
	})
	t.Run("tampered", func(t *testing.T) {
		raw, err := os.ReadFile(full)
		if err != nil {
			t.Fatal(err)
		}
		bad := filepath.Join(t.TempDir(), "tampered.json")
		os.WriteFile(bad, []byte(strings.Replace(string(raw), "item/7", "item/8", 1)), 0o644)
		fails(t, 1, "", []string{"audit", "compare", "--bundle", full, "--bundle", bad}, "bundle "+bad+" failed verification: entry ")
	})
	t.Run("no shared entry", func(t *testing.T) {
		fails(t, 1, "", []string{"audit", "compare", "--bundle", exportBundle(t, a, "--to", "50"), "--bundle", exportBundle(t, a, "--from", "200")},
			"they share no entry")
	})
	t.Run("usage", func(t *testing.T) {
		fails(t, 2, "", []string{"audit", "compare", "--bundle", full}, "exactly two --bundle")
		fails(t, 2, "", []string{"audit", "compare"}, "needs --bundle A --bundle B, or --peer NODEID [--with DIR2]")
		fails(t, 1, filepath.Join(t.TempDir(), "none"), []string{"audit", "compare", "--peer", "x"}, "no node is running")
	})
}

// TestAuditComparePeer: a replica's copy, made by two running nodes, against the
// source's own log (while both run, and offline), and against a backup of the source
// that went on to write another history.
func TestAuditComparePeer(t *testing.T) {
	site := newInstitution(t, "a", "b")
	a, b := site.dirs[0], site.dirs[1]
	idA, idB := nodeIDOf(t, a), nodeIDOf(t, b)
	ok(t, a, "audit", "replicas", "add", idB, "--cadence", "200ms")
	appendRecords(t, a, 300, 0)
	forked := copyDataDir(t, a)
	n := logSize(t, a)
	appendRecords(t, a, 50, 300)
	sizeA := logSize(t, a)

	na := startNode(t, a, "--fleet-listen", "127.0.0.1:0")
	nb := startNode(t, b, "--fleet-listen", "127.0.0.1:0", "--join", na.fleetAddr)
	eventually(t, 60*time.Second, "B keeps a copy of A's log", func() (bool, string) {
		st := replicaStatuses(t, a)
		for _, s := range st {
			if s.Role == "replica" && s.NodeID == idB && s.State == "ok" && s.LagRecords == 0 && s.Size >= sizeA {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", st)
	})
	// Read-only beside both running nodes.
	if out := ok(t, b, "audit", "compare", "--peer", idA, "--with", a); !strings.HasPrefix(out, "identical up to size ") {
		t.Fatalf("compare said %q", out)
	}
	na.stop(t)
	nb.stop(t)

	copySize := decode[map[string]any](t, ok(t, b, "audit", "compare", "--peer", idA, "--with", a, "--json"))
	if copySize["identical"] != true || copySize["common_size"].(float64) < float64(sizeA) || copySize["first_divergence"] != nil {
		t.Fatalf("compare --json: %v", copySize)
	}
	// Either side may be the source's own data directory.
	ok(t, a, "audit", "compare", "--peer", idA, "--with", b)

	appendRecords(t, forked, 20, 5000)
	fails(t, 1, b, []string{"audit", "compare", "--peer", idA, "--with", forked},
		fmt.Sprintf("first divergence at index %d: %s holds a record", n, filepath.Join(b, "replicas", idA)),
		filepath.Join(forked, "ledger")+" holds a record")

	fails(t, 1, a, []string{"audit", "compare", "--peer", idB, "--with", b}, "keeps no copy of its log")
	fails(t, 2, b, []string{"audit", "compare", "--peer", idA, "--with", b}, "name the same copy")
}
