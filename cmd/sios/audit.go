package main

import (
	"context"
	"fmt"
	"strconv"
)

const auditUsage = `Usage: sios [--data DIR] audit SUBCOMMAND

Subcommands:
  append   append one record; prints its receipt
  verify   verify the whole log (or an evidence bundle with --bundle FILE)
  show     print one entry
  tail     print the last entries
  prove    print an entry's receipt and its inclusion proof in the checkpoint
  export   write an evidence bundle that verifies offline (of a kept copy with --source NODEID)
  replicas the peers keeping copies of this log, and the copies this node keeps (add, remove)
  compare  prove two copies of a log identical up to their common size (--bundle A --bundle B, or --peer NODEID --with DIR2)
  trace    gather a record's trail across nodes into one file that verifies offline (--record INDEX|HASH --out FILE)
`

func runAudit(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, auditUsage)
		return usageError("audit needs a subcommand")
	}
	subs := map[string]func(context.Context, *env, []string) error{
		"append":   runAuditAppend,
		"verify":   runAuditVerify,
		"show":     runAuditShow,
		"tail":     runAuditTail,
		"prove":    runAuditProve,
		"export":   runAuditExport,
		"replicas": runAuditReplicas,
		"compare":  runAuditCompare,
		"trace":    runAuditTrace,
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(e.stdout, auditUsage)
		return nil
	}
	run, ok := subs[args[0]]
	if !ok {
		fmt.Fprint(e.stderr, auditUsage)
		return usageError("unknown audit subcommand %q", args[0])
	}
	return run(ctx, e, args[1:])
}

// parseIndex reads a log index argument.
func parseIndex(s string) (uint64, error) {
	i, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, usageError("index %q is not a non-negative integer", s)
	}
	return i, nil
}
