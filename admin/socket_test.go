package admin

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The helper process: when the test binary runs with SIOS_ADMIN_HELPER set, it acts as
// another local user's process — it listens on, or dials, the socket it is given.
func TestMain(m *testing.M) {
	switch os.Getenv("SIOS_ADMIN_HELPER") {
	case "listen":
		ln, err := net.Listen("unix", os.Getenv("SIOS_ADMIN_SOCKET"))
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("listening")
		for {
			c, err := ln.Accept()
			if err != nil {
				os.Exit(0)
			}
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"))
			c.Close()
		}
	case "dial":
		c, err := net.Dial("unix", os.Getenv("SIOS_ADMIN_SOCKET"))
		if err != nil {
			fmt.Println("dial error:", err)
			os.Exit(0)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET /admin/status HTTP/1.1\r\nHost: node\r\n\r\n")
		b := make([]byte, 64)
		n, err := c.Read(b)
		fmt.Printf("read %d %v\n", n, err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// asOtherUser runs the test binary as uid 65534 (nobody) in the given helper role.
func asOtherUser(t *testing.T, role, socket string) *exec.Cmd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a process as another user")
	}
	// The test binary sits in a build directory only its owner may enter: run a copy.
	bin := helperBinary(t)
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), "SIOS_ADMIN_HELPER="+role, "SIOS_ADMIN_SOCKET="+socket)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	return cmd
}

func helperBinary(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sios-admin-helper-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "helper")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// openDir makes a temporary directory other users may enter.
func openDir(t *testing.T, mode os.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sios-admin-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, mode)
	return dir
}

func TestLongDataDirKeepsTheSocketInside(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("a", 60), strings.Repeat("b", 60))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if len(Socket(dir)) <= maxSocketPath {
		t.Fatal("the test needs a path longer than a socket address")
	}
	ln, err := Listen(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("{}")) }))
	if fi, err := os.Stat(Socket(dir)); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("the socket is not DIR/admin.sock, mode 0600: %v %v", fi, err)
	}
	c := Dial(dir)
	if c == nil || c.err != nil {
		t.Fatal("the node's own socket was not reachable by its owner")
	}
	var out map[string]any
	if err := c.Do(context.Background(), "GET", "/admin/status", nil, &out); err != nil {
		t.Fatal(err)
	}
}

// The node accepts no connection from a process of another user, even if the socket's
// mode would let it connect.
func TestNodeRefusesAnotherUser(t *testing.T) {
	dir := openDir(t, 0o755)
	refused := make(chan uint32, 1)
	ln, err := Listen(dir, func(uid uint32) { refused <- uid })
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	os.Chmod(Socket(dir), 0o666) // only the credential check stands in the way
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"))
			c.Close()
		}
	}()
	out, err := asOtherUser(t, "dial", Socket(dir)).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if strings.Contains(string(out), "read 0") == false && !strings.Contains(string(out), "dial error") {
		t.Fatalf("another user's process got an answer: %s", out)
	}
	select {
	case uid := <-refused:
		if uid != 65534 {
			t.Fatalf("refused uid %d", uid)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the refusal was not reported")
	}
}

// The CLI talks to no socket served by another user: a local attacker listening where
// the node's socket would be gets nothing.
func TestClientRefusesAnImpostor(t *testing.T) {
	dir := openDir(t, 0o777) // lets the other user create the socket, for the test
	cmd := asOtherUser(t, "listen", Socket(dir))
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if !strings.Contains(line, "listening") {
		t.Fatalf("helper: %s", line)
	}
	os.Chmod(Socket(dir), 0o666)
	c := Dial(dir)
	if c == nil {
		t.Fatal("Dial saw no socket")
	}
	err := c.Do(context.Background(), "POST", "/admin/memory/add", map[string]string{"text": "secret"}, new(map[string]any))
	if err == nil || !strings.Contains(err.Error(), "not by the data directory's owner") {
		t.Fatalf("got %v", err)
	}
}
