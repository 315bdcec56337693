package ledger

import "fmt"

// Progress of the ledger's long operations — verifying a log, exporting a bundle,
// catching a replica up — told to an optional callback at a bounded rate, so that a
// terminal or a console page can show how far a run over millions of entries got.

// ProgressSteps bounds how often an operation reports progress: at most this many
// reports as the work advances (never more often than once per entry bundle of
// layout.EntryBundleWidth entries), plus one at the start and one at the end.
const ProgressSteps = 1000

// Progress is how far a long ledger operation got, in figures a person reads.
type Progress struct {
	// Done of Total entries: verified (Verify, Bundle.VerifyWith), read (ExportWith:
	// the bundle's entries, then the leaf hashes after them that join it to the
	// checkpoint's tree), or held verified by the copy (Replica.UpdateWith: Total is
	// the source's checkpoint). Done only grows; the last report of a run that
	// succeeds has Done == Total.
	Done, Total uint64
	// Files counts the entry bundles and hash tiles read or fetched so far, and Bytes
	// their size.
	Files uint64
	Bytes uint64
}

// String is the progress as a person reads it: "12000 of 40000 entries (30%), 96
// files, 3.1 MiB read".
func (p Progress) String() string {
	s := fmt.Sprintf("%d of %d entries", p.Done, p.Total)
	if p.Total > 0 {
		s += fmt.Sprintf(" (%d%%)", p.Done*100/p.Total)
	}
	if p.Files > 0 {
		s += fmt.Sprintf(", %d files", p.Files)
	}
	if p.Bytes > 0 {
		s += ", " + byteSize(p.Bytes) + " read"
	}
	return s
}

// byteSize writes n bytes for a person: 512 B, 3.1 MiB.
func byteSize(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}

// ProgressFunc receives progress reports, in order, from the goroutine running the
// operation. It must not block: the operation waits for it.
type ProgressFunc func(Progress)

// progress reports one operation's progress through fn at a bounded rate. A nil
// *progress (no callback) reports nothing and costs a nil check.
type progress struct {
	fn   ProgressFunc
	step uint64 // entries between reports
	next uint64 // Done at which the next report is due
	p    Progress
}

// newProgress starts reporting an operation over total entries, reporting the start.
// It returns nil when fn is nil.
func newProgress(fn ProgressFunc, done, total uint64) *progress {
	if fn == nil {
		return nil
	}
	step := max((total+ProgressSteps-1)/ProgressSteps, 1)
	pr := &progress{fn: fn, step: step, p: Progress{Done: done, Total: total}}
	pr.next = done + step
	fn(pr.p)
	return pr
}

// read counts files read and their bytes; they show in the next report.
func (pr *progress) read(files, bytes uint64) {
	if pr == nil {
		return
	}
	pr.p.Files += files
	pr.p.Bytes += bytes
}

// fetched sets the files and bytes fetched so far, counted elsewhere (by the
// workers fetching ahead of the in-order checks); they show in the next report.
func (pr *progress) fetched(files, bytes uint64) {
	if pr == nil {
		return
	}
	pr.p.Files, pr.p.Bytes = max(pr.p.Files, files), max(pr.p.Bytes, bytes)
}

// advance moves Done to done (never back) and reports when a step is due. Callers
// call it once per entry bundle or more rarely.
func (pr *progress) advance(done uint64) {
	if pr == nil || done <= pr.p.Done {
		return
	}
	pr.p.Done = min(done, pr.p.Total)
	if pr.p.Done >= pr.next && pr.p.Done < pr.p.Total {
		pr.next = pr.p.Done + pr.step
		pr.fn(pr.p)
	}
}

// end reports the final figures: Done is Total.
func (pr *progress) end() {
	if pr == nil {
		return
	}
	pr.p.Done = pr.p.Total
	pr.fn(pr.p)
}

// stop reports where a run that ends short of Total stands: a replica session that
// the next Update continues.
func (pr *progress) stop() {
	if pr == nil {
		return
	}
	pr.fn(pr.p)
}
