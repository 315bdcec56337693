package ledger

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
)

// SPEC: https://c2sp.org/tlog-tiles — the log directory is a tlog-tiles tree that
// Tessera's POSIX driver writes; these readers use only the published layout.

// store reads a tlog-tiles directory.
type store struct {
	root string
	f    client.FileFetcher
}

func newStore(logDir string) *store { return &store{root: logDir, f: client.FileFetcher{Root: logDir}} }

func (s *store) checkpoint() ([]byte, error) {
	p := filepath.Join(s.root, layout.CheckpointPath)
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if st.Size() > MaxCheckpointSize {
		return nil, fmt.Errorf("%s is %d bytes, more than %d (MaxCheckpointSize)", p, st.Size(), MaxCheckpointSize)
	}
	return os.ReadFile(p)
}

// bundle returns the entries of entry bundle idx in a log of the given size, checking
// that the bundle holds exactly the entries that size implies.
func (s *store) bundle(ctx context.Context, idx, size uint64) ([][]byte, error) {
	want := bundleWidth(idx, size)
	raw, err := s.f.ReadEntryBundle(ctx, idx, layout.PartialTileSize(0, idx, size))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("entry bundle %s is missing", layout.EntriesPath(idx, layout.PartialTileSize(0, idx, size)))
		}
		return nil, err
	}
	var b api.EntryBundle
	if err := b.UnmarshalText(raw); err != nil {
		return nil, fmt.Errorf("entry bundle %d: %v", idx, err)
	}
	switch {
	case uint64(len(b.Entries)) < want:
		return nil, fmt.Errorf("entry bundle %d holds %d entries, want %d", idx, len(b.Entries), want)
	case uint64(len(b.Entries)) > want && layout.PartialTileSize(0, idx, size) != 0:
		// A partial bundle for exactly this size must hold exactly want entries.
		if _, perr := os.Stat(filepath.Join(s.root, layout.EntriesPath(idx, layout.PartialTileSize(0, idx, size)))); perr == nil {
			return nil, fmt.Errorf("entry bundle %d holds %d entries, want %d", idx, len(b.Entries), want)
		}
		b.Entries = b.Entries[:want] // the full bundle of a log that has grown since
	case uint64(len(b.Entries)) > want:
		return nil, fmt.Errorf("entry bundle %d holds %d entries, want %d", idx, len(b.Entries), want)
	}
	return b.Entries, nil
}

// leafHashes returns the level-0 hash tile idx for a log of the given size.
func (s *store) leafHashes(ctx context.Context, idx, size uint64) ([][]byte, error) {
	want := bundleWidth(idx, size)
	p := layout.PartialTileSize(0, idx, size)
	raw, err := s.f.ReadTile(ctx, 0, idx, p)
	if err != nil {
		return nil, fmt.Errorf("hash tile 0/%d: %v", idx, err)
	}
	var t api.HashTile
	if err := t.UnmarshalText(raw); err != nil {
		return nil, fmt.Errorf("hash tile 0/%d: %v", idx, err)
	}
	if uint64(len(t.Nodes)) < want || (p == 0 && uint64(len(t.Nodes)) != want) {
		return nil, fmt.Errorf("hash tile 0/%d holds %d hashes, want %d", idx, len(t.Nodes), want)
	}
	return t.Nodes[:want], nil
}

// entries returns entries [from, to) of a log of the given size.
func (s *store) entries(ctx context.Context, from, to, size uint64) ([][]byte, error) {
	if to > size || from > to {
		return nil, fmt.Errorf("entries %d..%d are outside a log of %d", from, to, size)
	}
	var out [][]byte
	for idx := from / layout.EntryBundleWidth; idx*layout.EntryBundleWidth < to; idx++ {
		es, err := s.bundle(ctx, idx, size)
		if err != nil {
			return nil, err
		}
		base := idx * layout.EntryBundleWidth
		for i, e := range es {
			if n := base + uint64(i); n >= from && n < to {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

func bundleWidth(idx, size uint64) uint64 {
	start := idx * layout.EntryBundleWidth
	if size <= start {
		return 0
	}
	return min(size-start, layout.EntryBundleWidth)
}

func (s *store) proofBuilder(ctx context.Context, size uint64) (*client.ProofBuilder, error) {
	return client.NewProofBuilder(ctx, size, s.f.ReadTile)
}
