package oar

import (
	"crypto/sha256"
	"fmt"
	"reflect"
	"testing"
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
