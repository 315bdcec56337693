// sios: the test of change 9 (SIOS.md).

package storage

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
)

// TestHashChildrenIsRFC6962: hashChildren gives what rfc6962's hasher gives, for
// hashes and for children of other lengths, and each result is a slice of its own.
func TestHashChildrenIsRFC6962(t *testing.T) {
	var prev []byte
	for i, c := range []struct{ l, r []byte }{
		{bytes.Repeat([]byte{1}, sha256.Size), bytes.Repeat([]byte{2}, sha256.Size)},
		{bytes.Repeat([]byte{2}, sha256.Size), bytes.Repeat([]byte{1}, sha256.Size)},
		{make([]byte, sha256.Size), make([]byte, sha256.Size)},
		{[]byte("short"), bytes.Repeat([]byte{3}, sha256.Size)},
		{bytes.Repeat([]byte{3}, sha256.Size), nil},
		{bytes.Repeat([]byte{4}, 48), bytes.Repeat([]byte{5}, 16)},
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			got, want := hashChildren(c.l, c.r), rfc6962.DefaultHasher.HashChildren(c.l, c.r)
			if !bytes.Equal(got, want) {
				t.Fatalf("hashChildren = %x, rfc6962 gives %x", got, want)
			}
			if prev != nil && &prev[0] == &got[0] {
				t.Fatal("two results share their bytes")
			}
			prev = got
		})
	}
}

// BenchmarkHashChildren: hashChildren against rfc6962's hasher.
func BenchmarkHashChildren(b *testing.B) {
	l, r := bytes.Repeat([]byte{1}, sha256.Size), bytes.Repeat([]byte{2}, sha256.Size)
	for _, c := range []struct {
		name string
		f    func(l, r []byte) []byte
	}{{"hashChildren", hashChildren}, {"rfc6962", rfc6962.DefaultHasher.HashChildren}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				l = c.f(l, r)
			}
		})
	}
}
