package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/sios-project/sios/oar"
)

// The audit ledger failing under a serving node (issue 11, item 4): its storage really
// fails — a full disk, a file system gone read-only, a journal device returning I/O
// errors — inside a private mount namespace ('unshare -m') holding small file systems
// mounted over the node's DIR/ledger or part of it. The node must not panic: it
// answers 503 audit_unavailable to every request that needs a record, stays up, says
// on /readyz that it is not ready because of the ledger, and after the storage is mended
// and the node restarted, the log verifies and every record a client holds a receipt
// for is in it. Needs root (mount); skipped with a message where unshare or mount are
// not available.
func TestLedgerFailure(t *testing.T) {
	if out, err := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c",
		"mount -t tmpfs -o size=1m sios-probe /mnt").CombinedOutput(); err != nil {
		t.Skipf("a private mount namespace with a tmpfs is not available here (unshare -m, mount: needs root): %v: %s", err, out)
	}
	for _, sc := range []ledgerFailure{
		{
			name: "disk full",
			// All of DIR/ledger on 8 MiB, then filled up.
			setup: "mount -t tmpfs -o size=8m sios-ledger $D/ledger && cp -a $SEED/. $D/ledger/",
			fail:  "dd if=/dev/zero of=$D/ledger/filler bs=64k 2>/dev/null; true",
			mend:  "rm $D/ledger/filler",
			want:  "no space left on device",
		},
		{
			name: "log read-only",
			// DIR/ledger/log (Tessera's tiles) remounted read-only: Tessera v1.0.4 panicked.
			setup: "mount -t tmpfs -o size=64m sios-log $D/ledger/log && cp -a $SEED/log/. $D/ledger/log/",
			fail:  "mount -o remount,ro $D/ledger/log",
			mend:  "mount -o remount,rw $D/ledger/log",
			want:  "read-only file system",
		},
		{
			name: "journal full",
			// DIR/ledger/journal holds its first 1 MiB segment but no second one: the
			// write that needs the next segment fails.
			setup: "mount -t tmpfs -o size=1200k sios-journal $D/ledger/journal && cp -a $SEED/journal/. $D/ledger/journal/",
			mend:  "mount -o remount,size=64m $D/ledger/journal",
			want:  "journal: prepare segment",
		},
		{
			name: "journal I/O error",
			// DIR/ledger/journal on ext4 over a loop device, shut down as a failing disk
			// is (EXT4_IOC_SHUTDOWN without flushing its log): every write and fdatasync
			// returns EIO. Mending is a remount, which replays ext4's journal.
			needs:    []string{"mkfs.ext4", "losetup"},
			setup:    "truncate -s 64m $WORK/journal.img && mkfs.ext4 -q -F $WORK/journal.img && mount -o loop $WORK/journal.img $D/ledger/journal && cp -a $SEED/journal/. $D/ledger/journal/",
			shutdown: "ledger/journal",
			mend:     "umount $D/ledger/journal && mount -o loop $WORK/journal.img $D/ledger/journal",
			want:     "input/output error",
		},
	} {
		t.Run(strings.ReplaceAll(sc.name, " ", "_"), func(t *testing.T) { sc.run(t) })
	}
}

type ledgerFailure struct {
	name     string
	needs    []string // commands without which the case is skipped
	setup    string   // sh, in the namespace: mount over $D/ledger (or part) and copy $SEED in
	fail     string   // sh, in the namespace, that makes the ledger's storage fail
	shutdown string   // or: the mount under $D to shut down (EXT4_IOC_SHUTDOWN)
	mend     string   // sh, in the namespace, once the node is stopped
	want     string   // in the ledger's readiness detail
}

