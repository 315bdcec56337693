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
}

func newStore(logDir string) *store { return &store{root: logDir} }

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

// readPartial reads the resource at path(p). Tessera writes a partial tile or bundle
// only for the tree sizes it actually had, and its garbage collection removes partials
// once the full one exists, so a resource for an older size may be missing: then a
// larger partial or the full resource holds the same prefix, and exact reports false.
func (s *store) readPartial(path func(p uint8) string, p uint8) (data []byte, exact bool, err error) {
	full := filepath.Join(s.root, path(p))
	data, err = os.ReadFile(full)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return data, true, err
	}
	if p == 0 {
		return nil, false, fmt.Errorf("%s is missing", path(p))
	}
	if names, _ := os.ReadDir(filepath.Dir(full)); len(names) > 0 {
		best := 0
		for _, n := range names {
			if w, ok := partialWidth(n.Name()); ok && w > int(p) && (best == 0 || w < best) {
				best = w
			}
		}
		if best > 0 {
			data, err = os.ReadFile(filepath.Join(s.root, path(uint8(best))))
			return data, false, err
		}
	}
	data, err = os.ReadFile(filepath.Join(s.root, path(0)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("%s is missing", path(p))
	}
	return data, false, err
}

// bundle returns the entries of entry bundle idx in a log of the given size, checking
// that the bundle holds exactly the entries that size implies.
func (s *store) bundle(ctx context.Context, idx, size uint64) ([][]byte, error) {
	want := bundleWidth(idx, size)
	raw, exact, err := s.readPartial(func(p uint8) string { return layout.EntriesPath(idx, p) }, layout.PartialTileSize(0, idx, size))
	if err != nil {
		return nil, fmt.Errorf("entry bundle %d: %v", idx, err)
	}
	var b api.EntryBundle
	if err := b.UnmarshalText(raw); err != nil {
		return nil, fmt.Errorf("entry bundle %d: %v", idx, err)
	}
	if got := uint64(len(b.Entries)); got < want || (exact && got != want) {
		return nil, fmt.Errorf("entry bundle %d holds %d entries, want %d", idx, got, want)
	}
	return b.Entries[:want], nil
}

// leafHashes returns the level-0 hash tile idx for a log of the given size.
func (s *store) leafHashes(ctx context.Context, idx, size uint64) ([][]byte, error) {
	raw, err := s.tile(ctx, 0, idx, layout.PartialTileSize(0, idx, size))
	if err != nil {
		return nil, fmt.Errorf("hash tile 0/%d: %v", idx, err)
	}
	var t api.HashTile
	if err := t.UnmarshalText(raw); err != nil {
		return nil, fmt.Errorf("hash tile 0/%d: %v", idx, err)
	}
	if want := bundleWidth(idx, size); uint64(len(t.Nodes)) != want {
		return nil, fmt.Errorf("hash tile 0/%d holds %d hashes, want %d", idx, len(t.Nodes), want)
	}
	return t.Nodes, nil
}

// tile reads hash tile (level, idx) of width p (0 for a full tile), falling back to a
// wider one and cutting it to p hashes. It has the shape of Tessera's TileFetcherFunc.
func (s *store) tile(_ context.Context, level, idx uint64, p uint8) ([]byte, error) {
	raw, exact, err := s.readPartial(func(p uint8) string { return layout.TilePath(level, idx, p) }, p)
	if err != nil {
		return nil, err
	}
	width := int(p)
	if width == 0 {
		width = layout.TileWidth
	}
	n := width * 32
	if len(raw) < n || (exact && len(raw) != n) {
		return nil, fmt.Errorf("hash tile %d/%d is %d bytes, want %d", level, idx, len(raw), n)
	}
	return raw[:n], nil
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
	return client.NewProofBuilder(ctx, size, s.tile)
}
