package oar

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/transparency-dev/merkle/rfc6962"
)

// SPEC: RFC 6962 section 2.1 (Merkle Hash Trees).

// HashSize is the size of every hash in the format (SHA-256).
const HashSize = sha256.Size

// RecordHash is the RFC 6962 leaf hash of an entry: SHA-256(0x00 || entry). It is both
// the record hash named in receipts and links, and the leaf hash in the log's tree.
func RecordHash(entry []byte) []byte { return rfc6962.DefaultHasher.HashLeaf(entry) }

// HexHashes spells hashes the way the format does: lowercase hex.
func HexHashes(hs [][]byte) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = hex.EncodeToString(h)
	}
	return out
}

// MerkleRoot is the RFC 6962 Merkle tree hash over already-hashed leaves.
func MerkleRoot(leaves [][]byte) []byte {
	if len(leaves) == 0 {
		return rfc6962.DefaultHasher.EmptyRoot()
	}
	levels := merkleLevels(leaves)
	return levels[len(levels)-1][0]
}

// MerkleProofs returns the RFC 6962 inclusion proof of every leaf, computed in one pass.
func MerkleProofs(leaves [][]byte) [][][]byte {
	levels := merkleLevels(leaves)
	proofs := make([][][]byte, len(leaves))
	for i := range leaves {
		idx := i
		for _, level := range levels[:len(levels)-1] {
			sib := idx ^ 1
			if sib < len(level) {
				proofs[i] = append(proofs[i], level[sib])
			}
			idx >>= 1
		}
	}
	return proofs
}

// merkleLevels builds the tree bottom-up. An unpaired node at the right edge moves up a
// level unhashed, which yields exactly the RFC 6962 tree for any number of leaves.
func merkleLevels(leaves [][]byte) [][][]byte {
	levels := [][][]byte{leaves}
	for cur := leaves; len(cur) > 1; {
		next := make([][]byte, 0, (len(cur)+1)/2)
		for i := 0; i+1 < len(cur); i += 2 {
			next = append(next, rfc6962.DefaultHasher.HashChildren(cur[i], cur[i+1]))
		}
		if len(cur)%2 == 1 {
			next = append(next, cur[len(cur)-1])
		}
		levels = append(levels, next)
		cur = next
	}
	return levels
}
