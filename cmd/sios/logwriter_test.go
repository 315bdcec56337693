package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer written by one goroutine at a time, counting writes.
type lockedBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes++
	return l.b.Write(p)
}

// Lines written from many goroutines all arrive, whole, in fewer writes than lines;
// a line written after Close still arrives.
func TestLineWriter(t *testing.T) {
	out := &lockedBuffer{}
	lw := newLineWriter(out)
	const writers, each = 16, 500
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				fmt.Fprintf(lw, "level=INFO msg=request writer=%d n=%d pad=%s\n", g, i, strings.Repeat("x", i%40+1))
			}
		}()
	}
	wg.Wait()
	lw.Close()
	fmt.Fprintf(lw, "level=INFO msg=stopped\n")
	lines := strings.Split(strings.TrimSuffix(out.b.String(), "\n"), "\n")
	if len(lines) != writers*each+1 || lines[len(lines)-1] != "level=INFO msg=stopped" {
		t.Fatalf("%d lines, want %d; last %q", len(lines), writers*each+1, lines[len(lines)-1])
	}
	seen := map[string]bool{}
	for _, l := range lines[:len(lines)-1] {
		var g, i int
		var pad string
		if _, err := fmt.Sscanf(l, "level=INFO msg=request writer=%d n=%d pad=%s", &g, &i, &pad); err != nil || pad != strings.Repeat("x", i%40+1) {
			t.Fatalf("a line arrived broken: %q (%v)", l, err)
		}
		seen[l] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("%d distinct lines, want %d", len(seen), writers*each)
	}
	t.Logf("%d lines in %d writes", len(lines), out.writes)
}

// The first line goes out at once; lines that follow within the batch interval wait
// for it and go out together; Close writes them without waiting for the interval.
func TestLineWriterBatchesWithinItsInterval(t *testing.T) {
	out := &lockedBuffer{}
	lw := newLineWriter(out)
	lw.interval = time.Hour
	fmt.Fprintf(lw, "level=INFO msg=first\n")
	if err := waitFor(context.Background(), 5*time.Second, func() bool { out.mu.Lock(); defer out.mu.Unlock(); return out.writes == 1 }); err != nil {
		t.Fatalf("the first line did not go out at once: %v", err)
	}
	for i := range 200 {
		fmt.Fprintf(lw, "level=INFO msg=request n=%d\n", i)
	}
	time.Sleep(20 * time.Millisecond)
	out.mu.Lock()
	writes := out.writes
	out.mu.Unlock()
	if writes != 1 {
		t.Fatalf("%d writes within the interval, want the first line's alone", writes)
	}
	closed := make(chan struct{})
	go func() { lw.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for the batch interval")
	}
	if n := strings.Count(out.b.String(), "\n"); n != 201 || out.writes != 2 {
		t.Fatalf("%d lines in %d writes, want 201 in 2", n, out.writes)
	}
}
