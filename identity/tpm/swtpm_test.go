package tpm

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tests run swtpm, a real TPM 2.0 simulator (libtpms), one per test TPM, on
// loopback ports. They skip when swtpm is not installed, except in CI (CI set), which
// installs it (.ci/run) and so must not skip.

// simulator is one swtpm process and its state.
type simulator struct {
	addr  string // HOST:PORT of its command channel; the control channel is PORT+1
	state string // --tpmstate directory
	caPEM []byte // EK CA certificates (root and issuer) when manufactured with an EK certificate
	cmd   *exec.Cmd
	flags bool
}

type simOptions struct {
	// ekCert manufactures the TPM with swtpm_setup: persisted EKs and their
	// certificates in NV, issued by a CA made for this simulator alone.
	ekCert bool
	// poweredOff starts swtpm without --flags: it must be initialised through its
	// control channel before it takes commands, as Open does.
	poweredOff bool
}

func needTool(t testing.TB, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		msg := fmt.Sprintf("%s is not installed: these tests run the TPM 2.0 simulator swtpm (Debian: apt-get install swtpm swtpm-tools)", tool)
		if os.Getenv("CI") != "" {
			t.Fatal(msg + "; CI installs it in .ci/run")
		}
		t.Skip(msg)
	}
}

// startSimulator starts a fresh TPM for the test; it is stopped when the test ends.
func startSimulator(t testing.TB, opt simOptions) *simulator {
	t.Helper()
	needTool(t, "swtpm")
	s := &simulator{state: t.TempDir(), flags: !opt.poweredOff}
	if opt.ekCert {
		needTool(t, "swtpm_setup")
		s.manufacture(t)
	}
	s.start(t)
	return s
}

// manufacture runs swtpm_setup with a local CA of its own (not the system's
// /var/lib/swtpm-localca), so each simulator's EK certificates have their own issuer.
func (s *simulator) manufacture(t testing.TB) {
	t.Helper()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	if err := os.Mkdir(ca, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"localca.conf":     fmt.Sprintf("statedir = %[1]s\nsigningkey = %[1]s/signkey.pem\nissuercert = %[1]s/issuercert.pem\ncertserial = %[1]s/certserial\n", ca),
		"localca.options":  "--platform-manufacturer sios-test\n--platform-version 2.1\n--platform-model swtpm\n",
		"swtpm_setup.conf": fmt.Sprintf("create_certs_tool = swtpm_localca\ncreate_certs_tool_config = %[1]s/localca.conf\ncreate_certs_tool_options = %[1]s/localca.options\nactive_pcr_banks = sha256\n", dir),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("swtpm_setup", "--tpm2", "--tpmstate", s.state, "--create-ek-cert",
		"--config", filepath.Join(dir, "swtpm_setup.conf"), "--logfile", filepath.Join(dir, "setup.log")).CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "setup.log"))
		t.Fatalf("swtpm_setup: %v\n%s\n%s", err, out, log)
	}
	for _, name := range []string{"swtpm-localca-rootca-cert.pem", "issuercert.pem"} {
		b, err := os.ReadFile(filepath.Join(ca, name))
		if err != nil {
			t.Fatalf("swtpm_setup made no EK CA: %v", err)
		}
		s.caPEM = append(s.caPEM, b...)
	}
}

// start runs swtpm on a free pair of loopback ports (retrying if another process took
// them between the check and the bind).
func (s *simulator) start(t testing.TB) {
	t.Helper()
	var last string
	for attempt := 0; attempt < 5; attempt++ {
		port := freePortPair(t)
		args := []string{"socket", "--tpm2", "--tpmstate", "dir=" + s.state,
			"--server", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port),
			"--ctrl", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port+1)}
		if s.flags {
			args = append(args, "--flags", "not-need-init,startup-clear")
		}
		cmd := exec.Command("swtpm", args...)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting swtpm: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if waitListening(addr, exited) {
			s.addr, s.cmd = addr, cmd
			t.Cleanup(func() {
				cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(5 * time.Second):
					cmd.Process.Kill()
					<-exited
				}
			})
			return
		}
		cmd.Process.Kill()
		<-exited
		last = out.String()
	}
	t.Fatalf("swtpm did not start: %s", last)
}

// restart stops the simulator and starts it again on its state (a reboot: PCRs and
// transient objects are gone, seeds and NV stay).
func (s *simulator) restart(t testing.TB) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	for i := 0; i < 500; i++ {
		if err := s.cmd.Process.Signal(syscall.Signal(0)); err != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.start(t)
}

func waitListening(addr string, exited <-chan struct{}) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// freePortPair returns a port P on 127.0.0.1 such that P and P+1 are free now.
func freePortPair(t testing.TB) int {
	t.Helper()
	for i := 0; i < 100; i++ {
		l1, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l1.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1))
		l1.Close()
		if err != nil {
			continue
		}
		l2.Close()
		return p
	}
	t.Fatal("no free pair of loopback ports")
	return 0
}

// open opens the simulator's TPM for the test.
func (s *simulator) open(t testing.TB) *TPM {
	t.Helper()
	tp, err := Open(s.addr)
	if err != nil {
		t.Fatalf("Open(%s): %v", s.addr, err)
	}
	t.Cleanup(func() { tp.Close() })
	return tp
}
