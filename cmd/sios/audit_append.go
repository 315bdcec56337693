package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/sios-project/sios/admin"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/oar"
)

// maxStdinLine bounds one JSON line of 'audit append --stdin'.
const maxStdinLine = 1 << 20

func runAuditAppend(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "audit append", "audit append --action ACTION --actor ACTOR [--resource R] [--tenant T] [--classification C] [--json]\n"+
		"       sios [--data DIR] audit append --stdin [--json]   (one JSON record per line; one receipt per line)")
	action := fs.String("action", "", "what was done (required), e.g. brain.invoke")
	actor := fs.String("actor", "", "who did it: a principal id (required)")
	resource := fs.String("resource", "", "what it was done to")
	tenant := fs.String("tenant", "", "the tenant it was done in")
	class := fs.String("classification", "", "classification of the data involved")
	stdin := fs.Bool("stdin", false, "read records as JSON lines from standard input")
	asJSON := fs.Bool("json", false, "print receipts as JSON")
	args, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usageError("audit append takes no arguments, got %q", args[0])
	}
	if !*stdin && (*action == "" || *actor == "") {
		return usageError("audit append needs --action and --actor (or --stdin)")
	}
	appendFn, closeFn, err := e.appender(ctx)
	if err != nil {
		return err
	}
	if *stdin {
		err = appendStream(ctx, appendFn, os.Stdin, e.stdout, *asJSON)
	} else {
		var rc *oar.Receipt
		rc, err = appendFn(ctx, &oar.Record{
			Tenant: *tenant, Actor: oar.Actor{ID: *actor}, Action: *action, Resource: *resource, Classification: *class,
		})
		if err == nil {
			err = printReceipt(e.stdout, rc, *asJSON)
		}
	}
	if cerr := closeFn(); err == nil {
		err = cerr
	}
	return err
}

type appendFunc func(context.Context, *oar.Record) (*oar.Receipt, error)

// appender appends through the running node when there is one (it holds the ledger),
// else opens the ledger directly.
func (e *env) appender(ctx context.Context) (appendFunc, func() error, error) {
	if c := admin.Dial(e.dataDir); c != nil {
		return func(ctx context.Context, r *oar.Record) (*oar.Receipt, error) {
			var rc oar.Receipt
			if err := c.Do(ctx, "POST", "/admin/audit/append", admin.AppendRequest{Record: r}, &rc); err != nil {
				return nil, err
			}
			return &rc, nil
		}, func() error { return nil }, nil
	}
	l, err := e.openLedger(ctx, ledger.Options{CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		return nil, nil, err
	}
	return func(ctx context.Context, r *oar.Record) (*oar.Receipt, error) {
		rc, _, err := l.Append(ctx, r)
		return rc, err
	}, func() error { return l.Close(context.WithoutCancel(ctx)) }, nil
}

func printReceipt(w io.Writer, rc *oar.Receipt, asJSON bool) error {
	if asJSON {
		return printJSON(w, rc)
	}
	_, err := fmt.Fprintf(w, "index:        %d\nrecord_hash:  %s\nseal_index:   %d\nproof:        %d hashes\n",
		rc.Index, rc.RecordHash, rc.SealIndex, len(rc.InclusionProof))
	return err
}

// appendStream appends one record per input line with several appenders at once, so
// that records share seals, and prints each receipt on one line as soon as it is
// durable. It stops at the end of input or on the first bad line, naming it.
func appendStream(ctx context.Context, appendFn appendFunc, in io.Reader, out io.Writer, asJSON bool) error {
	type line struct {
		n   int
		rec *oar.Record
	}
	lines := make(chan line)
	var (
		mu       sync.Mutex // guards out and firstErr
		firstErr error
		wg       sync.WaitGroup
	)
	setErr := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ln := range lines {
				rc, err := appendFn(ctx, ln.rec)
				if err != nil {
					setErr(fmt.Errorf("line %d: %w", ln.n, err))
					continue
				}
				var b []byte
				if asJSON {
					b, _ = json.Marshal(rc)
				} else {
					b = fmt.Appendf(nil, "%d %s %d", rc.Index, rc.RecordHash, rc.SealIndex)
				}
				mu.Lock()
				out.Write(append(b, '\n'))
				mu.Unlock()
			}
		}()
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), maxStdinLine)
	n := 0
	for sc.Scan() {
		n++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		// Strictly: a member given twice or spelt in another case would let two readers
		// of the input disagree on what was logged.
		var rec oar.Record
		if err := jcs.DecodeStrict(sc.Bytes(), &rec); err != nil {
			setErr(fmt.Errorf("line %d: not a JSON record: %v", n, err))
			break
		}
		mu.Lock()
		stop := firstErr != nil
		mu.Unlock()
		if stop || ctx.Err() != nil {
			break
		}
		lines <- line{n: n, rec: &rec}
	}
	close(lines)
	wg.Wait()
	if err := sc.Err(); err != nil && firstErr == nil {
		firstErr = fmt.Errorf("line %d: %v (lines are limited to %d bytes)", n+1, err, maxStdinLine)
	}
	return firstErr
}
