// Package ledger is a node's signed, append-only audit log.
//
// Entries are Open Audit Records (package oar) stored in a C2SP tlog-tiles log written
// by Tessera's POSIX driver. Records are sealed in micro-batches: the Merkle root of a
// batch is signed with ML-DSA-65 and Ed25519 and logged as a seal entry right after the
// batch. Append returns a receipt (seal plus inclusion proof) only once the record and
// its seal are durable in the journal, a group-commit write-ahead log that Tessera
// integrates from and that is replayed after a crash. Tessera's checkpoints over the
// whole log carry Ed25519 and ML-DSA-65 signed-note signatures.
//
// One process at a time may hold a ledger directory.
package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/internal/files"
	"github.com/sios-project/sios/oar"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
)

// Paths inside a ledger directory.
const (
	logDirName     = "log"
	journalDirName = "journal"
	seenFileName   = "seen-checkpoint"
)

// Options configures a Ledger. Zero values take the defaults noted.
type Options struct {
	// SealMaxRecords caps the records under one seal (default 4096).
	SealMaxRecords int
	// SealMaxDelay is how long the sealer may wait for more records once one arrives,
	// when records are arriving steadily (the previous seal is younger than the delay).
	// A record arriving after a quiet spell is sealed at once. Waiting makes fewer,
	// larger seals — each ML-DSA-65 signature costs ~0.3 ms of CPU — at the price of up
	// to this much receipt latency under load. Default 0: a seal covers whatever queued
	// while the previous one was being made.
	SealMaxDelay time.Duration
	// TesseraBatchSize and TesseraBatchAge set Tessera's sequencing batches
	// (defaults 4096 and 100ms).
	TesseraBatchSize uint
	TesseraBatchAge  time.Duration
	// CheckpointInterval is how often Tessera may publish a checkpoint (default 1s,
	// at least 100ms).
	CheckpointInterval time.Duration
	// JournalSegmentSize is the size at which the journal starts a new segment (default 64 MiB).
	JournalSegmentSize int64
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Observe, when set, receives how long each append took until its record was
	// durable (StageAppend), each seal took to sign (StageSeal) and each journal write
	// took to become durable, fdatasync included (StageFsync). It must not block.
	Observe func(stage string, d time.Duration)
}

// Stages Options.Observe reports.
const (
	StageAppend = "append"
	StageSeal   = "seal"
	StageFsync  = "fsync"
)

// Defaults for Tessera's sequencing batches.
const (
	DefaultTesseraBatchSize = 4096
	DefaultTesseraBatchAge  = 100 * time.Millisecond
)

