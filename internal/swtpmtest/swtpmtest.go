// Package swtpmtest runs swtpm, a real TPM 2.0 simulator (libtpms), for tests: one
// process per simulated TPM, on a free pair of loopback ports, stopped when the test
// ends. Tests skip when swtpm is not installed, except in CI (CI set), which installs
// it (.ci/run) and so must not skip.
//
// It speaks to a simulator only to extend a PCR (ExtendPCR); everything else a test
// does with the TPM goes through package identity/tpm, which this package does not
// import (that package's own tests use it).
package swtpmtest

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
)

// Simulator is one swtpm process and its state.
type Simulator struct {
	// Addr is HOST:PORT of its command channel; the control channel is PORT+1. It
	// changes when the simulator is restarted.
	Addr string
	// State is its --tpmstate directory.
	State string
	// CAPEM holds the EK CA certificates (root and issuer) when it was manufactured
	// with an EK certificate (Options.EKCert).
	CAPEM []byte

	cmd   *exec.Cmd
	flags bool
}

// Options says how to make a simulator.
type Options struct {
	// EKCert manufactures the TPM with swtpm_setup: persisted EKs and their
	// certificates in NV, issued by a CA made for this simulator alone.
	EKCert bool
	// PoweredOff starts swtpm without --flags: it must be initialised through its
	// control channel before it takes commands, as identity/tpm.Open does.
	PoweredOff bool
}

// NeedTool skips the test when tool is not installed, or fails it in CI.
func NeedTool(t testing.TB, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		msg := fmt.Sprintf("%s is not installed: these tests run the TPM 2.0 simulator swtpm (Debian: apt-get install swtpm swtpm-tools)", tool)
		if os.Getenv("CI") != "" {
			t.Fatal(msg + "; CI installs it in .ci/run")
		}
		t.Skip(msg)
	}
}

// Start starts a fresh TPM for the test; it is stopped when the test ends.
func Start(t testing.TB, opt Options) *Simulator {
	t.Helper()
	NeedTool(t, "swtpm")
	s := &Simulator{State: t.TempDir(), flags: !opt.PoweredOff}
	if opt.EKCert {
		NeedTool(t, "swtpm_setup")
		s.manufacture(t)
	}
	s.start(t)
	return s
}

// manufacture runs swtpm_setup with a local CA of its own (not the system's
// /var/lib/swtpm-localca), so each simulator's EK certificates have their own issuer.
func (s *Simulator) manufacture(t testing.TB) {
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
	out, err := exec.Command("swtpm_setup", "--tpm2", "--tpmstate", s.State, "--create-ek-cert",
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
		s.CAPEM = append(s.CAPEM, b...)
	}
}

// start runs swtpm on a free pair of loopback ports (retrying if another process took
// them between the check and the bind).
func (s *Simulator) start(t testing.TB) {
	t.Helper()
	var last string
	for attempt := 0; attempt < 5; attempt++ {
		port := FreePortPair(t)
		args := []string{"socket", "--tpm2", "--tpmstate", "dir=" + s.State,
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
			s.Addr, s.cmd = addr, cmd
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

// Restart stops the simulator and starts it again on its state (a reboot: PCRs and
// transient objects are gone, seeds and NV stay). Its Addr changes.
func (s *Simulator) Restart(t testing.TB) {
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

// FreePortPair returns a port P on 127.0.0.1 such that P and P+1 are free now.
func FreePortPair(t testing.TB) int {
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

// ExtendPCR extends the SHA-256 bank of pcr with SHA-256(data), as a boot component
// being measured would. It opens its own connection to the command channel, so no
// other client may hold the simulator (a simulator started with PoweredOff must have
// been powered on by one first).
func (s *Simulator) ExtendPCR(t testing.TB, pcr int, data string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	if err != nil {
		t.Fatalf("extending PCR %d: %v", pcr, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	d := sha256.Sum256([]byte(data))
	_, err = tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: d[:]}}},
	}.Execute(rawTPM{conn})
	if err != nil {
		t.Fatalf("extending PCR %d: %v", pcr, err)
	}
}

// rawTPM carries one TPM command at a time over swtpm's command channel: the command
// bytes, answered by a response that announces its length in its header.
type rawTPM struct{ conn net.Conn }

func (r rawTPM) Send(cmd []byte) ([]byte, error) {
	if _, err := r.conn.Write(cmd); err != nil {
		return nil, err
	}
	var hdr [10]byte
	if _, err := io.ReadFull(r.conn, hdr[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(hdr[2:6])
	if size < 10 || size > 64<<10 {
		return nil, fmt.Errorf("TPM response announces %d bytes", size)
	}
	rsp := make([]byte, size)
	copy(rsp, hdr[:])
	if _, err := io.ReadFull(r.conn, rsp[10:]); err != nil {
		return nil, err
	}
	return rsp, nil
}
