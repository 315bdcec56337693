package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The systemd unit in deploy/ is what an operator installs: systemd accepts it, rates
// its sandbox at or below 2.0 exposure, and the node starts from its ExecStart line,
// reloads on its ExecReload signal and stops cleanly on its KillSignal.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	unit, err := os.ReadFile(filepath.Join("..", "..", "deploy", "sios.service"))
	if err != nil {
		t.Fatal(err)
	}
	var execStart []string
	for _, line := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			execStart = strings.Fields(v)
		}
	}
	if len(execStart) < 4 || execStart[0] != "/usr/local/bin/sios" || execStart[1] != "--data" || execStart[3] != "up" {
		t.Fatalf("ExecStart is not 'sios --data DIR up …': %q", execStart)
	}
	for _, want := range []string{"ExecReload=/bin/kill -HUP $MAINPID", "KillSignal=SIGTERM", "StateDirectory=sios", "NoNewPrivileges=yes", "ProtectSystem=strict", "User=sios"} {
		if !strings.Contains(string(unit), want+"\n") {
			t.Errorf("the unit lacks %s", want)
		}
	}
	if analyze, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Log("systemd-analyze is not installed: the unit is not checked by systemd")
	} else {
		local := filepath.Join(t.TempDir(), "sios.service")
		if err := os.WriteFile(local, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/sios", siosBin)), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(analyze, "verify", local).CombinedOutput(); err != nil {
			t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
		}
		if out, err := exec.Command(analyze, "security", "--offline=yes", "--threshold=20", local).CombinedOutput(); err != nil {
			t.Fatalf("the unit's sandbox rates above 2.0: %v\n%s", err, out)
		}
	}
	// The node, started with the unit's own arguments (its own data directory and a
	// free port), reloads on SIGHUP and stops on SIGTERM (stop fails the test otherwise).
	args := execStart[4:]
	for i := 1; i < len(args); i++ {
		if args[i-1] == "--listen" {
			args[i] = "127.0.0.1:0"
		}
	}
	dir := initNode(t)
	n := startNode(t, dir, args...)
	writeFile(t, dir, "brains/tumour-board.yaml", tumourBrain)
	chief := n.addPrincipal(t, "default", "chief", "TOP-SECRET")
	n.cmd.Process.Signal(syscall.SIGHUP)
	eventually(t, 10*time.Second, "the reload", func() (bool, string) {
		_, out := n.get(t, chief, "/v1/models")
		return strings.Contains(out, `"tumour-board"`), out
	})
	n.stop(t)
}
