package tpm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

func TestSimulatorAddrs(t *testing.T) {
	cases := []struct {
		addr, cmd, ctrl, err string
	}{
		{addr: "127.0.0.1:2321", cmd: "127.0.0.1:2321", ctrl: "127.0.0.1:2322"},
		{addr: "127.3.4.5:9000", cmd: "127.3.4.5:9000", ctrl: "127.3.4.5:9001"},
		{addr: "[::1]:2321", cmd: "[::1]:2321", ctrl: "[::1]:2322"},
		{addr: "localhost:2321", cmd: "127.0.0.1:2321", ctrl: "127.0.0.1:2322"},
		{addr: "192.0.2.7:2321", err: "must be a loopback address"},
		{addr: "[2001:db8::1]:2321", err: "must be a loopback address"},
		{addr: "tpm.example.org:2321", err: "must be a loopback address"},
		{addr: "127.0.0.1:65535", err: "port must be 1–65534"},
		{addr: "127.0.0.1:0", err: "port must be 1–65534"},
		{addr: "127.0.0.1:x", err: "port must be 1–65534"},
		{addr: "tpmrm0", err: "neither a device path nor HOST:PORT"},
	}
	for _, c := range cases {
		cmd, ctrl, err := SimulatorAddrs(c.addr)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("SimulatorAddrs(%q) = %v, want an error saying %q", c.addr, err, c.err)
			}
			continue
		}
		if err != nil || cmd != c.cmd || ctrl != c.ctrl {
			t.Errorf("SimulatorAddrs(%q) = %q, %q, %v; want %q, %q", c.addr, cmd, ctrl, err, c.cmd, c.ctrl)
		}
	}
}

func TestOpenRefusesWhatIsNotATPM(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tpm0")
	os.WriteFile(file, nil, 0o600)
	for addr, want := range map[string]string{
		"":                           "no TPM given",
		file:                         "neither a device nor a socket",
		"/nonexistent/tpmrm0":        "no such file",
		"198.51.100.1:2321":          "loopback",
		"127.0.0.1:" + closedPort(t): "connection refused",
	} {
		if _, err := Open(addr); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want an error saying %q", addr, err, want)
		}
	}
}

func closedPort(t *testing.T) string { return fmt.Sprint(freePortPair(t)) }

// A swtpm started without --flags takes no command until it is powered on through its
// control channel; Open does that.
func TestOpenPowersOnASimulator(t *testing.T) {
	sim := startSimulator(t, simOptions{PoweredOff: true})
	tp := sim.open(t)
	key := newNodeKey(t)
	kf, err := tp.Seal(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tp.Unseal(kf); err != nil || !got.Public().Equal(key.Public()) {
		t.Fatalf("unseal on a simulator Open powered on: %v", err)
	}
}

// A client that died without flushing leaves transient objects in a simulator, which
// has room for three; Open flushes them.
func TestOpenFlushesLeftovers(t *testing.T) {
	sim := startSimulator(t, simOptions{})
	for i := 0; i < 3; i++ {
		tp := sim.open(t)
		tp.do(func(tr transport.TPM) error {
			_, err := createSRK(tr) // never flushed
			return err
		})
		tp.Close()
	}
	tp := sim.open(t)
	var n int
	tp.do(func(tr transport.TPM) error {
		rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: uint32(tpm2.TPMHTTransient) << 24, PropertyCount: 64}.Execute(tr)
		if err != nil {
			t.Fatal(err)
		}
		hs, _ := rsp.CapabilityData.Data.Handles()
		n = len(hs.Handle)
		return nil
	})
	if n != 0 {
		t.Fatalf("%d transient objects left after Open", n)
	}
	if _, err := tp.Seal(newNodeKey(t), nil); err != nil {
		t.Fatalf("sealing after earlier clients left objects: %v", err)
	}
}

// swtpm's Unix socket server: Open takes the socket's path.
func TestOpenUnixSocket(t *testing.T) {
	needTool(t, "swtpm")
	dir := t.TempDir()
	sock := filepath.Join(dir, "tpm.sock")
	cmd := exec.Command("swtpm", "socket", "--tpm2", "--tpmstate", "dir="+dir,
		"--server", "type=unixio,path="+sock, "--flags", "not-need-init,startup-clear")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	for i := 0; i < 500; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	tp, err := Open(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	key := newNodeKey(t)
	kf, err := tp.Seal(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if kf.TPM != sock {
		t.Fatalf("key file names TPM %q, want %q", kf.TPM, sock)
	}
	if got, err := tp.Unseal(kf); err != nil || !got.Public().Equal(key.Public()) {
		t.Fatalf("unseal over a Unix socket: %v", err)
	}
}

// A simulator serves one client at a time: a second Open fails within busyTimeout,
// saying why, and leaves the first client's TPM as it was (no power-on reset).
func TestOpenSimulatorInUse(t *testing.T) {
	if testing.Short() {
		t.Skip("waits busyTimeout")
	}
	sim := startSimulator(t, simOptions{})
	first := sim.open(t)
	key := newNodeKey(t)
	extendPCR(t, first, 23, "state the first client relies on")
	kf, err := first.Seal(key, []int{23})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = Open(sim.Addr)
	if err == nil || !strings.Contains(err.Error(), "another process") || time.Since(start) > busyTimeout+2*time.Second {
		t.Fatalf("Open of a simulator in use: %v after %v, want a refusal naming the cause within %v", err, time.Since(start), busyTimeout)
	}
	// Still the same TPM state: PCR 23 was not reset by a power-on.
	if _, err := first.Unseal(kf); err != nil {
		t.Fatalf("the first client's TPM changed under it: %v", err)
	}
}
