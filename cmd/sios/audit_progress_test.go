package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/ledger"
)

// A progress line: "\r<what>: D of T entries (P%)…", the last one at T of T.
var progressRe = regexp.MustCompile(`\r([a-z ]+): (\d+) of (\d+) entries \((\d+)%\)`)

// lastProgress returns the figures of the last progress line of what in stderr.
func lastProgress(t *testing.T, stderr, what string) (done, total string) {
	t.Helper()
	var found bool
	for _, m := range progressRe.FindAllStringSubmatch(stderr, -1) {
		if m[1] == what {
			done, total, found = m[2], m[3], true
		}
	}
	if !found {
		t.Fatalf("no %q progress on stderr:\n%q", what, stderr)
	}
	return done, total
}

// 'audit verify' and 'audit export' show progress on stderr with --progress, and not
// otherwise when stderr is not a terminal; stdout is byte-identical either way
// (issue 18, item 4).
func TestAuditProgressOnlyOnStderr(t *testing.T) {
	dir := initNode(t)
	appendRecords(t, dir, 3000, 0)
	out := filepath.Join(t.TempDir(), "bundle.json")

	for _, c := range []struct {
		args []string
		what []string // the progress lines --progress shows
	}{
		{[]string{"audit", "verify"}, []string{"verifying"}},
		{[]string{"audit", "verify", "--json"}, []string{"verifying"}},
		{[]string{"audit", "export", "--out", out}, []string{"exporting", "checking the bundle"}},
		{[]string{"audit", "verify", "--bundle", out}, []string{"verifying the bundle"}},
		{[]string{"audit", "verify", "--bundle", out, "--json"}, []string{"verifying the bundle"}},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			plain := sios(t, dir, c.args...)
			if plain.code != 0 || plain.stderr != "" {
				t.Fatalf("without --progress, stderr not a terminal: exit %d, stderr %q", plain.code, plain.stderr)
			}
			off := sios(t, dir, append(c.args, "--progress=false")...)
			if off.code != 0 || off.stderr != "" || off.stdout != plain.stdout {
				t.Fatalf("--progress=false: exit %d, stderr %q, stdout %q", off.code, off.stderr, off.stdout)
			}
			on := sios(t, dir, append(c.args, "--progress")...)
			if on.code != 0 {
				t.Fatalf("--progress: exit %d\n%s", on.code, on.stderr)
			}
			if on.stdout != plain.stdout {
				t.Fatalf("--progress changed stdout:\n%q\nwithout it:\n%q", on.stdout, plain.stdout)
			}
			if strings.Contains(on.stdout, "\r") || progressRe.MatchString(on.stdout) {
				t.Fatalf("progress on stdout: %q", on.stdout)
			}
			for _, what := range c.what {
				done, total := lastProgress(t, on.stderr, what)
				if done != total || total == "0" {
					t.Fatalf("%s ends at %s of %s:\n%q", what, done, total, on.stderr)
				}
			}
			// One updating line per operation: carriage returns redraw it, and the
			// operation ends it with one newline.
			if n := strings.Count(on.stderr, "\n"); n != len(c.what) {
				t.Fatalf("%d lines of progress, want %d:\n%q", n, len(c.what), on.stderr)
			}
		})
	}
	// The total the verification reports is the log's.
	res := decode[map[string]any](t, ok(t, dir, "audit", "verify", "--json"))
	_, total := lastProgress(t, sios(t, dir, "audit", "verify", "--progress").stderr, "verifying")
	if want := fmt.Sprint(res["checkpoint_size"]); total != want {
		t.Fatalf("verification progress counts %s entries, the log has %s", total, want)
	}

	// A verification that fails ends its line before the error, which starts on
	// its own line.
	bad := filepath.Join(t.TempDir(), "data")
	if out, err := exec.Command("cp", "-a", dir, bad).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	path := filepath.Join(bad, "ledger", "log", "tile", "entries", "001")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-2] ^= 1
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	failed := sios(t, bad, "audit", "verify", "--progress")
	if failed.code != 1 || failed.stdout != "" || !progressRe.MatchString(failed.stderr) || !strings.Contains(failed.stderr, "\nsios: error: audit log verification failed: entry 5") {
		t.Fatalf("verify of an altered log: exit %d\nstdout %q\nstderr %q", failed.code, failed.stdout, failed.stderr)
	}
}

// With --progress unset the line shows only on a terminal; the flag decides when set.
func TestProgressWantedOnTerminalsOnly(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for _, c := range []struct {
		args []string
		out  any
		want bool
	}{
		{nil, w, false},
		{nil, &bytes.Buffer{}, false},
		{[]string{"--progress"}, w, true},
		{[]string{"--progress=true"}, &bytes.Buffer{}, true},
		{[]string{"--progress=false"}, w, false},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		f := addProgressFlag(fs)
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		if got := f.wanted(c.out.(interface{ Write([]byte) (int, error) })); got != c.want {
			t.Errorf("%v to %T: progress %v, want %v", c.args, c.out, got, c.want)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(&bytes.Buffer{})
	addProgressFlag(fs)
	if err := fs.Parse([]string{"--progress=maybe"}); err == nil {
		t.Fatal("--progress=maybe is accepted")
	}
}

// The line is redrawn at most every progressRedraw, but always for the start and
// the end, and a shorter line blanks what a longer one left.
func TestProgressLineIsThrottled(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	l := &progressLine{w: &buf, what: "verifying", now: func() time.Time { return now }, started: now}
	draw := l.report()
	draw(ledger.Progress{Done: 0, Total: 100000})
	for done := uint64(256); done < 100000; done += 256 {
		now = now.Add(time.Millisecond)
		draw(ledger.Progress{Done: done, Total: 100000, Files: done / 128, Bytes: done * 400})
	}
	draw(ledger.Progress{Done: 100000, Total: 100000, Files: 782, Bytes: 40_000_000})
	l.done()
	s := buf.String()
	// 390 reports over 390 ms: the start, about one every 100 ms, and the end.
	if n := strings.Count(s, "\r"); n < 4 || n > 7 {
		t.Fatalf("%d redraws:\n%q", n, s)
	}
	if !strings.HasSuffix(s, "\rverifying: 100000 of 100000 entries (100%), 782 files, 38.1 MiB read\n") {
		t.Fatalf("the last line: %q", s)
	}
	parts := strings.Split(strings.TrimSuffix(s, "\n"), "\r")[1:]
	for k := 1; k < len(parts); k++ {
		if len(parts[k]) < len(parts[k-1]) {
			t.Fatalf("redraw %d is shorter than the one before and leaves its end behind: %q", k, s)
		}
	}
}
