package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
)

// The crash loop (issue 12): a node ('sios up') is killed with SIGKILL at random points
// while clients append records ('sios audit append --stdin --json' through its admin
// socket) and chat (POST /v1/chat/completions, whose X-Sios-Receipt is the receipt of
// the request's record) at load. After every restart, every record a client holds a
// receipt for must be in the log and verify against its receipt, and the log must
// verify. CI runs a few crashes; scripts/crashloop.sh runs 100:
//
//	SIOS_CRASHLOOP_CRASHES=100 go test ./cmd/sios -run TestCrashLoop -v -timeout 2h
func TestCrashLoop(t *testing.T) {
	crashes := envInt(t, "SIOS_CRASHLOOP_CRASHES", 3)
	seed := uint64(envInt(t, "SIOS_CRASHLOOP_SEED", int(time.Now().UnixNano()%1e9)))
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := filepath.Join(t.TempDir(), "data")
	var all []oar.Receipt
	var key string
	var receipted receiptChecker
	fromAppend, fromChat := 0, 0
	for crash := 0; crash <= crashes; crash++ {
		n := startCrashNode(t, dir)
		if crash == 0 {
			key = n.adminKey
			if key == "" {
				t.Fatal("a fresh node printed no admin key")
			}
		}
		// After each restart: every receipted record is there and verifies.
		receipted.check(t, dir, all, crash)
		if out := ok(t, dir, "audit", "verify"); !strings.HasPrefix(out, "verified ") {
			t.Fatalf("restart %d: audit verify: %s", crash, out)
		}
		if crash == crashes {
			n.terminate(t)
			break
		}
		load := startLoad(t, dir, n.url, key, crash)
		time.Sleep(time.Duration(200+rng.IntN(1300)) * time.Millisecond)
		n.kill()
		appended, chatted := load.stop()
		if len(appended)+len(chatted) == 0 {
			t.Fatalf("crash %d: no receipt under load", crash+1)
		}
		fromAppend += len(appended)
		fromChat += len(chatted)
		all = append(append(all, appended...), chatted...)
		t.Logf("crash %d/%d after receipts for %d appended and %d chat records", crash+1, crashes, len(appended), len(chatted))
	}
	// Offline, with the node stopped: the whole log, and every receipt with the real
	// binary's 'audit verify --receipt'.
	ok(t, dir, "audit", "verify")
	receiptsFile := filepath.Join(t.TempDir(), "receipts.jsonl")
	var b strings.Builder
	for _, rc := range all {
		line, _ := json.Marshal(rc)
		b.Write(append(line, '\n'))
	}
	os.WriteFile(receiptsFile, []byte(b.String()), 0o644)
	out := ok(t, dir, "audit", "verify", "--receipt", receiptsFile)
	if got := strings.Count(out, "both signatures verify"); got != len(all) {
		t.Fatalf("audit verify --receipt verified %d of %d receipts", got, len(all))
	}
	final := receiptChecker{} // everything in full once more, with the node stopped
	lost := final.check(t, dir, all, crashes+1)
	r := openTestReader(t, dir)
	t.Logf("CRASHLOOP crashes=%d survived=%d receipted=%d (appended %d, chat %d) lost=%d log_entries=%d seed=%d",
		crashes, crashes, len(all), fromAppend, fromChat, lost, r.Size(), seed)
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q is not a count", name, v)
	}
	return n
}

// upProcess is a 'sios up' process a test started, killed at the test's end if it
// still runs.
type upProcess struct {
	cmd           *exec.Cmd
	url, adminKey string
	stderr        *syncBuffer
}

func startCrashNode(t *testing.T, dir string) *upProcess {
	t.Helper()
	return startUp(t, exec.Command(siosBin, "--data", dir, "up", "--listen", "127.0.0.1:0", "--grace", "2s"))
}

// startUp starts cmd, a 'sios up', and waits until it serves, reading its admin key
// and address from its output.
func startUp(t *testing.T, cmd *exec.Cmd) *upProcess {
	t.Helper()
	stdout, _ := cmd.StdoutPipe()
	n := &upProcess{cmd: cmd, stderr: &syncBuffer{}}
	cmd.Stderr = n.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := keyLine.FindStringSubmatch(sc.Text()); m != nil {
				n.adminKey = m[1]
			}
			if m := serveLine.FindStringSubmatch(sc.Text()); m != nil && n.url == "" {
				n.url = m[1]
				close(found)
			}
		}
	}()
	select {
	case <-found:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("sios up did not serve within 60s: %s", n.stderr)
	}
	t.Cleanup(n.kill)
	return n
}

func (n *upProcess) kill() {
	if n.cmd.ProcessState == nil {
		n.cmd.Process.Signal(syscall.SIGKILL)
		n.cmd.Wait()
	}
}

func (n *upProcess) terminate(t *testing.T) {
	n.cmd.Process.Signal(syscall.SIGTERM)
	if err := n.cmd.Wait(); err != nil {
		t.Fatalf("sios up did not stop cleanly: %v\n%s", err, n.stderr)
	}
}

// load is clients appending and chatting against a node until it dies.
type load struct {
	wg       sync.WaitGroup
	mu       sync.Mutex
	appended []oar.Receipt
	chatted  []oar.Receipt
	cancel   context.CancelFunc
	procs    []*exec.Cmd
}

