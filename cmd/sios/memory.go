package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sios-project/sios/admin"
	"github.com/sios-project/sios/internal/files"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

const memoryUsage = `Usage: sios [--data DIR] memory SUBCOMMAND

Subcommands:
  add      --tenant T --subject S --classification LEVEL (TEXT | --file F) [--json]
  search   --tenant T [--subject S] --clearance LEVEL QUERY [--json]
  export   --tenant T --subject S --out FILE
  forget   --tenant T --subject S

They go through the running node when there is one, else act on the data directory.
`

// operator is who the CLI acts as; operator actions are audited as such.
var operatorDecision = &oar.Decision{Effect: "allow", Policies: []string{"operator"}}

func runMemory(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, memoryUsage)
		return usageError("memory needs a subcommand")
	}
	if isHelp(args[0]) {
		fmt.Fprint(e.stdout, memoryUsage)
		return nil
	}
	sub, args := args[0], args[1:]
	fs := newFlags(e, "memory "+sub, strings.TrimPrefix(memoryUsage, "Usage: "))
	tenant := fs.String("tenant", "", "tenant (required)")
	subject := fs.String("subject", "", "subject: a person, a case, a project")
	class := fs.String("classification", "", "classification of the memory (add)")
	clearance := fs.String("clearance", "", "clearance to search with (search)")
	file := fs.String("file", "", "read the memory's text from FILE (add)")
	out := fs.String("out", "", "write the export to FILE (export)")
	limit := fs.Int("limit", 10, "results (search)")
	asJSON := fs.Bool("json", false, "print JSON")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if *tenant == "" {
		return usageError("memory %s needs --tenant", sub)
	}
	mc, closeFn, err := e.memoryClient(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	switch sub {
	case "add":
		if *subject == "" || *class == "" {
			return usageError("memory add needs --subject and --classification")
		}
		lvl, err := policy.ParseLevel(*class)
		if err != nil {
			return usageError("--classification: %v", err)
		}
		text := strings.Join(rest, " ")
		if *file != "" {
			if len(rest) > 0 {
				return usageError("memory add takes TEXT or --file, not both")
			}
			b, err := os.ReadFile(*file)
			if err != nil {
				return err
			}
			text = string(b)
		}
		if text == "" {
			return usageError("memory add needs TEXT or --file F")
		}
		m, err := mc.add(ctx, memory.NewMemory{Tenant: *tenant, Subject: *subject, Classification: lvl, Source: "cli", Text: text})
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, m)
		}
		fmt.Fprintln(e.stdout, m.ID)
		return nil
	case "search":
		if *clearance == "" || len(rest) == 0 {
			return usageError("memory search needs --clearance and a QUERY")
		}
		lvl, err := policy.ParseLevel(*clearance)
		if err != nil {
			return usageError("--clearance: %v", err)
		}
		res, err := mc.search(ctx, memory.Query{Tenant: *tenant, Subject: *subject, Clearance: lvl, Text: strings.Join(rest, " "), Limit: *limit})
		if err != nil {
			return err
		}
		if *asJSON {
			if res == nil {
				res = []memory.Result{}
			}
			return printJSON(e.stdout, res)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SCORE\tID\tSUBJECT\tCLASSIFICATION\tTEXT")
		for _, r := range res {
			fmt.Fprintf(tw, "%.3f\t%s\t%s\t%s\t%s\n", r.Score, r.ID, r.Subject, r.Classification, oneLine(r.Text, 80))
		}
		return tw.Flush()
	case "export":
		if *subject == "" || *out == "" {
			return usageError("memory export needs --subject and --out FILE")
		}
		ex, err := mc.export(ctx, *tenant, *subject)
		if err != nil {
			return err
		}
		b, err := json.MarshalIndent(ex, "", "  ")
		if err != nil {
			return err
		}
		if err := files.Replace(*out, append(b, '\n'), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "exported %d memories of %s to %s\n", len(ex.Memories), *subject, *out)
		return nil
	case "forget":
		if *subject == "" {
			return usageError("memory forget needs --subject")
		}
		f, err := mc.forget(ctx, *tenant, *subject)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, map[string]any{"tenant": f.Tenant, "subject": f.Subject, "forgotten": len(f.IDs)})
		}
		fmt.Fprintf(e.stdout, "forgot %d memories of %s: their key is destroyed and their rows purged\n", len(f.IDs), *subject)
		return nil
	}
	fmt.Fprint(e.stderr, memoryUsage)
	return usageError("unknown memory subcommand %q", sub)
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// memoryClient does memory operations as the operator: through the running node, or
// directly on the data directory (auditing into its ledger) when none runs.
type memoryClient struct {
	add    func(context.Context, memory.NewMemory) (*memory.Memory, error)
	search func(context.Context, memory.Query) ([]memory.Result, error)
	export func(ctx context.Context, tenant, subject string) (*memory.Export, error)
	forget func(ctx context.Context, tenant, subject string) (*memory.Forgotten, error)
}

