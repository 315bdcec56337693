package trace

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkVerify verifies the published vector: a decision of two contributors on two
// nodes of two institutions (six records, two checkpoints, two certificates).
func BenchmarkVerify(b *testing.B) {
	v, err := os.ReadFile(filepath.Join("testdata", "vector.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(v)))
	for b.Loop() {
		if _, err := Verify(v, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