func (sc ledgerFailure) run(t *testing.T) {
	for _, c := range sc.needs {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("%s is not installed", c)
		}
	}
	work := t.TempDir()
	dir := filepath.Join(work, "data")
	// A node made and stopped on the ordinary file system; its ledger is the seed.
	n := startNSNode(t, nil, dir)
	key := n.adminKey
	if key == "" {
		t.Fatal("a fresh node printed no admin key")
	}
	n.stop(t, true)
	seed := filepath.Join(work, "seed")
	if out, err := exec.Command("cp", "-a", filepath.Join(dir, "ledger"), seed).CombinedOutput(); err != nil {
		t.Fatalf("copy the ledger: %v: %s", err, out)
	}
	ns := newMountNS(t, map[string]string{"D": dir, "SEED": seed, "WORK": work}, sc.setup)

	n = startNSNode(t, ns, dir)
	var receipts []oar.Receipt
	for range 10 {
		status, code, rc := chatOnce(t, n.url, key)
		if status != http.StatusOK || rc == nil {
			t.Fatalf("before the failure: %d %s", status, code)
		}
		receipts = append(receipts, *rc)
	}

	if sc.fail != "" {
		ns.sh(t, sc.fail)
	}
	if sc.shutdown != "" {
		shutdownExt4(t, ns.path(filepath.Join(dir, sc.shutdown)))
	}
	// Requests go on being served while the journal takes their records; once a write
	// fails, none is.
	deadline := time.Now().Add(60 * time.Second)
	for failed := false; !failed; {
		if time.Now().After(deadline) {
			t.Fatalf("no request was refused for 60s after the ledger's storage failed\n%s", n.stderr)
		}
		status, code, rc := chatOnce(t, n.url, key)
		switch {
		case status == http.StatusOK && rc != nil:
			receipts = append(receipts, *rc)
		case status == http.StatusServiceUnavailable && code == "audit_unavailable":
			failed = true
		case status == http.StatusTooManyRequests:
			time.Sleep(time.Second) // the brain's rate limit: its refusal is recorded too
		default:
			t.Fatalf("while the ledger failed: %d %s, want 200 with a receipt or 503 audit_unavailable\n%s", status, code, n.stderr)
		}
	}
	for i := range 20 {
		if status, code, _ := chatOnce(t, n.url, key); status != http.StatusServiceUnavailable || code != "audit_unavailable" {
			t.Fatalf("request %d after the ledger failed: %d %s, want 503 audit_unavailable", i, status, code)
		}
	}
	checkNotReady(t, n.url, sc.want)
	if err := n.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the node is gone: %v\n%s", err, n.stderr)
	}
	if status := get(t, n.url+"/healthz"); status != http.StatusOK {
		t.Fatalf("/healthz: %d", status)
	}
	n.stop(t, false)
	if s := n.stderr.String(); strings.Contains(s, "panic:") || strings.Contains(s, "goroutine ") {
		t.Fatalf("the node panicked:\n%s", s)
	}

	// Mended and restarted, the node recovers from the journal.
	ns.sh(t, sc.mend)
	n = startNSNode(t, ns, dir)
	status, code, rc := chatOnce(t, n.url, key)
	if status != http.StatusOK || rc == nil {
		t.Fatalf("after the restart: %d %s\n%s", status, code, n.stderr)
	}
	receipts = append(receipts, *rc)
	n.stop(t, true)
	seen := ns.path(dir)
	ok(t, seen, "audit", "verify")
	var rcc receiptChecker
	if lost := rcc.check(t, seen, receipts, 1); lost != 0 {
		t.Fatalf("%d receipted records lost", lost)
	}
	t.Logf("%s: %d receipted records, all in the log after the restart", sc.name, len(receipts))
}

// mountNS is a private mount namespace, kept alive by a process that sleeps in it.
type mountNS struct {
	holder *exec.Cmd
	env    []string
}

