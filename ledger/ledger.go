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
	"slices"
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
	// SealMaxDelay is the longest a record waits for its seal when nobody waits for
	// its receipt. A record whose receipt is wanted (Append, or Written.Receipt) is
	// sealed as soon as the journal is free, within the SealInterval budget; and when
	// the receipts of written records are asked for some time after they were written
	// (an answer's receipt, asked for once the model has answered), the open group is
	// sealed a little ahead of that. Waiting makes fewer, larger seals — each
	// ML-DSA-65 signature costs ~0.3–0.8 ms of CPU. Default 0: a seal covers whatever
	// queued while the previous one was being made.
	SealMaxDelay time.Duration
	// SealInterval is how often, on average, seals may be made before SealMaxDelay
	// (bursts of 8 back to back): light traffic has its receipts after about one
	// fdatasync, and steady traffic shares each signature among the records of at
	// least this long. Default SealMaxDelay.
	SealInterval time.Duration
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
	if o.SealInterval <= 0 || o.SealInterval > o.SealMaxDelay {
		o.SealInterval = o.SealMaxDelay
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

	// Records queue in inbox (guarded by inMu; slots bounds it) until the writer's
	// state takes them.
	inMu   sync.Mutex
	inbox  []*pending
	slots  chan struct{}
	stop   chan struct{} // closed by Close: the sealer writes what is left and stops
	frames chan *frame   // to the journaler; holds at most the one frame it waits for
	feed   chan *batch
	futs   chan future
	done   chan struct{} // closed when the waiter has drained

	// The writer's state, guarded by mu: whoever holds it (a caller that queued a
	// record, the journaler between frames, the sealer) takes queued records into the
	// frame being built, seals when due and hands the frame to the journaler when it
	// is idle.
	mu         sync.Mutex
	idleCond   *sync.Cond // broadcast when the journaler becomes idle
	cur        *frame
	jIdle      bool // the journaler waits for a frame
	closing    bool
	taken      []*pending // drain's buffer
	next       uint64
	seq        uint64
	prev       []byte
	open       []*pending // the open seal group: journaled, not yet sealed
	openHashes [][]byte
	openFirst  uint64
	openSince  time.Time
	sealBudget float64   // seals that may be made at once (sealDue), refilled one per SealInterval
	budgetAt   time.Time // when sealBudget was last refilled
	held       *batch    // owned by the journaler: journaled entries not yet passed to Tessera

	// Receipts asked for: wanted is one past the highest index whose receipt a caller
	// waits for; poke wakes the sealer when it rises; lags are how long after Write
	// returned recent receipts were asked for (a ring, guarded by lagMu).
	wanted   atomic.Uint64
	poke     chan struct{}
	lagMu    sync.Mutex
	lags     [lagSamples]time.Duration
	nlags    int
	leadN    int           // nlags when leadLast was computed
	leadLast time.Duration // lead() for leadN samples

	assigned   atomic.Uint64 // entries journaled so far: the log size once integrated
	integrated atomic.Uint64
	failMu     sync.Mutex
	failure    error // guarded by failMu; sticky: once set, appends fail
}

type pending struct {
	entry   []byte
	hash    []byte
	durable chan error  // one value: nil once journaled, or why not (a Write's only)
	done    chan result // one value: the receipt once sealed, or why not (nil for an Add)

	queued time.Time
	urgent bool   // a Write: its caller waits for durability, not for the seal
	wanted bool   // an Append: its caller waits for the receipt
	index  uint64 // given under the writer's state (take); read by others after durable
	acked  bool   // durable has its value; owned by the journaler
	// then, if set, is told instead of durable (an Add).
	then func(error)
}

