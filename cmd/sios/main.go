// Command sios runs and operates a sios node: a Sovereign Intelligence Operating System
// that governs local AI models and writes a signed audit record for every action.
//
// Usage: sios [--data DIR] COMMAND [ARGS]. Run 'sios help' for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"k8s.io/klog/v2"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

const usageHead = `sios — Sovereign Intelligence Operating System

Usage:
  sios [--data DIR] COMMAND [ARGS]

DIR defaults to $SIOS_DATA, else ./sios-data.

Commands:
`

const usageTail = `  help       show this help

Run 'sios COMMAND -h' for a command's flags.
`

// usageText lists every command (commands()) with its summary.
func usageText() string {
	var sb strings.Builder
	sb.WriteString(usageHead)
	for _, c := range commands() {
		fmt.Fprintf(&sb, "  %-10s %s\n", c.name, c.summary)
	}
	sb.WriteString(usageTail)
	return sb.String()
}

// cliError is an error with an exit status and an optional hint for the operator.
type cliError struct {
	err   error
	hint  string
	code  int
	quiet bool // the outcome was already printed: exit with code, print nothing more
}

func (e *cliError) Error() string { return e.err.Error() }
func (e *cliError) Unwrap() error { return e.err }

func usageError(format string, a ...any) error {
	return &cliError{err: fmt.Errorf(format, a...), code: exitUsage}
}

func withHint(err error, hint string) error {
	return &cliError{err: err, hint: hint, code: exitFailure}
}

// env is what every command gets: the data directory and the output streams.
type env struct {
	dataDir string
	stdout  io.Writer
	stderr  io.Writer
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

func commands() []command {
	return []command{
		{"up", "serve the node: the OpenAI-compatible API on 127.0.0.1:7600 (initialises a fresh DIR)", runUp},
		{"init", "create the node identity (and an institution root key unless --root is given)", runInit},
		{"id", "print the node identity", runID},
		{"principal", "add a user or service with a clearance; prints its API key once", runPrincipal},
		{"brains", "list and show the brain catalogue", runBrains},
		{"policy", "explain whether a principal may use a brain or a peer, and which policies decide", runPolicy},
		{"ask", "ask a running node a question (prints the answer and its audit receipt)", runAsk},
		{"decide", "ask a panel of brains, here and on peers, to decide among options (signed ballots, a recorded outcome)", runDecide},
		{"decisions", "show a decision made on a running node (decisions show ID)", runDecisions},
		{"memory", "add, search, export and forget the tenants' memory (encrypted, erasable)", runMemory},
		{"consent", "grant, list and revoke consent for your data to reach another institution", runConsent},
		{"root", "export the institution root's public key for other operators", runRoot},
		{"trust", "pin other institutions' roots and TPM endorsement keys (trust add-root, add-ek, remove, list)", runTrust},
		{"fleet", "the fleet as this node sees it (fleet peers|routes|records)", runFleet},
		{"role", "chartered roles and their succession (role list|show|define|checkin|refute|accept|remove|letter)", runRole},
		{"audit", "append to, inspect, prove, export, verify, compare and replicate the signed audit log", runAudit},
		{"demo", "see a fleet of two institutions work (demo fleet)", runDemo},
		{"bench", "measure performance (bench audit|gateway|memory|fleet|replication)", runBench},
	}
}

func main() {
	quietLibraries()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// tuneForServing adjusts the runtime for the serving node, where the operator has not
// set GOGC: 'up', and the benches that run nodes in their own process. Verification
// has its own setting (tuneForVerifying); appending in 'bench audit' measured alike at
// either. Measured with 'sios bench gateway' at 2,000 requests/s on 2 cores:
//
//   - GOGC=400: the node's live heap is small (receipts, requests in flight), so
//     collecting four times less often costs little memory and takes collections out
//     of the request path. Overhead p50 0.5–1.4 ms → 0.17–0.3 ms, p99 6–25 ms → 4–8 ms.
//   - GOMAXPROCS stays Go's default, the cores the node may use. It was once raised to
//     four times that, when blocking file syscalls (the journal's fdatasync, Tessera's
//     synced writes) held Ps that request goroutines queued behind; the journal now
//     syncs on a goroutine of its own, records nobody waits on go with the next sync,
//     and model servers are called on the request's goroutine. Three alternations at
//     2,000/s, node CPU over the direct path's: 2.12–2.39 with GOMAXPROCS=2, 2.30–2.64
//     with 8, overhead p50 and p99 alike; at 2,500/s 2.01–2.18 against 2.46–2.65.
func tuneForServing() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}

// verifyGCPercent is GOGC while a log is verified ('audit verify', and the
// verification phase of 'bench audit'), where the operator has not set GOGC:
// verification allocates for every entry and keeps little, so collecting four times
// less often costs little memory. 'sios bench audit', four alternations on 2 cores:
// 306–331 k entries/s verified at Go's default (100) against 366–403 k at 400, while
// its append phases measured alike (signed 97–102 k records/s either way).
const verifyGCPercent = 400

// tuneForVerifying sets GOGC for verification where the operator has not set it, and
// returns what restores the setting before.
func tuneForVerifying() (restore func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	old := debug.SetGCPercent(verifyGCPercent)
	return func() { debug.SetGCPercent(old) }
}

// quietLibraries keeps library logging (Tessera logs through klog) off the terminal:
// sios reports what matters itself.
func quietLibraries() {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("alsologtostderr", "false")
	_ = fs.Set("stderrthreshold", "FATAL")
	klog.SetOutput(io.Discard)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("sios", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&e.dataDir, "data", "", "data directory (default $SIOS_DATA, else ./sios-data)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usageText())
			return exitOK
		}
		return report(stderr, usageError("%v", err))
	}
	if e.dataDir == "" {
		e.dataDir = os.Getenv("SIOS_DATA")
	}
	if e.dataDir == "" {
		e.dataDir = "sios-data"
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprint(stderr, usageText())
		return exitUsage
	}
	name := rest[0]
	if name == "help" || name == "-h" || name == "--help" {
		fmt.Fprint(stdout, usageText())
		return exitOK
	}
	for _, c := range commands() {
		if c.name == name {
			return report(stderr, c.run(ctx, e, rest[1:]))
		}
	}
	return report(stderr, &cliError{err: fmt.Errorf("unknown command %q", name), hint: "run 'sios help' for the commands", code: exitUsage})
}

// report prints err as one 'sios: error:' line (plus a hint) and returns the exit status.
func report(stderr io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	code, hint := exitFailure, ""
	var ce *cliError
	if errors.As(err, &ce) {
		code, hint = ce.code, ce.hint
		if ce.quiet {
			return code
		}
	}
	if hint == "" {
		hint = hintFor(err)
	}
	fmt.Fprintf(stderr, "sios: error: %v\n", err)
	if hint != "" {
		fmt.Fprintf(stderr, "sios: hint: %s\n", hint)
	}
	return code
}

// newFlags makes a command's flag set; parse errors print the command's usage.
func newFlags(e *env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: sios [--data DIR] %s\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, allowing flags after positional arguments (so that
// 'audit show 7 --json' works), and returns the positional arguments. Flag errors
// become usage errors.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &cliError{err: err, code: exitUsage}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

// isHelp says whether a command's first argument asks for its help.
func isHelp(arg string) bool { return arg == "-h" || arg == "--help" || arg == "help" }