func (o *Options) setDefaults() {
	if o.SealMaxRecords <= 0 || o.SealMaxRecords > oar.MaxSealCount {
		o.SealMaxRecords = 4096
	}
	if o.TesseraBatchSize == 0 {
		o.TesseraBatchSize = DefaultTesseraBatchSize
	}
	if o.TesseraBatchAge == 0 {
		o.TesseraBatchAge = DefaultTesseraBatchAge
	}
	if o.CheckpointInterval < 100*time.Millisecond {
		o.CheckpointInterval = time.Second
	}
	if o.JournalSegmentSize <= 0 {
		o.JournalSegmentSize = 64 << 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("ledger is closed")

// Ledger appends records to a node's audit log. It is safe for concurrent use.
type Ledger struct {
	dir    string
	node   *identity.Node
	opts   Options
	lock   *os.File
	jrnl   *journal
	store  *store
	add    tessera.AddFn
	tstop  func(context.Context) error
	cancel context.CancelFunc

	closeMu sync.RWMutex
	closed  bool // guarded by closeMu

	reqs   chan *pending
	sealed chan *sealed
	idle   chan struct{} // holds a token while the journaler waits for a sealed batch
	feed   chan *batch
	futs   chan future
	done   chan struct{} // closed when the waiter has drained

	// owned by the sealer goroutine
	lastSeal time.Time
	next     uint64
	seq      uint64
	prev     []byte

	assigned   atomic.Uint64 // entries journaled so far: the log size once integrated
	integrated atomic.Uint64
	failMu     sync.Mutex
	failure    error // guarded by failMu; sticky: once set, appends fail
}

type pending struct {
	entry []byte
	hash  []byte
	done  chan result
}

type result struct {
	receipt *oar.Receipt
	err     error
}

type future struct {
	index uint64
	f     tessera.IndexFuture
}

// Open opens (creating if needed) the ledger in dir for node, replaying any journal
// frames that Tessera had not integrated before a crash.
func Open(ctx context.Context, dir string, node *identity.Node, opts Options) (*Ledger, error) {
	opts.setDefaults()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	l := &Ledger{dir: dir, node: node, opts: opts, lock: lock, store: newStore(filepath.Join(dir, logDirName))}
	if err := l.start(ctx); err != nil {
		lock.Close()
		return nil, err
	}
	return l, nil
}

func (l *Ledger) start(ctx context.Context) error {
	driver, err := posix.New(ctx, posix.Config{Path: filepath.Join(l.dir, logDirName), HTTPClient: noNetwork})
	if err != nil {
		return err
	}
	ed, ml := l.node.Key.NoteSigners(Origin(l.node.ID()))
	aopts := tessera.NewAppendOptions().
		WithCheckpointSigner(ed, ml).
		WithBatching(l.opts.TesseraBatchSize, l.opts.TesseraBatchAge).
		WithCheckpointInterval(l.opts.CheckpointInterval).
		WithPushback(1 << 20).
		// Never re-sign an unchanged tree: a checkpoint is only made for new entries.
		WithCheckpointRepublishInterval(0)
	tctx, cancel := context.WithCancel(context.Background())
	appender, shutdown, reader, err := tessera.NewAppender(tctx, driver, aopts)
	if err != nil {
		cancel()
		return fmt.Errorf("open audit log: %v", err)
	}
	l.add, l.tstop, l.cancel = appender.Add, shutdown, cancel
	size, err := reader.IntegratedSize(ctx)
	if err != nil {
		cancel()
		return fmt.Errorf("audit log size: %v", err)
	}
	l.integrated.Store(size)

	jrnl, batches, err := openJournal(filepath.Join(l.dir, journalDirName), l.opts.JournalSegmentSize, size)
	if err != nil {
		cancel()
		return err
	}
	l.jrnl = jrnl
	if n := len(batches); n > 0 && batches[0].first > size {
		cancel()
		return fmt.Errorf("journal starts at entry %d but the log holds only %d: entries are missing", batches[0].first, size)
	}
	if err := l.resume(ctx, size, batches); err != nil {
		cancel()
		return err
	}
	// Never extend a history other than the one this node saw: a log restored from an
	// old copy or rewritten must be investigated, not appended to.
	if err := l.checkSeen(ctx); err != nil {
		cancel()
		return err
	}
	// Verification no longer records what it saw (it writes nothing), so the node does:
	// the checkpoint it starts from, as well as the one it closes with.
	if raw, err := l.store.checkpoint(); err == nil {
		if err := l.noteSeen(raw); err != nil {
			cancel()
			return err
		}
	}

	l.assigned.Store(l.next)
	l.reqs = make(chan *pending, 4*l.opts.SealMaxRecords)
	l.sealed = make(chan *sealed, 2)
	l.idle = make(chan struct{}, 1)
	l.feed = make(chan *batch, 64)
	l.futs = make(chan future, 1<<16)
	l.done = make(chan struct{})
	go l.sealer()
	go l.journaler()
	go l.feeder()
	go l.waiter()
	for _, b := range batches {
		if b.end() <= size {
			continue
		}
		if b.first < size { // Tessera integrated part of this batch before the crash
			b = &batch{first: size, entries: b.entries[size-b.first:]}
		}
		l.feed <- b
	}
	return nil
}

// resume finds the last seal, from the journal or else the log, to continue the chain.
func (l *Ledger) resume(ctx context.Context, size uint64, batches []*batch) error {
	var last []byte
	l.next = size
	if n := len(batches); n > 0 {
		b := batches[n-1]
		last = b.entries[len(b.entries)-1]
		l.next = max(size, b.end())
	} else if size > 0 {
		es, err := l.store.entries(ctx, size-1, size, size)
		if err != nil {
			return err
		}
		last = es[0]
	}
	if last == nil {
		return nil
	}
	e, err := oar.Parse(last)
	if err != nil {
		return fmt.Errorf("last log entry %d: %v", l.next-1, err)
	}
	if e.Kind != oar.KindSeal {
		return fmt.Errorf("log ends with an unsealed record at index %d and the journal holds nothing to complete it", l.next-1)
	}
	l.seq, l.prev = e.Seal.Seq+1, oar.RecordHash(last)
	return nil
}

func (l *Ledger) checkSeen(ctx context.Context) error {
	old, err := readSeen(l.dir, l.node.ID(), l.node.Public())
	if err != nil || old == nil {
		return err
	}
	raw, err := l.store.checkpoint()
	if err != nil {
		return fmt.Errorf("audit log checkpoint: %v", err)
	}
	cur, err := ParseCheckpoint(raw, l.node.ID(), l.node.Public())
	if err != nil {
		return err
	}
	return consistent(ctx, l.store, old, cur)
}

// Node is the ledger's node identity.
func (l *Ledger) Node() *identity.Node { return l.node }

// Append logs the record and returns its receipt once the record and its seal are
// durable. Members left empty are filled: v, kind, node and time.
func (l *Ledger) Append(ctx context.Context, r *oar.Record) (*oar.Receipt, []byte, error) {
	r.V, r.Kind, r.Node = oar.Version, oar.KindRecord, l.node.ID()
	if r.Time == "" {
		r.Time = oar.FormatTime(l.opts.Now())
	}
	entry, err := r.Encode()
	if err != nil {
		return nil, nil, fmt.Errorf("audit record: %w", err)
	}
	p := &pending{entry: entry, hash: oar.RecordHash(entry), done: make(chan result, 1)}
	queued := time.Now()
	l.closeMu.RLock()
	if l.closed {
		l.closeMu.RUnlock()
		return nil, nil, ErrClosed
	}
	if err := l.err(); err != nil {
		l.closeMu.RUnlock()
		return nil, nil, err
	}
	select {
	case l.reqs <- p:
	case <-ctx.Done():
		l.closeMu.RUnlock()
		return nil, nil, ctx.Err()
	}
	l.closeMu.RUnlock()
	select {
	case res := <-p.done:
		if l.opts.Observe != nil && res.err == nil {
			l.opts.Observe(StageAppend, time.Since(queued))
		}
		return res.receipt, entry, res.err
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

// Err is why the ledger stopped taking records (nil while it takes them): a journal
// or log failure, after which every append fails until the node restarts, or ErrClosed.
func (l *Ledger) Err() error {
	l.closeMu.RLock()
	closed := l.closed
	l.closeMu.RUnlock()
	if closed {
		return ErrClosed
	}
	return l.err()
}

func (l *Ledger) err() error {
	l.failMu.Lock()
	defer l.failMu.Unlock()
	return l.failure
}

func (l *Ledger) fail(err error) {
	l.failMu.Lock()
	defer l.failMu.Unlock()
	if l.failure == nil {
		l.failure = fmt.Errorf("audit ledger stopped: %v (restart the node to recover from the journal)", err)
	}
}

// sealer groups queued records into batches and seals each (see seal).
func (l *Ledger) sealer() {
	defer close(l.sealed)
	max := l.opts.SealMaxRecords
	for {
		p, ok := <-l.reqs
		if !ok {
			return
		}
		group := append(make([]*pending, 0, 64), p)
		open := l.gather(&group, max)
		if err := l.err(); err != nil {
			failAll(group, err)
		} else {
			l.seal(group)
		}
		if !open {
			return
		}
	}
}

// gather adds queued requests to group up to limit, waiting up to SealMaxDelay for more:
// waiting lets one signature (about 0.3 ms of CPU) cover more records. But once the
// journal waits for work and the group holds at least limit/16 records (enough that
// the signature costs little per record), it is sealed at once: waiting on would only
// leave the journal, whose fdatasync every receipt waits for, idle while records queue.
// It reports false once the request channel is closed.
func (l *Ledger) gather(group *[]*pending, limit int) bool {
	var timer <-chan time.Time
	if l.opts.SealMaxDelay > 0 && time.Since(l.lastSeal) < l.opts.SealMaxDelay {
		t := time.NewTimer(l.opts.SealMaxDelay)
		defer t.Stop()
		timer = t.C
	}
	early := max(1, limit/16)
	journalIdle := false
	for len(*group) < limit {
		select {
		case p, ok := <-l.reqs:
			if !ok {
				return false
			}
			*group = append(*group, p)
			continue
		default:
		}
		if timer == nil || journalIdle && len(*group) >= early {
			return true
		}
		select {
		case p, ok := <-l.reqs:
			if !ok {
				return false
			}
			*group = append(*group, p)
		case <-timer:
			return true
		case <-l.idle:
			journalIdle = true
		}
	}
	return true
}

// sealed is a signed batch on its way to the journal.
type sealed struct {
	group     []*pending
	hashes    [][]byte
	batch     *batch
	sealIndex uint64
}

// seal assigns the group its indices, signs its seal and passes it to the journaler.
// Signing batch k+1 here overlaps with the journal making batch k durable.
func (l *Ledger) seal(group []*pending) {
	hashes := make([][]byte, len(group))
	entries := make([][]byte, len(group), len(group)+1)
	for i, p := range group {
		hashes[i], entries[i] = p.hash, p.entry
	}
	first := l.next
	t0 := time.Now()
	_, sealEntry, err := oar.NewSeal(l.node.Key, l.node.ID(), l.seq, first, hashes, l.prev, l.opts.Now())
	if err != nil {
		l.fail(err)
		failAll(group, l.err())
		return
	}
	if l.opts.Observe != nil {
		l.opts.Observe(StageSeal, time.Since(t0))
	}
	sealIndex := first + uint64(len(group))
	l.next, l.seq, l.prev = sealIndex+1, l.seq+1, oar.RecordHash(sealEntry)
	l.lastSeal = time.Now()
	l.sealed <- &sealed{group: group, hashes: hashes, sealIndex: sealIndex,
		batch: &batch{first: first, entries: append(entries, sealEntry)}}
	select {
	case <-l.idle: // the journal has work again: an idle token from before is stale
	default:
	}
}

func failAll(group []*pending, err error) {
	for _, p := range group {
		p.done <- result{err: err}
	}
}

// journaler makes each sealed batch durable, hands out its receipts, and passes it on
// to Tessera. After a failure every later batch fails too: their indices follow the
// failed one. When no sealed batch is queued, it leaves a token in idle.
func (l *Ledger) journaler() {
	defer close(l.feed)
	for {
		s, ok := <-l.sealed
		if !ok {
			return
		}
		l.journal(s)
		if len(l.sealed) == 0 {
			select {
			case l.idle <- struct{}{}: // nothing queued: the sealer may seal what it has
			default:
			}
		}
	}
}

// journal makes one sealed batch durable and hands out its receipts.
func (l *Ledger) journal(s *sealed) {
	if err := l.err(); err != nil {
		failAll(s.group, err)
		return
	}
	t0 := time.Now()
	if err := l.jrnl.write(s.batch); err != nil {
		l.fail(err)
		failAll(s.group, l.err())
		return
	}
	if l.opts.Observe != nil {
		l.opts.Observe(StageFsync, time.Since(t0))
	}
	l.assigned.Store(s.batch.end())
	sealEntry := s.batch.entries[len(s.batch.entries)-1]
	hexHashes, proofs := oar.HexProofs(s.hashes)
	for i, p := range s.group {
		p.done <- result{receipt: &oar.Receipt{V: oar.Version, Kind: oar.KindReceipt, Index: s.batch.first + uint64(i),
			RecordHash: hexHashes[i], SealIndex: s.sealIndex, InclusionProof: proofs[i], Seal: sealEntry}}
	}
	l.feed <- s.batch
}

// feeder passes journaled batches to Tessera in order, so that Tessera assigns each
// entry the index the journal and the receipts already gave it. Once the ledger has
// failed it passes nothing more: what is journaled is integrated when the node next
// starts (Tessera itself, as sios builds it, sequences nothing after a failed batch;
// third_party/tessera/SIOS.md).
func (l *Ledger) feeder() {
	defer close(l.futs)
	ctx := context.Background()
	for b := range l.feed {
		if l.err() != nil {
			continue
		}
		for i, e := range b.entries {
			l.futs <- future{index: b.first + uint64(i), f: l.add(ctx, tessera.NewEntry(e))}
		}
	}
}

// waiter checks each index Tessera assigns and releases journal segments it covers.
func (l *Ledger) waiter() {
	defer close(l.done)
	for f := range l.futs {
		idx, err := f.f()
		if err == nil && idx.Index != f.index {
			err = fmt.Errorf("Tessera assigned index %d to entry %d", idx.Index, f.index)
		}
		if err != nil {
			l.fail(err)
			continue
		}
		if l.integrated.Load() < f.index+1 {
			l.integrated.Store(f.index + 1)
		}
		if f.index%1024 == 0 {
			l.jrnl.release(f.index + 1)
		}
	}
}

// Close stops accepting records, waits until everything is integrated and covered by
// a published checkpoint, records that checkpoint as seen, and releases the directory.
func (l *Ledger) Close(ctx context.Context) error {
	l.closeMu.Lock()
	if l.closed {
		l.closeMu.Unlock()
		return nil
	}
	l.closed = true
	close(l.reqs)
	l.closeMu.Unlock()
	<-l.done
	err := l.err()
	if err == nil {
		if serr := l.tstop(ctx); serr != nil {
			err = fmt.Errorf("publish final checkpoint: %v", serr)
		}
	}
	l.cancel()
	if err == nil {
		if cp, cerr := l.store.checkpoint(); cerr == nil {
			err = l.noteSeen(cp)
		}
	}
	if jerr := l.jrnl.close(l.integrated.Load()); err == nil && l.err() == nil {
		err = jerr
	}
	l.lock.Close()
	return err
}

// Pending is the journal's depth: entries journaled (durable, receipted) that Tessera
// has not yet integrated into the log.
func (l *Ledger) Pending() uint64 {
	a, i := l.assigned.Load(), l.integrated.Load()
	if i >= a {
		return 0
	}
	return a - i
}

// Size is the number of entries journaled so far (records and seals); Tessera may
// still be integrating the last of them.
func (l *Ledger) Size() uint64 { return l.assigned.Load() }

// Sync waits until every entry journaled before the call is integrated into the log.
func (l *Ledger) Sync(ctx context.Context) error {
	target := l.assigned.Load()
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for l.integrated.Load() < target {
		if err := l.err(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// noteSeen records cp as the latest checkpoint this node has seen of its own log, if it
// is newer than the one recorded. Verification later demands consistency with it.
func (l *Ledger) noteSeen(cp []byte) error {
	return noteSeen(l.dir, l.node, cp)
}

func noteSeen(dir string, node *identity.Node, raw []byte) error {
	cp, err := ParseCheckpoint(raw, node.ID(), node.Public())
	if err != nil {
		return err
	}
	path := filepath.Join(dir, seenFileName)
	if old, err := readSeen(dir, node.ID(), node.Public()); err != nil {
		return err
	} else if old != nil {
		if err := consistent(context.Background(), newStore(filepath.Join(dir, logDirName)), old, cp); err != nil {
			return err
		}
		if old.Size >= cp.Size {
			return nil
		}
	}
	return files.Replace(path, raw, 0o600)
}

// readSeen returns the checkpoint this node last saw of its own log, or nil.
func readSeen(dir, nodeID string, pub identity.PublicKey) (*Checkpoint, error) {
	path := filepath.Join(dir, seenFileName)
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	cp, err := ParseCheckpoint(raw, nodeID, pub)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return cp, nil
}

// ErrInconsistent marks a log that does not extend the history this node saw before.
var ErrInconsistent = errors.New("the audit log does not extend the history this node saw")

// consistent checks that cur extends old: an RFC 6962 consistency proof built from the
// log's tiles takes old's root to cur's.
func consistent(ctx context.Context, st *store, old, cur *Checkpoint) error {
	switch {
	case old.Size > cur.Size:
		return fmt.Errorf("%w: the log's checkpoint is at size %d, but this node saw one at size %d (entries were removed)", ErrInconsistent, cur.Size, old.Size)
	case old.Size == cur.Size:
		if !bytes.Equal(old.Root, cur.Root) {
			return fmt.Errorf("%w: two different roots at size %d (history was rewritten)", ErrInconsistent, cur.Size)
		}
		return nil
	case old.Size == 0:
		return nil
	}
	pb, err := st.proofBuilder(ctx, cur.Size)
	if err != nil {
		return err
	}
	p, err := pb.ConsistencyProof(ctx, old.Size, cur.Size)
	if err != nil {
		return fmt.Errorf("consistency proof %d→%d: %v", old.Size, cur.Size, err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old.Size, cur.Size, p, old.Root, cur.Root); err != nil {
		return fmt.Errorf("%w: the first %d entries changed since this node saw them (history was rewritten)", ErrInconsistent, old.Size)
	}
	return nil
}
