// sios: a test of sios change 7 (SIOS.md): the queue flushes batches in the order their
// entries were added, even when a flush by age and a flush by size race.

package storage

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
)

// One goroutine adds entries; batches are flushed by size (8) and by age (a
// microsecond) at once, so a timer's flush and an Add's flush race all the time. The
// flush function must see the entries in the order they were added. (Before change 7
// a timer's flush could be overtaken between taking its batch and handing it over:
// under -race this test saw that within a few seconds.)
func TestQueueFlushesInAddOrder(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu     sync.Mutex
		next   uint64
		misses []string
	)
	flush := func(_ context.Context, entries []*tessera.Entry) error {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range entries {
			if got := binary.BigEndian.Uint64(e.Data()); got != next && len(misses) < 5 {
				misses = append(misses, fmt.Sprintf("entry %d was flushed where entry %d belongs", got, next))
			}
			e.MarshalBundleData(next)
			next++
		}
		return nil
	}
	q := NewQueue(ctx, time.Microsecond, 8, flush)
	var last tessera.IndexFuture
	deadline := time.Now().Add(3 * time.Second)
	var i uint64
	for ; time.Now().Before(deadline); i++ {
		last = q.Add(ctx, tessera.NewEntry(binary.BigEndian.AppendUint64(nil, i)))
	}
	if _, err := last(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(misses) > 0 {
		t.Fatalf("%d entries added by one goroutine, flushed out of order:\n%s", i, strings.Join(misses, "\n"))
	}
	if next != i {
		t.Fatalf("%d entries added, %d flushed", i, next)
	}
}
