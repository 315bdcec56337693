package oar

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// HexProofs spells exactly what MerkleProofs and HexHashes give, for every batch size.
func TestHexProofsMatchMerkleProofs(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 5, 7, 8, 9, 31, 100, 256, 257, 1000} {
		leaves := make([][]byte, n)
		for i := range leaves {
			h := sha256.Sum256(fmt.Appendf(nil, "leaf %d", i))
			leaves[i] = h[:]
		}
		hexLeaves, proofs := HexProofs(leaves)
		if !reflect.DeepEqual(hexLeaves, HexHashes(leaves)) {
			t.Fatalf("n=%d: leaves differ", n)
		}
		for i, p := range MerkleProofs(leaves) {
			want := HexHashes(p)
			if len(want) == 0 {
				want = []string{}
			}
			if !reflect.DeepEqual(append([]string{}, proofs[i]...), want) {
				t.Fatalf("n=%d leaf %d: %v, want %v", n, i, proofs[i], want)
			}
		}
	}
}

func BenchmarkReceiptProofs(b *testing.B) {
	leaves := make([][]byte, 256)
	for i := range leaves {
		h := sha256.Sum256(fmt.Appendf(nil, "leaf %d", i))
		leaves[i] = h[:]
	}
	b.Run("MerkleProofs+HexHashes", func(b *testing.B) {
		for range b.N {
			for _, p := range MerkleProofs(leaves) {
				HexHashes(p)
			}
		}
	})
	b.Run("HexProofs", func(b *testing.B) {
		for range b.N {
			HexProofs(leaves)
		}
	})
}

// MerkleRoot is the RFC 6962 tree hash as transparency-dev/merkle computes it, for
// every size up to 600 leaves, and for leaves that are not hashes.
func TestMerkleRootIsRFC6962(t *testing.T) {
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	var leaves [][]byte
	for n := 1; n <= 600; n++ {
		h := sha256.Sum256(fmt.Appendf(nil, "leaf %d", n))
		leaves = append(leaves, h[:])
		if err := r.Append(h[:], nil); err != nil {
			t.Fatal(err)
		}
		want, err := r.GetRootHash(nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := MerkleRoot(leaves); !bytes.Equal(got, want) {
			t.Fatalf("%d leaves: root %x, want %x", n, got, want)
		}
	}
	odd := [][]byte{[]byte("short"), bytes.Repeat([]byte{7}, 40), make([]byte, HashSize)}
	want := rfc6962.DefaultHasher.HashChildren(rfc6962.DefaultHasher.HashChildren(odd[0], odd[1]), odd[2])
	if got := MerkleRoot(odd); !bytes.Equal(got, want) {
		t.Fatalf("leaves of other sizes: root %x, want %x", got, want)
	}
}

func BenchmarkMerkleRoot(b *testing.B) {
	leaves := make([][]byte, 4096)
	for i := range leaves {
		h := sha256.Sum256(fmt.Appendf(nil, "leaf %d", i))
		leaves[i] = h[:]
	}
	b.ReportAllocs()
	for b.Loop() {
		MerkleRoot(leaves)
	}
}

// RecordHash and HashChildren are rfc6962's leaf and inner hashes, for entries of every
// size up to a few kilobytes and for any pair of children (including ones not 32 bytes
// long, which take rfc6962's own path).
func TestHashesAreRFC6962(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 5000)
	for n := 0; n <= len(buf); n += 1 + n/7 {
		for i := range n {
			buf[i] = byte(rng.Uint32())
		}
		if got, want := RecordHash(buf[:n]), rfc6962.DefaultHasher.HashLeaf(buf[:n]); !bytes.Equal(got, want) {
			t.Fatalf("RecordHash of %d bytes: %x, want %x", n, got, want)
		}
	}
	for _, sizes := range [][2]int{{32, 32}, {32, 32}, {31, 32}, {32, 33}, {0, 0}} {
		l, r := make([]byte, sizes[0]), make([]byte, sizes[1])
		for i := range l {
			l[i] = byte(rng.Uint32())
		}
		for i := range r {
			r[i] = byte(rng.Uint32())
		}
		if got, want := HashChildren(l, r), rfc6962.DefaultHasher.HashChildren(l, r); !bytes.Equal(got, want) {
			t.Fatalf("HashChildren of %d and %d bytes: %x, want %x", len(l), len(r), got, want)
		}
	}
}
