package main

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The byte flips (issue 12): in a log left by a crash (so that the journal holds
// receipted records beyond the checkpoint), one bit is flipped at each of many
// positions sampled across every stored file of the audit log — entry bundles and hash
// tiles of every level, full and partial, the checkpoint, the seen checkpoint,
// Tessera's state, the journal, the node's certificate — and 'sios audit verify' must
// fail naming a location, or the file must be one whose bytes carry no meaning
// (OAR/1 section 9, "What can change without meaning"). CI runs a small log and few
// flips; scripts/byteflip.sh runs the figure:
//
//	SIOS_BYTEFLIP_RECORDS=10000 SIOS_BYTEFLIP_FLIPS=1000 go test ./cmd/sios -run TestByteFlips -v -timeout 2h
func TestByteFlips(t *testing.T) {
	records := envInt(t, "SIOS_BYTEFLIP_RECORDS", 600)
	flips := envInt(t, "SIOS_BYTEFLIP_FLIPS", 50)
	seed := uint64(envInt(t, "SIOS_BYTEFLIP_SEED", int(time.Now().UnixNano()%1e9)))
	rng := rand.New(rand.NewPCG(seed, 2))
	dir := crashedLog(t, records)
	out := ok(t, dir, "audit", "verify")
	if !strings.Contains(out, "the journal holds") {
		t.Fatalf("the crash left no records beyond the checkpoint in the journal:\n%s", out)
	}
	files := storedFiles(t, dir)
	plan := planFlips(files, flips, rng)

	type tally struct{ flips, detected, harmless, undetected int }
	byClass := map[string]*tally{}
	var failures []string
	for _, f := range plan {
		class := fileClass(f.rel)
		tl := byClass[class]
		if tl == nil {
			tl = &tally{}
			byClass[class] = tl
		}
		tl.flips++
		r := flipAndVerify(t, dir, f)
		switch {
		case r.code == 1 && namesLocation(r.stderr, f.rel):
			tl.detected++
		case r.code == 1:
			failures = append(failures, fmt.Sprintf("%s byte %d bit %d: detected but no location named: %s", f.rel, f.off, f.bit, strings.TrimSpace(r.stderr)))
			tl.undetected++
		case r.code == 0 && harmless(f.rel):
			tl.harmless++
		default:
			failures = append(failures, fmt.Sprintf("%s byte %d bit %d: not detected (exit %d)", f.rel, f.off, f.bit, r.code))
			tl.undetected++
		}
	}
	// The log is as it was: every flip was undone.
	ok(t, dir, "audit", "verify")

	classes := make([]string, 0, len(byClass))
	for c := range byClass {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	total := tally{}
	for _, c := range classes {
		tl := byClass[c]
		t.Logf("BYTEFLIP %-22s flips=%4d detected=%4d harmless=%d undetected=%d", c, tl.flips, tl.detected, tl.harmless, tl.undetected)
		total.flips += tl.flips
		total.detected += tl.detected
		total.harmless += tl.harmless
		total.undetected += tl.undetected
	}
	r := openTestReader(t, dir)
	pending, err := r.Pending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("BYTEFLIP total: records=%d checkpoint_entries=%d beyond_checkpoint=%d files=%d flips=%d detected=%d harmless=%d undetected=%d seed=%d",
		records, r.Size(), len(pending), len(files), total.flips, total.detected, total.harmless, total.undetected, seed)
	for _, f := range failures {
		t.Error(f)
	}
}

// crashedLog makes a data directory whose log holds about n records appended in
// batches of every size (so that Tessera kept partial tiles and bundles), the last of
// them by a process killed while appending, so that the journal holds receipted
// records beyond the checkpoint.
func crashedLog(t *testing.T, n int) string {
	t.Helper()
	dir := initNode(t)
	var in strings.Builder
	for i := range n * 8 / 10 {
		fmt.Fprintf(&in, `{"actor":{"id":"u%d"},"action":"byteflip.fill","resource":"doc/%d","detail":{"i":%d}}`+"\n", i%97, i, i)
	}
	runStdin(t, dir, in.String(), "audit", "append", "--stdin")
	for i := range 5 {
		ok(t, dir, "audit", "append", "--action", "byteflip.single", "--actor", fmt.Sprint("s", i))
	}
	// The rest by a process killed once it has printed its receipts.
	rest := n - n*8/10 - 5
	for attempt := 0; ; attempt++ {
		cmd := exec.Command(siosBin, "--data", dir, "audit", "append", "--stdin")
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			w := bufio.NewWriter(stdin)
			for i := range rest + 1000 {
				fmt.Fprintf(w, `{"actor":{"id":"k%d"},"action":"byteflip.crash","resource":"doc/%d"}`+"\n", i%13, i)
			}
			w.Flush()
		}()
		sc := bufio.NewScanner(stdout)
		got := 0
		for got < rest && sc.Scan() {
			got++
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if out := ok(t, dir, "audit", "verify"); strings.Contains(out, "the journal holds") || attempt == 5 {
			return dir
		}
		rest = 50
	}
}

type storedFile struct {
	rel  string // relative to the data directory
	size int64
}

// storedFiles lists the audit log's files: everything under DIR/ledger and the
// node's certificate.
func storedFiles(t *testing.T, dir string) []storedFile {
	t.Helper()
	var files []storedFile
	err := filepath.WalkDir(filepath.Join(dir, "ledger"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Size() > 0 {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, storedFile{rel: rel, size: info.Size()})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, "node.cert"))
	if err != nil {
		t.Fatal(err)
	}
	return append(files, storedFile{rel: "node.cert", size: info.Size()})
}

type flip struct {
	rel string
	off int64
	bit uint
}

// planFlips samples about n positions across files: every file gets at least one, the
// rest in proportion to the square root of its size, so that large zero-filled journal
// segments do not crowd out the many small tiles; files without meaning get at most 3.
func planFlips(files []storedFile, n int, rng *rand.Rand) []flip {
	var weight float64
	for _, f := range files {
		weight += math.Sqrt(float64(f.size))
	}
	var plan []flip
	for _, f := range files {
		k := max(1, int(math.Round(float64(n)*math.Sqrt(float64(f.size))/weight)))
		if harmless(f.rel) {
			k = min(k, 3) // a few show it; more would only crowd out files that mean something
		}
		for range k {
			plan = append(plan, flip{rel: f.rel, off: rng.Int64N(f.size), bit: uint(rng.IntN(8))})
		}
	}
	// Rounding leaves fewer than n: top up, weighted the same way.
	for len(plan) < n {
		x := rng.Float64() * weight
		for _, f := range files {
			if x -= math.Sqrt(float64(f.size)); x <= 0 {
				if !harmless(f.rel) {
					plan = append(plan, flip{rel: f.rel, off: rng.Int64N(f.size), bit: uint(rng.IntN(8))})
				}
				break
			}
		}
	}
	return plan
}

// flipAndVerify flips one bit, runs 'sios audit verify' (which writes nothing), and
// flips it back.
func flipAndVerify(t *testing.T, dir string, f flip) result {
	t.Helper()
	p := filepath.Join(dir, f.rel)
	fh, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	b := make([]byte, 1)
	if _, err := fh.ReadAt(b, f.off); err != nil {
		t.Fatal(err)
	}
	orig := b[0]
	b[0] ^= 1 << f.bit
	if _, err := fh.WriteAt(b, f.off); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := fh.WriteAt([]byte{orig}, f.off); err != nil {
			t.Fatal(err)
		}
	}()
	return sios(t, dir, "audit", "verify")
}

// fileClass names the kind of a stored file, for the report.
func fileClass(rel string) string {
	rel = filepath.ToSlash(rel)
	switch {
	case rel == "node.cert":
		return "certificate"
	case strings.HasSuffix(rel, "ledger/seen-checkpoint"):
		return "seen-checkpoint"
	case strings.HasSuffix(rel, "ledger/log/checkpoint"):
		return "checkpoint"
	case strings.Contains(rel, "/log/.state/"):
		return "tessera-state/" + filepath.Base(rel)
	case strings.Contains(rel, "/journal/") && strings.HasSuffix(rel, ".journal"):
		return "journal-segment"
	case strings.HasSuffix(rel, "journal/spare.tmp"):
		return "journal-spare"
	case strings.HasSuffix(rel, "ledger/LOCK"):
		return "lock"
	case strings.Contains(rel, "/tile/") && !inLayoutPath(rel):
		return "tessera-temporary"
	case strings.Contains(rel, "/tile/entries/") && strings.Contains(rel, ".p/"):
		return "entry-bundle-partial"
	case strings.Contains(rel, "/tile/entries/"):
		return "entry-bundle-full"
	case strings.Contains(rel, "/tile/"):
		level := strings.SplitN(rel[strings.Index(rel, "/tile/")+6:], "/", 2)[0]
		if strings.Contains(rel, ".p/") {
			return "hash-tile-L" + level + "-partial"
		}
		return "hash-tile-L" + level + "-full"
	}
	return "other:" + rel
}

// harmless are the files whose bytes carry no meaning (OAR/1 section 9): the lock
// file's process id, the spare journal segment being prepared, and the temporary files
// a crash left in the log's tile directories (not part of the tlog-tiles layout).
func harmless(rel string) bool {
	c := fileClass(rel)
	return c == "lock" || c == "journal-spare" || c == "tessera-temporary"
}

// tileAddress reads a tlog-tiles path (from "tile/"): tile/<L>/<N>[.p/<W>] or
// tile/entries/<N>[.p/<W>], <N> in groups of three digits, all but the last x-prefixed.
func tileAddress(path string) (level uint64, bundle bool, idx uint64, ok bool) {
	parts := strings.Split(path, "/")
	if len(parts) < 3 || parts[0] != "tile" {
		return 0, false, 0, false
	}
	if bundle = parts[1] == "entries"; !bundle {
		l, err := strconv.ParseUint(parts[1], 10, 8)
		if err != nil || strconv.FormatUint(l, 10) != parts[1] {
			return 0, false, 0, false
		}
		level = l
	}
	rest := parts[2:]
	if n := len(rest); n >= 2 && strings.HasSuffix(rest[n-2], ".p") {
		w, err := strconv.Atoi(rest[n-1])
		if err != nil || w < 1 || w > 255 || strconv.Itoa(w) != rest[n-1] {
			return 0, false, 0, false
		}
		rest = append(rest[:n-2:n-2], strings.TrimSuffix(rest[n-2], ".p"))
	}
	for i, p := range rest {
		if i < len(rest)-1 {
			if !strings.HasPrefix(p, "x") {
				return 0, false, 0, false
			}
			p = p[1:]
		}
		if len(p) != 3 || strings.Trim(p, "0123456789") != "" {
			return 0, false, 0, false
		}
		d, _ := strconv.ParseUint(p, 10, 64)
		idx = idx*1000 + d
	}
	return level, bundle, idx, true
}

func inLayoutPath(rel string) bool {
	_, _, _, ok := tileAddress(rel[strings.Index(rel, "/tile/")+1:])
	return ok
}

// namesLocation reports whether a verification error points at the flipped file: an
// entry index, or the file by name.
func namesLocation(stderr, rel string) bool {
	switch c := fileClass(rel); {
	case strings.Contains(stderr, "entry "):
		return true
	case c == "certificate":
		return strings.Contains(stderr, "node.cert")
	case c == "checkpoint", c == "seen-checkpoint":
		return strings.Contains(stderr, "checkpoint")
	}
	return strings.Contains(stderr, filepath.Base(rel)) || strings.Contains(stderr, filepath.ToSlash(strings.TrimPrefix(rel, "ledger/log/")))
}
