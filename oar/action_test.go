package oar

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// actionConstants are the values of the Action constants in action.go.
func actionConstants(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "action.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok && strings.HasPrefix(vs.Names[0].Name, "Action") {
			s, _ := strconv.Unquote(vs.Values[0].(*ast.BasicLit).Value)
			out = append(out, s)
		}
		return true
	})
	return out
}

func TestActionsTableMatchesTheCode(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "audit-actions.md"))
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z0-9.-]+)` \\|").FindAllSubmatch(doc, -1) {
		documented = append(documented, string(m[1]))
	}
	code := actionConstants(t)
	if len(code) == 0 {
		t.Fatal("no Action constants found")
	}
	slices.Sort(code)
	slices.Sort(documented)
	if !slices.Equal(code, documented) {
		t.Fatalf("oar/action.go lists %v\ndocs/audit-actions.md lists %v", code, documented)
	}
}

// TestActionsAreNamedFromTheList refuses an action written as a string anywhere in the
// module's code: a record's Action member, or the argument of a method that builds a
// record (record, memoryRefusal), must be one of the constants.
func TestActionsAreNamedFromTheList(t *testing.T) {
	root := ".."
	fset := token.NewFileSet()
	var bad []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.KeyValueExpr:
				if k, ok := x.Key.(*ast.Ident); ok && k.Name == "Action" {
					if lit, ok := x.Value.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						bad = append(bad, fset.Position(lit.Pos()).String()+": Action: "+lit.Value)
					}
				}
			case *ast.CallExpr:
				if sel, ok := x.Fun.(*ast.SelectorExpr); ok && (sel.Sel.Name == "record" || sel.Sel.Name == "memoryRefusal") {
					for _, a := range x.Args {
						if lit, ok := a.(*ast.BasicLit); ok && lit.Kind == token.STRING && strings.Contains(lit.Value, ".") {
							bad = append(bad, fset.Position(lit.Pos()).String()+": "+sel.Sel.Name+"("+lit.Value+")")
						}
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Fatalf("actions written as strings instead of oar.Action… constants:\n%s", strings.Join(bad, "\n"))
	}
}
