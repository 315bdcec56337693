package oar

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"

	"github.com/transparency-dev/merkle/rfc6962"
)

// SPEC: RFC 6962 section 2.1 (Merkle Hash Trees).

// HashSize is the size of every hash in the format (SHA-256).
const HashSize = sha256.Size

// RecordHash is the RFC 6962 leaf hash of an entry: SHA-256(0x00 || entry). It is both
// the record hash named in receipts and links, and the leaf hash in the log's tree.
// Every record is hashed when written and when verified: the hash state is reused
// rather than made for each (rfc6962's hasher makes one per call; the same hash,
// TestHashesAreRFC6962).
func RecordHash(entry []byte) []byte {
	h := leafHashers.Get().(hash.Hash)
	h.Reset()
	h.Write(leafPrefix)
	h.Write(entry)
	out := h.Sum(make([]byte, 0, HashSize))
	leafHashers.Put(h)
	return out
}

var (
	leafPrefix  = []byte{0} // RFC 6962 leaf prefix
	leafHashers = sync.Pool{New: func() any { return sha256.New() }}
)

// HashChildren is the RFC 6962 inner node hash, SHA-256(0x01 || l || r), without the
// hash state rfc6962's hasher makes for each call (the same hash, TestHashesAreRFC6962).
// Verification computes one for every 256 entries' tile and for every seal's tree.
func HashChildren(l, r []byte) []byte {
	if len(l) != HashSize || len(r) != HashSize {
		return rfc6962.DefaultHasher.HashChildren(l, r)
	}
	var in [1 + 2*HashSize]byte
	in[0] = 1
	copy(in[1:], l)
	copy(in[1+HashSize:], r)
	h := sha256.Sum256(in[:])
	return h[:]
}

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

// HexProofs returns, for a batch of leaves (a seal's record hashes), each leaf in hex
// and its inclusion proof in hex, as receipts spell them: what MerkleProofs and
// HexHashes give, but each tree node is encoded once and its string shared by every
// proof that holds it, and all proofs share one backing array. A seal's receipts are
// made together, so this is their cost: one encoding per node instead of one per
// proof element.
func HexProofs(leaves [][]byte) (hexLeaves []string, proofs [][]string) {
	levels := merkleLevels(leaves)
	nodes := 0
	for _, level := range levels {
		nodes += len(level)
	}
	buf := make([]byte, 0, nodes*2*HashSize)
	for _, level := range levels {
		for _, h := range level {
			buf = hex.AppendEncode(buf, h)
		}
	}
	all := string(buf) // one string; every node's hex is a substring of it
	hexLevels := make([][]string, len(levels))
	off := 0
	for l, level := range levels {
		hexLevels[l] = make([]string, len(level))
		for i := range level {
			hexLevels[l][i] = all[off : off+2*HashSize]
			off += 2 * HashSize
		}
	}
	depth := len(levels) - 1
	backing := make([]string, 0, len(leaves)*depth)
	proofs = make([][]string, len(leaves))
	for i := range leaves {
		start := len(backing)
		idx := i
		for l := range depth {
			if sib := idx ^ 1; sib < len(levels[l]) {
				backing = append(backing, hexLevels[l][sib])
			}
			idx >>= 1
		}
		proofs[i] = backing[start:len(backing):len(backing)]
	}
	return hexLevels[0], proofs
}

// merkleLevels builds the tree bottom-up. An unpaired node at the right edge moves up a
// level unhashed, which yields exactly the RFC 6962 tree for any number of leaves. The
// inner nodes share one backing array and are hashed without a hash.Hash each: a seal
// hashes a few thousand of them (TestMerkleRootIsRFC6962).
func merkleLevels(leaves [][]byte) [][][]byte {
	levels := [][][]byte{leaves}
	nodes := make([]byte, 0, len(leaves)*HashSize) // a tree of n leaves has n-1 inner nodes
	var in [1 + 2*HashSize]byte
	in[0] = 1 // RFC 6962 inner node prefix
	for cur := leaves; len(cur) > 1; {
		next := make([][]byte, 0, (len(cur)+1)/2)
		for i := 0; i+1 < len(cur); i += 2 {
			l, r := cur[i], cur[i+1]
			if len(l) != HashSize || len(r) != HashSize {
				next = append(next, rfc6962.DefaultHasher.HashChildren(l, r))
				continue
			}
			copy(in[1:], l)
			copy(in[1+HashSize:], r)
			h := sha256.Sum256(in[:])
			start := len(nodes)
			nodes = append(nodes, h[:]...)
			next = append(next, nodes[start:len(nodes):len(nodes)])
		}
		if len(cur)%2 == 1 {
			next = append(next, cur[len(cur)-1])
		}
		levels = append(levels, next)
		cur = next
	}
	return levels
}
