package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/sios-project/sios/ledger"
	"golang.org/x/term"
)

// Progress of long ledger operations ('audit verify', 'audit export') goes to stderr
// as one line that rewrites itself, and only where a person watches it: by default
// when stderr is a terminal, always with --progress, never with --progress=false.
// stdout never carries it: scripts parse stdout.

// progressRedraw is how often the progress line is redrawn at most.
const progressRedraw = 100 * time.Millisecond

// progressFlag is --progress: unset (decided by whether stderr is a terminal), or
// set to true or false.
type progressFlag struct{ set, on bool }

func (f *progressFlag) String() string {
	if f == nil || !f.set {
		return "auto"
	}
	return strconv.FormatBool(f.on)
}

func (f *progressFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("--progress takes true or false, got %q", s)
	}
	f.set, f.on = true, v
	return nil
}

func (f *progressFlag) IsBoolFlag() bool { return true }

// addProgressFlag adds --progress to a command's flags.
func addProgressFlag(fs *flag.FlagSet) *progressFlag {
	f := &progressFlag{}
	fs.Var(f, "progress", "show progress on stderr as one updating line (default: when stderr is a terminal; --progress=false: never)")
	return f
}

// wanted says whether to show progress on w.
func (f *progressFlag) wanted(w io.Writer) bool {
	if f.set {
		return f.on
	}
	return isTerminal(w)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	fd, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(fd.Fd()))
}

// progressLine draws one operation's progress on one line of w, redrawn in place.
type progressLine struct {
	w       io.Writer
	what    string // "verifying", "exporting", …
	now     func() time.Time
	started time.Time
	drawn   time.Time
	width   int // of the longest line drawn, to blank what a shorter one leaves
}

// newProgressLine returns a line for the operation on e's stderr, or nil when
// progress is not wanted there. Its report method is then a nil ledger.ProgressFunc.
func newProgressLine(e *env, f *progressFlag, what string) *progressLine {
	if !f.wanted(e.stderr) {
		return nil
	}
	return &progressLine{w: e.stderr, what: what, now: time.Now, started: time.Now()}
}

// report is the ledger's progress callback, nil for a nil line (no progress: the
// ledger then does no work for it).
func (l *progressLine) report() ledger.ProgressFunc {
	if l == nil {
		return nil
	}
	return l.draw
}

// draw redraws the line, at most every progressRedraw except for the first and the
// final report.
func (l *progressLine) draw(p ledger.Progress) {
	now := l.now()
	if !l.drawn.IsZero() && p.Done < p.Total && now.Sub(l.drawn) < progressRedraw {
		return
	}
	l.drawn = now
	s := progressText(l.what, p, now.Sub(l.started))
	pad := max(l.width-len(s), 0)
	l.width = max(l.width, len(s))
	fmt.Fprintf(l.w, "\r%s%s", s, strings.Repeat(" ", pad))
}

// done ends the line, so that what follows on stderr starts on its own.
func (l *progressLine) done() {
	if l != nil && !l.drawn.IsZero() {
		fmt.Fprintln(l.w)
	}
}

// progressText is one progress line: "verifying: 12000 of 40000 entries (30%), 96
// files, 3.1 MiB read, 52000 entries/s".
func progressText(what string, p ledger.Progress, elapsed time.Duration) string {
	s := what + ": " + p.String()
	if sec := elapsed.Seconds(); sec >= 1 {
		s += fmt.Sprintf(", %.0f entries/s", float64(p.Done)/sec)
	}
	return s
}
