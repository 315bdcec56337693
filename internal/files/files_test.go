package files

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReplace(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := Replace(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Replace(p, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if string(b) != "two" || st.Mode().Perm() != 0o644 {
		t.Fatalf("%q %v", b, st.Mode())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
}

func TestWriteNewRefusesAnExistingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := WriteNew(p, []byte("a"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteNew(p, []byte("b"), 0o600); !errors.Is(err, os.ErrExist) {
		t.Fatalf("got %v", err)
	}
	if err := Write(p, []byte("c"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "c" {
		t.Fatalf("%q", b)
	}
}

func TestReadCapped(t *testing.T) {
	if b, err := ReadCapped(strings.NewReader("12345"), 5, "Cap"); err != nil || string(b) != "12345" {
		t.Fatalf("%q %v", b, err)
	}
	_, err := ReadCapped(strings.NewReader("123456"), 5, "MaxThing")
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "5 bytes (MaxThing)") {
		t.Fatalf("%v", err)
	}
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("123456"), 0o600)
	if _, err := ReadFileCapped(p, 5, "MaxThing"); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), p) {
		t.Fatalf("%v", err)
	}
}