func (e *env) memoryClient(ctx context.Context) (*memoryClient, func(), error) {
	if c := admin.Dial(e.dataDir); c != nil {
		return &memoryClient{
			add: func(ctx context.Context, nm memory.NewMemory) (*memory.Memory, error) {
				var m memory.Memory
				return &m, c.Do(ctx, "POST", "/admin/memory/add", admin.MemoryRequest{Tenant: nm.Tenant, Subject: nm.Subject,
					Classification: nm.Classification.String(), Source: nm.Source, Text: nm.Text}, &m)
			},
			search: func(ctx context.Context, q memory.Query) ([]memory.Result, error) {
				var res []memory.Result
				return res, c.Do(ctx, "POST", "/admin/memory/search", admin.MemoryRequest{Tenant: q.Tenant, Subject: q.Subject,
					Clearance: q.Clearance.String(), Text: q.Text, Limit: q.Limit}, &res)
			},
			export: func(ctx context.Context, tenant, subject string) (*memory.Export, error) {
				var ex memory.Export
				return &ex, c.Do(ctx, "POST", "/admin/memory/export", admin.MemoryRequest{Tenant: tenant, Subject: subject}, &ex)
			},
			forget: func(ctx context.Context, tenant, subject string) (*memory.Forgotten, error) {
				var f memory.Forgotten
				return &f, c.Do(ctx, "POST", "/admin/memory/forget", admin.MemoryRequest{Tenant: tenant, Subject: subject}, &f)
			},
		}, func() {}, nil
	}
	n, err := e.loadNode()
	if err != nil {
		return nil, nil, err
	}
	l, err := ledger.Open(ctx, e.ledgerDir(), n, ledger.Options{CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		return nil, nil, err
	}
	st, err := memory.Open(e.dataDir, memory.Options{})
	if err != nil {
		l.Close(ctx)
		return nil, nil, err
	}
	ops := &memory.Ops{Store: st, Append: l.Append}
	op := oar.Actor{ID: "operator"}
	mc := &memoryClient{
		add: func(ctx context.Context, nm memory.NewMemory) (*memory.Memory, error) {
			m, _, err := ops.Add(ctx, op, operatorDecision, nm)
			return m, err
		},
		search: func(ctx context.Context, q memory.Query) ([]memory.Result, error) {
			res, _, err := ops.Search(ctx, op, operatorDecision, q)
			return res, err
		},
		export: func(ctx context.Context, tenant, subject string) (*memory.Export, error) {
			ex, _, err := ops.Export(ctx, op, operatorDecision, tenant, subject, policy.TopSecret)
			return ex, err
		},
		forget: func(ctx context.Context, tenant, subject string) (*memory.Forgotten, error) {
			f, _, err := ops.Forget(ctx, op, operatorDecision, tenant, subject, policy.TopSecret)
			return f, err
		},
	}
	return mc, func() {
		st.Close()
		l.Close(context.WithoutCancel(ctx))
	}, nil
}
