package memory

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/policy"
)

func openStore(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// runs returns every n-byte window of b.
func runs(b []byte, n int) [][]byte {
	var out [][]byte
	for i := 0; i+n <= len(b); i++ {
		out = append(out, b[i:i+n])
	}
	return out
}

// traces reads every file under dir and describes each needle found (the first hit
// of each kind per file).
func traces(t testing.TB, dir string, needles map[string][][]byte) []string {
	t.Helper()
	byLen := map[int]map[string]string{} // needle length → needle → kind
	for kind, ns := range needles {
		for _, n := range ns {
			if byLen[len(n)] == nil {
				byLen[len(n)] = map[string]string{}
			}
			byLen[len(n)][string(n)] = kind
		}
	}
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for n, set := range byLen {
			for i := 0; i+n <= len(data); i++ {
				if kind, ok := set[string(data[i:i+n])]; ok && !seen[kind] {
					seen[kind] = true
					found = append(found, fmt.Sprintf("%s: %s %q at offset %d", filepath.Base(path), kind, data[i:i+n], i))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// vocab is a fixed synthetic vocabulary; texts draw from it with a Zipf distribution
// so that some words are common and most are rare, as in real text.
var vocab = func() []string {
	r := rand.New(rand.NewPCG(1, 2))
	const letters = "abcdefghijklmnopqrstuvwxyz"
	seen := map[string]bool{}
	var out []string
	for len(out) < 20000 {
		n := 3 + r.IntN(8)
		b := make([]byte, n)
		for i := range b {
			b[i] = letters[r.IntN(len(letters))]
		}
		if w := string(b); !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}()

type textGen struct {
	z *rand.Zipf
}

func newTextGen(seed uint64) *textGen {
	r := rand.New(rand.NewPCG(seed, seed+1))
	return &textGen{z: rand.NewZipf(r, 1.1, 2, uint64(len(vocab)-1))}
}

func (g *textGen) text(words int) string {
	var b strings.Builder
	for i := 0; i < words; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(vocab[g.z.Uint64()])
	}
	b.WriteByte('.')
	return b.String()
}

// fill adds n memories spread over subjects of tenant, in batches of 1000.
func fill(t testing.TB, s *Store, tenant string, n, subjects int, g *textGen) {
	t.Helper()
	ctx := context.Background()
	levels := policy.Levels()
	for done := 0; done < n; {
		k := min(1000, n-done)
		batch := make([]NewMemory, k)
		for i := range batch {
			j := done + i
			batch[i] = NewMemory{Tenant: tenant, Subject: fmt.Sprintf("subject-%05d", j%subjects),
				Classification: levels[j%len(levels)], Source: "filler", Text: g.text(30)}
		}
		if _, err := s.AddBatch(ctx, batch); err != nil {
			t.Fatalf("fill: %v", err)
		}
		done += k
	}
}

func fixedClock(t0 time.Time) func() time.Time { return func() time.Time { return t0 } }
