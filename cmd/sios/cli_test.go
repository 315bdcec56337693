package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The CLI tests drive the real binary, built once, as an operator's shell would.
var siosBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sios-cli-test-")
	if err != nil {
		panic(err)
	}
	siosBin = filepath.Join(dir, "sios")
	build := exec.Command("go", "build", "-o", siosBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic("building sios: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// sios runs the binary with --data dir and the given arguments.
func sios(t *testing.T, dir string, args ...string) result {
	t.Helper()
	cmd := exec.Command(siosBin, append([]string{"--data", dir}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run sios %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// ok runs sios and fails the test unless it exits 0.
func ok(t *testing.T, dir string, args ...string) string {
	t.Helper()
	r := sios(t, dir, args...)
	if r.code != 0 {
		t.Fatalf("sios %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs sios, expects exit code want, and one 'sios: error:' line mentioning each of msgs.
func fails(t *testing.T, want int, dir string, args []string, msgs ...string) result {
	t.Helper()
	r := sios(t, dir, args...)
	if r.code != want {
		t.Fatalf("sios %v: exit %d, want %d\nstdout: %s\nstderr: %s", args, r.code, want, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "sios: error: ") {
		t.Fatalf("sios %v: no 'sios: error:' line in stderr: %s", args, r.stderr)
	}
	for _, m := range msgs {
		if !strings.Contains(r.stderr, m) {
			t.Fatalf("sios %v: stderr does not mention %q:\n%s", args, m, r.stderr)
		}
	}
	return r
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	return v
}

func initNode(t *testing.T, args ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	ok(t, dir, append([]string{"init", "--name", "test"}, args...)...)
	return dir
}

// TestHelpListsEveryCommand runs every command's and subcommand's help through the
// binary: each command 'sios help' lists exists and answers -h.
func TestHelpListsEveryCommand(t *testing.T) {
	dir := t.TempDir()
	help := ok(t, dir, "help")
	for _, c := range commands() {
		if !strings.Contains(help, "\n  "+c.name+" ") {
			t.Errorf("sios help does not list %s", c.name)
		}
		r := sios(t, dir, c.name, "-h")
		if r.code != 0 && r.code != 2 || !strings.Contains(r.stdout+r.stderr, "Usage: sios") && !strings.Contains(r.stdout+r.stderr, "usage: sios") {
			t.Errorf("sios %s -h: exit %d\n%s%s", c.name, r.code, r.stdout, r.stderr)
		}
	}
	benchHelp := ok(t, dir, "bench", "help")
	for _, c := range benchCommands() {
		if !strings.Contains(benchHelp, "\n  "+c.name+" ") {
			t.Errorf("sios bench help does not list %s", c.name)
		}
	}
}