// ack tells the record's caller that it is durable (nil) or why it is not.
func (p *pending) ack(err error) {
	if p.then != nil {
		p.then(err)
	} else if p.durable != nil {
		p.durable <- err
	}
	p.acked = true
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
	// The journal holds every entry until Tessera's tree state covers it, so Tessera
	// may make a batch's files durable together (SyncBatches: two syncs of the file
	// system per batch instead of ~70 synced operations; third_party/tessera/SIOS.md).
	driver, err := posix.New(ctx, posix.Config{Path: filepath.Join(l.dir, logDirName), HTTPClient: noNetwork, SyncBatches: true})
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
	tail, err := l.resume(ctx, size, batches)
	if err != nil {
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

	// Records the previous process made durable but did not live to seal are sealed
	// now, before anything new: the log never holds a record without its seal.
	if tail != nil {
		sb, err := l.sealTail(tail)
		if err != nil {
			cancel()
			return fmt.Errorf("seal the %d records journaled after the last seal: %v", len(tail.entries), err)
		}
		batches = append(batches, sb)
	}
	l.assigned.Store(l.next)
	l.slots = make(chan struct{}, 4*l.opts.SealMaxRecords)
	l.stop = make(chan struct{})
	l.frames = make(chan *frame, 1)
	l.poke = make(chan struct{}, 1)
	l.idleCond = sync.NewCond(&l.mu)
	l.cur, l.jIdle = &frame{b: &batch{first: l.next}}, true
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

// resume continues the seal chain from the last seal, in the journal or else the log,
// and returns the records journaled after it: durable records the previous process
// did not live to seal (sealTail seals them).
func (l *Ledger) resume(ctx context.Context, size uint64, batches []*batch) (*batch, error) {
	var last []byte
	l.next = size
	var tail *batch
	if n := len(batches); n > 0 {
		l.next = max(size, batches[n-1].end())
		var err error
		if last, tail, err = lastSeal(batches); err != nil {
			return nil, err
		}
		if tail != nil && tail.first < size {
			return nil, fmt.Errorf("the log holds records from index %d that no journaled seal covers", tail.first)
		}
	}
	if last == nil && size > 0 {
		es, err := l.store.entries(ctx, size-1, size, size)
		if err != nil {
			return nil, err
		}
		last = es[0]
	}
	if last == nil {
		return tail, nil
	}
	e, err := oar.Parse(last)
	if err != nil {
		return nil, fmt.Errorf("last seal: %v", err)
	}
	if e.Kind != oar.KindSeal {
		return nil, fmt.Errorf("log ends with an unsealed record at index %d and the journal holds nothing to complete it", size-1)
	}
	l.seq, l.prev = e.Seal.Seq+1, oar.RecordHash(last)
	return tail, nil
}

// lastSeal finds the journal's last seal and the entries after it (nil if none).
func lastSeal(batches []*batch) (seal []byte, tail *batch, err error) {
	end := batches[len(batches)-1].end()
	for i := len(batches) - 1; i >= 0; i-- {
		b := batches[i]
		for k := len(b.entries) - 1; k >= 0; k-- {
			e, err := oar.Parse(b.entries[k])
			if err != nil {
				return nil, nil, fmt.Errorf("journal entry %d: %v", b.first+uint64(k), err)
			}
			if e.Kind == oar.KindSeal {
				if idx := b.first + uint64(k); idx+1 < end {
					tail = entriesFrom(batches, idx+1)
				}
				return b.entries[k], tail, nil
			}
		}
	}
	return nil, entriesFrom(batches, batches[0].first), nil
}

// entriesFrom is the batches' entries from index first on, as one batch.
func entriesFrom(batches []*batch, first uint64) *batch {
	out := &batch{first: first}
	for _, b := range batches {
		for k, e := range b.entries {
			if b.first+uint64(k) >= first {
				out.entries = append(out.entries, e)
			}
		}
	}
	return out
}

// sealTail seals the records a previous process journaled but did not seal, and
// journals the seal. It returns the seal's batch to pass on to Tessera.
func (l *Ledger) sealTail(tail *batch) (*batch, error) {
	hashes := make([][]byte, len(tail.entries))
	for i, e := range tail.entries {
		hashes[i] = oar.RecordHash(e)
	}
	if len(hashes) > oar.MaxSealCount {
		return nil, fmt.Errorf("the journal holds %d records after its last seal, more than one seal covers (%d)", len(hashes), oar.MaxSealCount)
	}
	_, sealEntry, err := oar.NewSeal(l.node.Key, l.node.ID(), l.seq, tail.first, hashes, l.prev, l.opts.Now())
	if err != nil {
		return nil, err
	}
	b := &batch{first: l.next, entries: [][]byte{sealEntry}}
	if err := l.jrnl.write(b); err != nil {
		return nil, err
	}
	l.next, l.seq, l.prev = l.next+1, l.seq+1, oar.RecordHash(sealEntry)
	return b, nil
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
	p, err := l.queue(ctx, r, forReceipt)
	if err != nil {
		return nil, nil, err
	}
	// Every record has its done value in the end (a receipt or why not), after its
	// durable one: waiting for done alone wakes the caller once.
	select {
	case res := <-p.done:
		if res.err != nil {
			return nil, nil, res.err
		}
		return res.receipt, p.entry, nil
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

// Written is a record the journal holds durably; its seal may still be on its way.
type Written struct {
	Entry []byte // the record as logged (canonical)
	l     *Ledger
	p     *pending
	at    time.Time // when Write returned
	asked bool
	rc    *oar.Receipt
	err   error
	got   bool
}

// Receipt waits for the record's seal to be durable and returns its receipt. Asking
// for it has the record sealed as soon as the journal is free and the seal budget
// allows (see Options.SealInterval), and at most SealMaxDelay after it was written.
// It may be called more than once (not concurrently).
func (w *Written) Receipt(ctx context.Context) (*oar.Receipt, error) {
	if w.got {
		return w.rc, w.err
	}
	select {
	case res := <-w.p.done: // sealed already: nothing to ask for
		w.rc, w.err, w.got = res.receipt, res.err, true
		if !w.asked {
			w.l.noteLag(time.Since(w.at))
		}
		return w.rc, w.err
	default:
	}
	if !w.asked {
		w.asked = true
		w.l.noteLag(time.Since(w.at))
		w.l.want(w.p.index)
	}
	select {
	case res := <-w.p.done:
		w.rc, w.err, w.got = res.receipt, res.err, true
		return w.rc, w.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Write logs the record and returns once it is durable in the journal (written and
// fdatasynced), before its seal is: what must hold before anything it records may
// happen. A record that is durable is in the log for good, even if the node stops
// before sealing it (the node seals it when it next starts). Members left empty are
// filled: v, kind, node and time.
func (l *Ledger) Write(ctx context.Context, r *oar.Record) (*Written, error) {
	p, err := l.queue(ctx, r, forDurability)
	if err != nil {
		return nil, err
	}
	return l.written(ctx, p)
}

// written waits until a Write's record is durable.
func (l *Ledger) written(ctx context.Context, p *pending) (*Written, error) {
	select {
	case err := <-p.durable:
		if err != nil {
			return nil, err
		}
		return &Written{Entry: p.entry, l: l, p: p, at: time.Now()}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Add queues the record without hurrying it: it goes into the journal with the next
// write (a Write's or a seal's, at most about SealMaxDelay later), and nobody waits for
// its seal. For records nobody waits on, such as an answer's completion record. Once
// the record is durable, or cannot be, then is called with nil or why not, on the
// ledger's writer goroutine: it must not block. An error from Add itself (the record
// could not be queued) means then is never called.
func (l *Ledger) Add(ctx context.Context, r *oar.Record, then func(error)) error {
	_, err := l.queueThen(ctx, r, unhurried, then)
	return err
}

// What a caller of queue waits for.
type waitFor int

const (
	forReceipt    waitFor = iota // Append: the record sealed as soon as the budget allows
	forDurability                // Write: the record journaled at the next fdatasync
	unhurried                    // Add: the record journaled with whatever goes next
)

// lagSamples is how many recent receipt requests of written records the sealer looks
// back over to seal ahead of the next ones.
const lagSamples = 32

// noteLag records how long after its Write a record's receipt was asked for.
func (l *Ledger) noteLag(d time.Duration) {
	l.lagMu.Lock()
	l.lags[l.nlags%lagSamples] = d
	l.nlags++
	l.lagMu.Unlock()
}

// lead is how old the open group may grow before it is sealed ahead of the receipts
// that will be asked for: three quarters of a low percentile (the 5th of the last 32,
// the shortest while there are fewer than 8) of the lags between a record's Write and
// the request for its receipt, so that the seal is made and durable by then. A few
// callers that ask at once (a refusal, a ballot) do not take the lead away from the
// rest: their records are sealed on demand. Zero without such requests (seal as soon
// as the budget allows).
func (l *Ledger) lead() time.Duration {
	l.lagMu.Lock()
	defer l.lagMu.Unlock()
	if l.leadN == l.nlags {
		return l.leadLast
	}
	n := min(l.nlags, lagSamples)
	var sorted [lagSamples]time.Duration
	copy(sorted[:n], l.lags[:n])
	slices.Sort(sorted[:n])
	l.leadN, l.leadLast = l.nlags, sorted[n/8]*3/4
	return l.leadLast
}

// want asks for the seal of the record at index, waking the sealer if it is news.
func (l *Ledger) want(index uint64) {
	if l.raiseWanted(index) {
		l.nudge()
	}
}

// nudge wakes the sealer to look at the writer's state.
func (l *Ledger) nudge() {
	select {
	case l.poke <- struct{}{}:
	default:
	}
}

// raiseWanted notes that the receipt of the record at index is wanted; false if one at
// or after it already was.
func (l *Ledger) raiseWanted(index uint64) bool {
	for {
		cur := l.wanted.Load()
		if cur > index {
			return false
		}
		if l.wanted.CompareAndSwap(cur, index+1) {
			return true
		}
	}
}

// Prepared is a record encoded for this ledger — its canonical entry and record hash —
// that a later record (or a peer's reply) can name before it is written.
type Prepared struct {
	Entry []byte
	Hash  []byte
}

// Prepare fills the members Append would (v, kind, node, and time if empty), and
// encodes and hashes the record once, for WritePrepared.
func (l *Ledger) Prepare(r *oar.Record) (*Prepared, error) {
	r.V, r.Kind, r.Node = oar.Version, oar.KindRecord, l.node.ID()
	if r.Time == "" {
		r.Time = oar.FormatTime(l.opts.Now())
	}
	entry, err := r.Encode()
	if err != nil {
		return nil, fmt.Errorf("audit record: %w", err)
	}
	return &Prepared{Entry: entry, Hash: oar.RecordHash(entry)}, nil
}

// WritePrepared is Write for a record Prepare encoded.
func (l *Ledger) WritePrepared(ctx context.Context, pr *Prepared) (*Written, error) {
	p, err := l.enqueue(ctx, pr, forDurability, nil)
	if err != nil {
		return nil, err
	}
	return l.written(ctx, p)
}

// queue encodes the record and queues it for the writer.
func (l *Ledger) queue(ctx context.Context, r *oar.Record, wait waitFor) (*pending, error) {
	return l.queueThen(ctx, r, wait, nil)
}

// queueThen is queue with the function told when the record is durable (nil: the
// pending's durable channel is).
func (l *Ledger) queueThen(ctx context.Context, r *oar.Record, wait waitFor, then func(error)) (*pending, error) {
	pr, err := l.Prepare(r)
	if err != nil {
		return nil, err
	}
	return l.enqueue(ctx, pr, wait, then)
}

// enqueue queues a prepared record for the writer.
func (l *Ledger) enqueue(ctx context.Context, pr *Prepared, wait waitFor, then func(error)) (*pending, error) {
	p := &pending{entry: pr.Entry, hash: pr.Hash, queued: time.Now(), urgent: wait == forDurability, wanted: wait == forReceipt, then: then}
	// Only what a caller will read is made: an Add's caller reads neither.
	if wait == forDurability && then == nil {
		p.durable = make(chan error, 1)
	}
	if wait != unhurried {
		p.done = make(chan result, 1)
	}
	l.closeMu.RLock()
	if l.closed {
		l.closeMu.RUnlock()
		return nil, ErrClosed
	}
	if err := l.err(); err != nil {
		l.closeMu.RUnlock()
		return nil, err
	}
	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		l.closeMu.RUnlock()
		return nil, ctx.Err()
	}
	l.inMu.Lock()
	l.inbox = append(l.inbox, p)
	l.inMu.Unlock()
	l.closeMu.RUnlock()
	// A caller that waits for durability sees its record into a frame itself: handed
	// to the journaler at once if it is idle, else taken with the next one. Others
	// leave theirs to whoever holds the writer's state, or to the sealer; neither
	// signs a seal on a caller's goroutine that does not wait.
	switch {
	case p.urgent:
		l.mu.Lock()
		l.step(true)
		l.mu.Unlock()
	case l.mu.TryLock():
		l.step(false)
		l.mu.Unlock()
	default:
		l.nudge()
	}
	return p, nil
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

// The writing side is the writer's state (mu) and two goroutines, so that signing
// overlaps fdatasync:
//
//   - records queue in the inbox. Whoever holds the writer's state takes them, gives
//     them their indices and adds them to the frame being built; they join the open
//     seal group, whose seal is signed into the frame when the group is due (sealDue)
//     or full. The frame goes to the journaler whenever it is idle, so records that
//     queue during one fdatasync go together in the next (group commit). A caller
//     that waits for durability (Write) does this itself, so its record goes to an
//     idle journaler without waking another goroutine first; a caller that does not
//     wait takes the state only if it is free, and never signs.
//   - the sealer seals groups that are due by time, asked for (a receipt wanted) or
//     left when the ledger closes.
//   - the journaler writes each frame and fdatasyncs it, after which its records are
//     durable (Write returns) and the groups sealed in it have their receipts; then it
//     takes the state to send itself the next frame, if one is worth it. It passes
//     entries on to Tessera only up to a seal: the log never holds a record whose seal
//     is not journaled.
//
// So a record written with Write is durable after about one fdatasync, while one
// signature (0.3–0.8 ms of CPU) covers every record of a window that is as long as
// receipts allow (sealDue); a record appended for its receipt waits in the frame for
// the frame of its seal (or of a Write), so that it costs no fdatasync of its own.
// BenchmarkRequestsLikeTheGateway measures the pattern that matters most.

// frame is one journal write, built under the writer's state for the journaler.
type frame struct {
	b       *batch
	fresh   []*pending     // records this frame makes durable
	seals   []*sealedGroup // groups whose seal is in this frame
	orphans []*pending     // after a failure: records that will never be sealed
	urgent  bool           // holds a record whose caller waits for durability
}

// group is a seal group: consecutive records under one seal.
type group struct {
	first   uint64
	pending []*pending
	hashes  [][]byte
}

// sealedGroup is a group and its seal.
type sealedGroup struct {
	group
	sealIndex uint64
	seal      []byte
}

// sealer seals when a group is due by time (SealMaxDelay, the lead of wanted
// receipts, the seal budget) or asked for (want), and at Close writes what is left.
func (l *Ledger) sealer() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		var wake <-chan time.Time
		l.mu.Lock()
		if len(l.open) > 0 {
			timer.Reset(l.nextSealCheck())
			wake = timer.C
		}
		l.mu.Unlock()
		select {
		case <-wake:
		case <-l.poke:
		case <-l.stop:
			l.finish()
			return
		}
		timer.Stop()
		l.mu.Lock()
		l.step(true)
		l.mu.Unlock()
	}
}

// step (mu held) takes queued records into the frame, seals the open group if it is
// due (and seal allows signing here), and hands the frame to the journaler if it is
// idle and the frame holds something worth an fdatasync.
func (l *Ledger) step(seal bool) {
	l.drain()
	if err := l.err(); err != nil {
		l.cur.orphans = append(l.cur.orphans, l.open...)
		l.open, l.openHashes = nil, nil
	} else if len(l.open) > 0 && (l.closing || l.sealDue(l.jIdle)) {
		if seal {
			l.sealInto(l.cur)
		} else {
			l.nudge()
		}
	}
	l.trySend()
}

// drain (mu held) takes queued records into the frame, as many as it has room for.
func (l *Ledger) drain() {
	room := 4*l.opts.SealMaxRecords - len(l.cur.fresh)
	l.inMu.Lock()
	n := min(room, len(l.inbox))
	if n <= 0 {
		l.inMu.Unlock()
		return
	}
	l.taken = append(l.taken[:0], l.inbox[:n]...)
	rest := copy(l.inbox, l.inbox[n:])
	clear(l.inbox[rest:])
	l.inbox = l.inbox[:rest]
	l.inMu.Unlock()
	for _, p := range l.taken {
		<-l.slots
		l.take(l.cur, p)
	}
	clear(l.taken)
}

// trySend (mu held) hands the frame to the journaler if it waits for one and the frame
// holds something worth an fdatasync: a seal, a record whose caller waits for
// durability, or orphans — or, when closing, anything. Records appended for their
// receipt wait for their seal's frame.
func (l *Ledger) trySend() {
	f := l.cur
	if !l.jIdle || !(len(f.seals) > 0 || f.urgent || len(f.orphans) > 0 || l.closing && len(f.b.entries) > 0) {
		return
	}
	l.frames <- f // the journaler is idle: the channel is empty
	l.cur, l.jIdle = &frame{b: &batch{first: l.next}}, false
}

// finish writes everything queued or open when the ledger closes, then stops the
// journaler.
func (l *Ledger) finish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closing = true
	for {
		l.step(true)
		l.inMu.Lock()
		queued := len(l.inbox)
		l.inMu.Unlock()
		f := l.cur
		if queued == 0 && len(l.open) == 0 && len(f.b.entries) == 0 && len(f.orphans) == 0 && len(f.seals) == 0 && len(f.fresh) == 0 {
			break
		}
		for !l.jIdle {
			l.idleCond.Wait()
		}
	}
	for !l.jIdle {
		l.idleCond.Wait()
	}
	close(l.frames)
}

// take gives a queued record its index and adds it to the frame and the open group,
// sealing the group into the frame when it is full.
func (l *Ledger) take(f *frame, p *pending) {
	if l.err() != nil {
		f.orphans = append(f.orphans, p)
		return
	}
	if len(l.open) == 0 {
		l.openFirst, l.openSince = l.next, time.Now()
		l.nudge() // the sealer times the new group
	}
	p.index = l.next
	if p.wanted {
		l.raiseWanted(p.index) // an Append: its caller waits for the receipt now
	}
	l.next++
	f.b.entries, f.b.hashes = append(f.b.entries, p.entry), append(f.b.hashes, p.hash)
	f.fresh = append(f.fresh, p)
	f.urgent = f.urgent || p.urgent
	l.open = append(l.open, p)
	l.openHashes = append(l.openHashes, p.hash)
	if len(l.open) >= l.opts.SealMaxRecords {
		l.sealInto(f)
	}
}

// sealBurst is how many seals may be made back to back before sealing falls back to
// one per SealInterval (sealDue).
const sealBurst = 8

// sealDue says whether the open group is sealed now: at once without SealMaxDelay,
// else once its first record has waited SealMaxDelay — or sooner, when the journaler
// waits for work (idle) and either the group holds at least SealMaxRecords/16
// records, enough that the signature costs little per record, or a receipt in it is
// wanted (or will be soon: lead) and the seal budget allows one. Seals made early
// average at most one per SealInterval (bursts of sealBurst), so light traffic has its
// receipts after about one fdatasync and steady traffic shares each signature among
// the records of at least a SealInterval — and, when receipts are asked for only after
// the model answers, among the records of most of that wait.
func (l *Ledger) sealDue(idle bool) bool {
	age := time.Since(l.openSince)
	if l.opts.SealMaxDelay <= 0 || age >= l.opts.SealMaxDelay {
		return true
	}
	if !idle {
		return false
	}
	if len(l.open) >= max(1, l.opts.SealMaxRecords/16) {
		return true
	}
	if l.wanted.Load() <= l.openFirst && age < l.lead() {
		return false
	}
	l.refillSealBudget()
	return l.sealBudget >= 1
}

// nextSealCheck is how long the sealer may sleep before the open group may be due:
// its SealMaxDelay, its lead, or — once its seal is wanted but the budget is spent —
// the budget's next refill.
func (l *Ledger) nextSealCheck() time.Duration {
	age := time.Since(l.openSince)
	d := l.opts.SealMaxDelay - age
	if lead := l.lead(); l.wanted.Load() <= l.openFirst && age < lead {
		return min(d, lead-age)
	}
	return min(d, l.opts.SealInterval)
}

// refillSealBudget adds one seal per SealInterval since the budget was last refilled,
// up to sealBurst. Every seal spends one (sealInto), down to -sealBurst, so that
// under steady traffic, where seals come from the delay, none is made early.
func (l *Ledger) refillSealBudget() {
	now := time.Now()
	switch {
	case l.budgetAt.IsZero():
		l.sealBudget = sealBurst
	case l.opts.SealInterval > 0:
		l.sealBudget = min(sealBurst, l.sealBudget+float64(now.Sub(l.budgetAt))/float64(l.opts.SealInterval))
	}
	l.budgetAt = now
}

// sealInto signs the open group's seal and appends it to the frame. A signing
// failure fails the ledger; the group's records are then orphans.
func (l *Ledger) sealInto(f *frame) {
	g := group{first: l.openFirst, pending: l.open, hashes: l.openHashes}
	l.open, l.openHashes = nil, nil
	t0 := time.Now()
	_, sealEntry, err := oar.NewSeal(l.node.Key, l.node.ID(), l.seq, g.first, g.hashes, l.prev, l.opts.Now())
	if err != nil {
		l.fail(err)
		f.orphans = append(f.orphans, g.pending...)
		return
	}
	if l.opts.Observe != nil {
		l.opts.Observe(StageSeal, time.Since(t0))
	}
	l.refillSealBudget()
	l.sealBudget = max(l.sealBudget-1, -sealBurst)
	sealIndex := l.next
	l.next, l.seq, l.prev = l.next+1, l.seq+1, oar.RecordHash(sealEntry)
	f.b.entries, f.b.hashes = append(f.b.entries, sealEntry), append(f.b.hashes, l.prev)
	f.seals = append(f.seals, &sealedGroup{group: g, sealIndex: sealIndex, seal: sealEntry})
}

// journaler writes each frame durably, answers its records and receipts, and passes
// sealed entries on to Tessera. Between frames it marks itself idle and sends itself
// the next frame if one is worth an fdatasync (step).
func (l *Ledger) journaler() {
	defer close(l.feed)
	for f := range l.frames {
		l.journal(f)
		l.mu.Lock()
		l.jIdle = true
		l.step(true)
		if l.jIdle {
			l.idleCond.Broadcast()
		}
		l.mu.Unlock()
	}
}

func (l *Ledger) journal(f *frame) {
	if err := l.err(); err != nil {
		l.abort(f, err)
		return
	}
	if len(f.b.entries) > 0 {
		t0 := time.Now()
		if err := l.jrnl.write(f.b); err != nil {
			l.fail(err)
			l.abort(f, l.err())
			return
		}
		if l.opts.Observe != nil {
			l.opts.Observe(StageFsync, time.Since(t0))
		}
		l.assigned.Store(f.b.end())
	}
	for _, p := range f.fresh {
		p.ack(nil)
		if l.opts.Observe != nil {
			l.opts.Observe(StageAppend, time.Since(p.queued))
		}
	}
	for _, s := range f.seals {
		var hexHashes []string
		var proofs [][]string
		for i, p := range s.pending {
			if p.done == nil {
				continue // added: nobody asks for its receipt
			}
			if proofs == nil {
				hexHashes, proofs = oar.HexProofs(s.hashes)
			}
			p.done <- result{receipt: &oar.Receipt{V: oar.Version, Kind: oar.KindReceipt, Index: s.first + uint64(i),
				RecordHash: hexHashes[i], SealIndex: s.sealIndex, InclusionProof: proofs[i], Seal: s.seal}}
		}
	}
	// Pass on everything up to the frame's last seal; hold the open group's records.
	if len(f.b.entries) == 0 {
		return
	}
	if l.held == nil {
		l.held = &batch{first: f.b.first}
	}
	l.held.entries, l.held.hashes = append(l.held.entries, f.b.entries...), append(l.held.hashes, f.b.hashes...)
	if n := len(f.seals); n > 0 {
		cut := f.seals[n-1].sealIndex + 1 - l.held.first
		l.feed <- &batch{first: l.held.first, entries: l.held.entries[:cut], hashes: l.held.hashes[:cut]}
		l.held = &batch{first: l.held.first + cut, entries: append([][]byte(nil), l.held.entries[cut:]...), hashes: append([][]byte(nil), l.held.hashes[cut:]...)}
	}
}

// abort fails a frame that cannot be written: its records are not durable (Write
// fails), and its groups and orphans will have no seal from this process (Receipt
// fails; a record that was durable is sealed when the node next starts). A fresh
// record not in one of the frame's groups is in a later frame's group or orphans.
func (l *Ledger) abort(f *frame, err error) {
	for _, p := range f.fresh {
		p.ack(err)
	}
	fail := func(p *pending) {
		if !p.acked {
			p.ack(err)
		}
		if p.done != nil {
			p.done <- result{err: err}
		}
	}
	for _, s := range f.seals {
		for _, p := range s.pending {
			fail(p)
		}
	}
	for _, p := range f.orphans {
		fail(p)
	}
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
		hashed := len(b.hashes) == len(b.entries)
		for i, e := range b.entries {
			var te *tessera.Entry
			if hashed {
				te = tessera.NewEntryWithLeafHash(e, b.hashes[i])
			} else {
				te = tessera.NewEntry(e)
			}
			l.futs <- future{index: b.first + uint64(i), f: l.add(ctx, te)}
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
	close(l.stop)
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

// JournalWrites says how the journal makes its frames durable now: WritesAIO,
// WritesPwritev2 or WritesFdatasync ("" before its first segment). A journal moves
// down that list where the kernel or the file system refuses the way before.
func (l *Ledger) JournalWrites() string { return l.jrnl.writesNow() }

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
