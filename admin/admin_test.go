package admin

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

func TestDocsListEveryRoute(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `((?:GET|POST|PUT|DELETE) /admin/[^`]*)` \\|").FindAllSubmatch(doc, -1) {
		documented = append(documented, string(m[1]))
	}
	code := Patterns()
	slices.Sort(code)
	slices.Sort(documented)
	if len(code) == 0 || !slices.Equal(code, documented) {
		t.Fatalf("admin routes %v\ndocs/api.md lists %v", code, documented)
	}
}
