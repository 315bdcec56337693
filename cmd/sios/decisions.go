package main

import (
	"context"
	"time"
)

const decisionsUsage = `Usage: sios [--data DIR] decisions SUBCOMMAND

Subcommands:
  show ID  print a decision made on the node (its outcome, tally and ballots)
`

func runDecisions(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			e.stderr.Write([]byte(decisionsUsage))
			return usageError("decisions needs a subcommand")
		}
		e.stdout.Write([]byte(decisionsUsage))
		return nil
	}
	if args[0] != "show" {
		e.stderr.Write([]byte(decisionsUsage))
		return usageError("unknown decisions subcommand %q", args[0])
	}
	fs := newFlags(e, "decisions show", "decisions show [--node URL] [--api-key K] [--json] ID")
	nodeURL := fs.String("node", "http://127.0.0.1:7600", "the node's API base URL")
	apiKey := fs.String("api-key", "", "API key (default $SIOS_API_KEY)")
	asJSON := fs.Bool("json", false, "print JSON")
	rest, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usageError("decisions show needs exactly one ID (a decision_id)")
	}
	key, err := apiKeyOf(*apiKey, "decisions show")
	if err != nil {
		return err
	}
	data, err := callAPI(ctx, *nodeURL, key, "GET", "/v1/decisions/"+rest[0], nil, time.Minute)
	if err != nil {
		return err
	}
	return printDecision(e, data, *asJSON)
}