func startLoad(t *testing.T, dir, url, key string, round int) *load {
	l := &load{}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	for a := range 2 {
		cmd := exec.Command(siosBin, "--data", dir, "audit", "append", "--stdin", "--json")
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		l.procs = append(l.procs, cmd)
		go func() {
			w := bufio.NewWriter(stdin)
			for i := 0; ctx.Err() == nil; i++ {
				if _, err := fmt.Fprintf(w, `{"actor":{"id":"crash-%d-%d"},"action":"crashloop.append","resource":"n%d"}`+"\n", round, a, i); err != nil {
					return
				}
				if i%32 == 0 && w.Flush() != nil {
					return
				}
			}
			stdin.Close()
		}()
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var rc oar.Receipt
				if json.Unmarshal(sc.Bytes(), &rc) == nil && rc.RecordHash != "" {
					l.mu.Lock()
					l.appended = append(l.appended, rc)
					l.mu.Unlock()
				}
			}
			io.Copy(io.Discard, stdout)
		}()
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for c := range 4 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				body := fmt.Sprintf(`{"model":"calculator","messages":[{"role":"user","content":"what is %d*%d"}]}`, c+2, i)
				req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+key)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Sios-Receipt", "full") // the compact header only names the record
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						time.Sleep(20 * time.Millisecond) // the node is down
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if rc := decodeReceiptHeaderValue(resp.Header.Get("X-Sios-Receipt-Full")); rc != nil {
					l.mu.Lock()
					l.chatted = append(l.chatted, *rc)
					l.mu.Unlock()
				}
			}
		}()
	}
	return l
}

// stop ends the load after the node died: appenders exit when their appends fail.
func (l *load) stop() (appended, chatted []oar.Receipt) {
	l.cancel()
	for _, p := range l.procs {
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			p.Process.Kill()
			<-done
		}
	}
	l.wg.Wait()
	return l.appended, l.chatted
}

func decodeReceiptHeaderValue(h string) *oar.Receipt {
	if h == "" {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return nil
	}
	rc, err := oar.ParseReceipt(raw)
	if err != nil {
		return nil
	}
	return rc
}

// receiptChecker checks, after each restart, that every receipted record is in the log
// (checkpointed or beyond the checkpoint). A receipt is verified in full (its seal's
// signatures and its inclusion proof, against the entry's bytes) the first time; after
// that the log's bytes at its index and its seal's index are compared by hash, while
// 'audit verify' re-checks every seal of the log.
type receiptChecker struct {
	verified map[uint64]bool     // receipts verified in full, by index
	sealHash map[uint64][32]byte // record hash of the seal at each seal index, from receipts
}

// check returns the number of records lost, failing the test if any is.
func (rcc *receiptChecker) check(t *testing.T, dir string, receipts []oar.Receipt, round int) int {
	t.Helper()
	if rcc.verified == nil {
		rcc.verified, rcc.sealHash = map[uint64]bool{}, map[uint64][32]byte{}
	}
	if len(receipts) == 0 {
		return 0
	}
	ctx := context.Background()
	r := openTestReader(t, dir)
	pending, err := r.Pending(ctx)
	if err != nil {
		t.Fatalf("restart %d: %v", round, err)
	}
	size := r.Size()
	total := size + uint64(len(pending))
	need := map[uint64]bool{} // entries whose bytes a full verification needs
	for _, rc := range receipts {
		if !rcc.verified[rc.Index] {
			need[rc.Index] = true
		}
	}
	hashes := make([][32]byte, 0, total)
	kept := map[uint64][]byte{}
	add := func(i uint64, e []byte) {
		hashes = append(hashes, [32]byte(oar.RecordHash(e)))
		if need[i] {
			kept[i] = e
		}
	}
	for from := uint64(0); from < size; from += 256 {
		es, err := r.Entries(ctx, from, min(from+256, size))
		if err != nil {
			t.Fatalf("restart %d: %v", round, err)
		}
		for k, e := range es {
			add(from+uint64(k), e)
		}
	}
	for _, p := range pending {
		add(p.Index, p.Entry)
	}
	lost := 0
	seen := map[uint64]bool{}
	for _, rc := range receipts {
		if seen[rc.Index] {
			t.Fatalf("restart %d: index %d was receipted twice", round, rc.Index)
		}
		seen[rc.Index] = true
		switch {
		case rc.Index >= total || rc.SealIndex >= total:
			err = fmt.Errorf("the log and the journal hold only %d entries", total)
		case fmt.Sprintf("%x", hashes[rc.Index]) != rc.RecordHash:
			err = fmt.Errorf("the log holds another entry at its index")
		case rcc.verified[rc.Index]:
			if hashes[rc.SealIndex] != rcc.sealHash[rc.SealIndex] {
				err = fmt.Errorf("the log holds another seal at index %d", rc.SealIndex)
			}
		default:
			if _, err = rc.Verify(r.PublicKey(), kept[rc.Index]); err == nil {
				seal, _ := jcs.Canonicalize(rc.Seal)
				rcc.sealHash[rc.SealIndex] = [32]byte(oar.RecordHash(seal))
				if hashes[rc.SealIndex] != rcc.sealHash[rc.SealIndex] {
					err = fmt.Errorf("the log holds another seal at index %d than the receipt", rc.SealIndex)
				}
				rcc.verified[rc.Index] = err == nil
			}
		}
		if err != nil {
			lost++
			t.Errorf("restart %d: receipted record %d: %v", round, rc.Index, err)
		}
	}
	if lost > 0 {
		t.Fatalf("restart %d: %d of %d receipted records lost", round, lost, len(receipts))
	}
	return lost
}