// newMountNS starts a namespace and runs setup (sh) in it, with vars in the environment.
func newMountNS(t *testing.T, vars map[string]string, setup string) *mountNS {
	t.Helper()
	ns := &mountNS{env: os.Environ()}
	for k, v := range vars {
		ns.env = append(ns.env, k+"="+v)
	}
	ns.holder = exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", setup+" && echo ready && exec sleep 3600")
	ns.holder.Env = ns.env
	stdout, _ := ns.holder.StdoutPipe()
	var stderr syncBuffer
	ns.holder.Stderr = &stderr
	if err := ns.holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ns.holder.Process.Kill()
		ns.holder.Wait()
	})
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if line != "ready\n" {
		ns.holder.Wait()
		t.Fatalf("setting up the mount namespace (%s): %s", setup, stderr.String())
	}
	return ns
}

// command runs name in the namespace.
func (ns *mountNS) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(ns.holder.Process.Pid), "-m", "--", name}, args...)...)
	cmd.Env = ns.env
	return cmd
}

func (ns *mountNS) sh(t *testing.T, script string) {
	t.Helper()
	if out, err := ns.command("sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", script, err, out)
	}
}

// path is p as the namespace sees it, reachable from outside through its holder's root.
func (ns *mountNS) path(p string) string {
	return filepath.Join("/proc", strconv.Itoa(ns.holder.Process.Pid), "root", p)
}

// shutdownExt4 shuts the ext4 file system mounted at dir down as a failing device
// would: EXT4_IOC_SHUTDOWN with EXT4_GOING_FLAGS_NOLOGFLUSH.
func shutdownExt4(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const ext4IocShutdown, noLogFlush = 0x8004587d, 2
	flags := uint32(noLogFlush)
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), ext4IocShutdown, uintptr(unsafe.Pointer(&flags))); errno != 0 {
		t.Fatalf("EXT4_IOC_SHUTDOWN on %s: %v", dir, errno)
	}
}

// startNSNode starts 'sios up' on dir, in the mount namespace ns if not nil.
func startNSNode(t *testing.T, ns *mountNS, dir string) *upProcess {
	t.Helper()
	args := []string{"--data", dir, "up", "--listen", "127.0.0.1:0", "--grace", "2s"}
	if ns != nil {
		return startUp(t, ns.command(siosBin, args...))
	}
	return startUp(t, exec.Command(siosBin, args...))
}

// stop sends SIGTERM and waits; clean demands exit status 0 (a node whose ledger
// failed exits 1: it cannot seal the ledger).
func (n *upProcess) stop(t *testing.T, clean bool) {
	t.Helper()
	n.cmd.Process.Signal(syscall.SIGTERM)
	err := n.cmd.Wait()
	if clean && err != nil {
		t.Fatalf("sios up did not stop cleanly: %v\n%s", err, n.stderr)
	}
}

// chatOnce sends one chat request and returns the status, the error code if any, and
// the receipt of its record if it was served.
func chatOnce(t *testing.T, url, key string) (int, string, *oar.Receipt) {
	t.Helper()
	body := `{"model":"calculator","messages":[{"role":"user","content":"what is 6*7"}]}`
	req, _ := http.NewRequest("POST", url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Sios-Receipt", "full")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("chat: %v", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	json.Unmarshal(data, &e)
	return resp.StatusCode, e.Error.Code, decodeReceiptHeaderValue(resp.Header.Get("X-Sios-Receipt-Full"))
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// checkNotReady demands /readyz say 503 "not ready" with a failing ledger check whose
// detail mentions want.
func checkNotReady(t *testing.T, url, want string) {
	t.Helper()
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Checks []struct {
			Name   string `json:"name"`
			OK     bool   `json:"ok"`
			Detail string `json:"detail"`
		} `json:"checks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	for _, c := range r.Checks {
		if c.Name == "ledger" {
			if resp.StatusCode != http.StatusServiceUnavailable || r.Status != "not ready" || c.OK || !strings.Contains(c.Detail, want) {
				t.Fatalf("/readyz: %d %q, ledger check %+v; want 503 not ready, the ledger failing with %q", resp.StatusCode, r.Status, c, want)
			}
			t.Logf("/readyz: %s: %s", r.Status, c.Detail)
			return
		}
	}
	t.Fatalf("/readyz has no ledger check: %+v", r)
}
