package consent

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The crash test re-runs this test binary as a child that uses a grant again and again,
// printing each use once Use has returned (the moment a node would release data), and
// kills it with SIGKILL; the parent then reopens the store. Every acknowledged use must
// be on disk, and at most the one in flight besides.
const crashDirEnv = "SIOS_CONSENT_CRASH_DIR"

// TestUseCrashChild is the child's side; it does nothing in a normal test run.
func TestUseCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by TestUseSurvivesKill")
	}
	fx := newFixture()
	s, err := OpenStore(dir, fx.hospital.signer())
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(3)
	}
	id := fx.memoryGrant().ID
	for {
		e, err := s.Use(id, t0)
		if err != nil {
			fmt.Println("ERROR", err)
			os.Exit(3)
		}
		fmt.Println("USED", e.Used)
	}
}

func TestUseSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	fx := newFixture()
	dir := t.TempDir()
	s := openStore(t, fx, dir)
	addGrant(t, fx, s, fx.memoryGrant()) // no use count
	acked := 0
	for round, killAfter := range []int{1, 2, 5, 13, 40} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestUseCrashChild$", "-test.v")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		seen := 0
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "ERROR") {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("round %d: child: %s", round, line)
			}
			n, ok := strings.CutPrefix(line, "USED ")
			if !ok {
				continue
			}
			if acked, err = strconv.Atoi(n); err != nil {
				t.Fatal(err)
			}
			if seen++; seen == killAfter {
				// The child keeps using while the signal is on its way: kill lands mid-write.
				cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
		for sc.Scan() { // uses acknowledged before the signal landed
			if n, ok := strings.CutPrefix(sc.Text(), "USED "); ok {
				acked, _ = strconv.Atoi(n)
			}
		}
		cmd.Wait()
		time.Sleep(time.Millisecond)

		s2 := openStore(t, fx, dir)
		e, err := s2.Get(fx.memoryGrant().ID)
		if err != nil {
			t.Fatalf("round %d: after the kill: %v", round, err)
		}
		if e.Used < acked || e.Used > acked+1 {
			t.Fatalf("round %d: the store records %d uses after %d were acknowledged", round, e.Used, acked)
		}
		acked = e.Used
		names, _ := os.ReadDir(filepath.Join(dir, Dir))
		for _, n := range names {
			if strings.Contains(n.Name(), ".tmp") {
				t.Fatalf("round %d: reopening left the temporary file %s", round, n.Name())
			}
		}
	}
	t.Logf("%d uses survived five kills", acked)
}
