package fleet

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/sios-project/sios/internal/files"
)

// Archive keeps the fleet-wide log on disk, so that a restarted node knows its peers,
// their routes and any fork evidence at once, before anti-entropy has run: one file per
// record under DIR/<node id>/<seq>.json, and both records of each fork under
// DIR/forks/. Files are only ever added. It is safe for concurrent use.
type Archive struct {
	dir string

	mu    sync.Mutex
	saved map[string]int  // guarded by mu; records of each feed on disk
	forks map[string]bool // guarded by mu; fork evidence on disk, by file name
}

// OpenArchive opens (creating) the archive in dir.
func OpenArchive(dir string) (*Archive, error) {
	if err := os.MkdirAll(filepath.Join(dir, "forks"), 0o700); err != nil {
		return nil, err
	}
	return &Archive{dir: dir, saved: map[string]int{}, forks: map[string]bool{}}, nil
}

// Load adds every archived record to l, feeds in order and fork evidence last. A file
// that no longer verifies (say, its root is no longer pinned) is skipped and reported
// in the returned list; the rest loads.
func (a *Archive) Load(l *Log, trust Trust) (skipped []string, err error) {
	ents, err := os.ReadDir(a.dir)
	if err != nil {
		return nil, err
	}
	var evidence []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		sub := filepath.Join(a.dir, e.Name())
		files, err := filepath.Glob(filepath.Join(sub, "*"+recordExt))
		if err != nil {
			return nil, err
		}
		slices.Sort(files) // zero-padded sequence numbers sort in order
		if e.Name() == "forks" {
			evidence = files
			continue
		}
		n := 0
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err == nil {
				_, err = l.Add(b, trust)
			}
			if err != nil {
				skipped = append(skipped, fmt.Sprintf("%s: %v", f, err))
				break // the rest of this feed cannot chain
			}
			n++
		}
		a.mu.Lock()
		a.saved[e.Name()] = n
		a.mu.Unlock()
	}
	for _, f := range evidence {
		b, err := os.ReadFile(f)
		if err == nil {
			_, err = l.Add(b, trust)
		}
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", f, err))
		}
		a.mu.Lock()
		a.forks[filepath.Base(f)] = true
		a.mu.Unlock()
	}
	return skipped, nil
}

// Save writes what l holds of node's feed beyond what is on disk, and any fork evidence
// not yet written.
func (a *Archive) Save(l *Log, node string) error {
	if !validNodeID(node) {
		return fmt.Errorf("archive: %q is not a node id", short(node))
	}
	f, ok := l.Feed(node)
	if !ok {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	dir := filepath.Join(a.dir, node)
	for i := a.saved[node]; i < len(f.Records); i++ {
		if i == 0 {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
		}
		if err := files.Replace(filepath.Join(dir, recordFile(uint64(i))), f.Records[i], 0o600); err != nil {
			return err
		}
		a.saved[node] = i + 1
	}
	if !f.Forked {
		return nil
	}
	for _, fk := range l.Forks() {
		if fk.Node != node {
			continue
		}
		for _, rec := range [][]byte{fk.First, fk.Other} {
			sum := sha256.Sum256(rec)
			name := fmt.Sprintf("%s-%020d-%s%s", node, fk.Seq, hex.EncodeToString(sum[:8]), recordExt)
			if a.forks[name] {
				continue
			}
			if err := files.Replace(filepath.Join(a.dir, "forks", name), rec, 0o600); err != nil {
				return err
			}
			a.forks[name] = true
		}
	}
	return nil
}
