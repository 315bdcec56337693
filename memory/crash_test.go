package memory

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sios-project/sios/policy"
)

// The crash test re-runs this test binary as a child that forgets a subject and is
// killed with SIGKILL at a chosen point; the parent then reopens the store.
const (
	crashDirEnv = "SIOS_MEMORY_CRASH_DIR"
	crashAtEnv  = "SIOS_MEMORY_CRASH_AT"
)

// TestForgetCrashChild is the child's side; it does nothing in a normal test run.
func TestForgetCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by TestForgetCrash")
	}
	at := os.Getenv(crashAtEnv)
	s, err := Open(dir, Options{})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(3)
	}
	s.hook = func(point string) {
		if point == at {
			fmt.Println("AT", point)
			time.Sleep(time.Hour) // wait for SIGKILL
		}
	}
	fmt.Println("START")
	if _, err := s.Forget(context.Background(), secretTenant, secretSubject); err != nil {
		fmt.Println("ERROR", err)
		os.Exit(3)
	}
	fmt.Println("DONE")
	time.Sleep(time.Hour)
}

func TestForgetCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	base := t.TempDir()
	s := openStore(t, base)
	fill(t, s, secretTenant, 2000, 50, newTextGen(21))
	for i, text := range secretTexts {
		if _, err := s.Add(context.Background(), NewMemory{Tenant: secretTenant, Subject: secretSubject, Classification: policy.Levels()[i%4], Source: secretSource, Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	type outcome int
	const (
		untouched outcome = iota + 1
		forgotten
		either
	)
	tests := []struct {
		name  string
		at    string        // hook point, or "" to kill after delay
		delay time.Duration // after START, when at is ""
		want  outcome
	}{
		{name: "inside the transaction", at: "forget-before-commit", want: untouched},
		{name: "after commit, before purge", at: "forget-committed", want: forgotten},
		{name: "after optimize", at: "purge-optimized", want: forgotten},
		{name: "after checkpoint", at: "purge-checkpointed", want: forgotten},
		{name: "after scrub", at: "purge-scrubbed", want: forgotten},
	}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for i := 0; i < 6; i++ {
		d := time.Duration(r.IntN(6_000)) * time.Microsecond
		tests = append(tests, struct {
			name  string
			at    string
			delay time.Duration
			want  outcome
		}{name: fmt.Sprintf("after %v", d), delay: d, want: either})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, base, dir)
			cmd := exec.Command(os.Args[0], "-test.run=^TestForgetCrashChild$")
			cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashAtEnv+"="+tc.at)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			lines := bufio.NewScanner(stdout)
			waitFor := func(prefix string) {
				t.Helper()
				for lines.Scan() {
					if strings.HasPrefix(lines.Text(), "ERROR") {
						cmd.Process.Kill()
						t.Fatalf("child: %s", lines.Text())
					}
					if strings.HasPrefix(lines.Text(), prefix) {
						return
					}
				}
				cmd.Process.Kill()
				t.Fatalf("child exited before %q", prefix)
			}
			if tc.at != "" {
				waitFor("AT " + tc.at)
			} else {
				waitFor("START")
				time.Sleep(tc.delay)
			}
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()

			s := openStore(t, dir) // completes an interrupted purge
			defer s.Close()
			ctx := context.Background()
			res, err := s.Search(ctx, Query{Tenant: secretTenant, Subject: secretSubject, Clearance: policy.TopSecret, Text: "Zanzibar Glorbifex Halcyon"})
			if err != nil {
				t.Fatal(err)
			}
			e, expErr := s.Export(ctx, secretTenant, secretSubject)
			// Whatever the outcome, every other subject's memories are there and readable.
			var others int
			if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM memories WHERE subject != ?", secretSubject).Scan(&others); err != nil || others != 2000 {
				t.Fatalf("after crash and reopen: %d memories of other subjects (%v), want the 2000 added", others, err)
			}
			if o, err := s.Export(ctx, secretTenant, "subject-00007"); err != nil || len(o.Memories) != 2000/50 {
				t.Fatalf("after crash and reopen: export of another subject: %v", err)
			}
			checkIntegrity(t, s)
			got := untouched
			switch {
			case len(res) == 0 && errors.Is(expErr, ErrUnknownSubject):
				got = forgotten
			case len(res) == len(secretTexts) && expErr == nil && len(e.Memories) == len(secretTexts):
				for i, m := range e.Memories {
					if m.Text != secretTexts[i] {
						t.Fatalf("memory %d after crash: %q", i, m.Text)
					}
				}
			default:
				t.Fatalf("half state after crash: %d search results, export %v", len(res), expErr)
			}
			if tc.want != either && got != tc.want {
				t.Fatalf("outcome %d, want %d", got, tc.want)
			}
			if got == forgotten {
				needles := map[string][][]byte{"plaintext run": needlesFor(secretTexts...), "subject": {[]byte(secretSubject)}, "source": {[]byte(secretSource)}}
				for _, hit := range traces(t, dir, needles) {
					t.Errorf("after crash and reopen: %s", hit)
				}
				if st, err := s.Stats(ctx); err != nil || st.PurgePending {
					t.Errorf("purge still pending after Open: %+v %v", st, err)
				}
			}
			t.Logf("outcome: %v", map[outcome]string{untouched: "untouched", forgotten: "forgotten"}[got])
		})
	}
}
