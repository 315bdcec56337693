package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sios-project/sios/deliberate"
	"github.com/sios-project/sios/internal/files"
)

const decideUsage = `decide (--panel NAME | --members B1,B2@NODEID,…) --options a,b,c [--rule plurality|weighted|quorum|unanimity|veto] [--quorum K] [--vetoers M1,M2] [--deadline D] [--classification LEVEL] [--node URL] [--api-key K] [--json] QUESTION`

func runDecide(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "decide", decideUsage)
	nodeURL := fs.String("node", "http://127.0.0.1:7600", "the node's API base URL")
	apiKey := fs.String("api-key", "", "API key (default $SIOS_API_KEY)")
	panel := fs.String("panel", "", "a panel of the node's DIR/panels")
	members := fs.String("members", "", "the panel's members, comma-separated: BRAIN, BRAIN@NODEID or BRAIN@*")
	options := fs.String("options", "", "the options, comma-separated (2 to 16)")
	rule := fs.String("rule", "", "the rule, in place of the panel's: plurality, weighted, quorum, unanimity or veto")
	quorum := fs.Int("quorum", 0, "how many members must agree under the quorum rule")
	vetoers := fs.String("vetoers", "", "the members who may veto under the veto rule, comma-separated")
	deadline := fs.Duration("deadline", 0, "how long the members have (default 30s, at most 5m)")
	class := fs.String("classification", "", "classification of the question (default OFFICIAL)")
	asJSON := fs.Bool("json", false, "print JSON")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(rest) == 0:
		return usageError("decide needs a QUESTION")
	case (*panel == "") == (*members == ""):
		return usageError("decide needs --panel NAME or --members B1,B2,… (one of them)")
	case *options == "":
		return usageError("decide needs --options a,b,c")
	}
	key, err := apiKeyOf(*apiKey, "decide")
	if err != nil {
		return err
	}
	req := map[string]any{"question": strings.Join(rest, " "), "options": splitList(*options)}
	if *panel != "" {
		req["panel"] = *panel
	} else {
		req["members"] = splitList(*members)
	}
	if *rule != "" {
		req["rule"] = *rule
	}
	if *quorum > 0 {
		req["quorum"] = *quorum
	}
	if *vetoers != "" {
		req["vetoers"] = splitList(*vetoers)
	}
	if *deadline > 0 {
		req["deadline"] = deadline.String()
	}
	if *class != "" {
		req["classification"] = *class
	}
	body, _ := json.Marshal(req)
	timeout := 5*time.Minute + 30*time.Second // the longest decision, and its records
	data, err := callAPI(ctx, *nodeURL, key, "POST", "/v1/decisions", body, timeout)
	if err != nil {
		return err
	}
	return printDecision(e, data, *asJSON)
}

// printDecision prints a decision as the API gave it: the JSON itself with --json.
func printDecision(e *env, data []byte, asJSON bool) error {
	var res deliberate.Result
	if err := json.Unmarshal(data, &res); err != nil || res.DecisionID == "" {
		return fmt.Errorf("the node's answer is not a decision")
	}
	if asJSON {
		_, err := e.stdout.Write(append(bytes.TrimSpace(data), '\n'))
		return err
	}
	outcome := "none"
	if res.Outcome != nil {
		outcome = *res.Outcome
	}
	fmt.Fprintf(e.stdout, "decision %s: %s, outcome %s (rule %s)\n", res.DecisionID, res.Status, outcome, res.Rule)
	var tally []string
	for o, n := range res.Tally {
		tally = append(tally, fmt.Sprintf("%s %d", o, n))
	}
	slices.Sort(tally)
	fmt.Fprintf(e.stdout, "tally: %s; abstentions %d\n", strings.Join(tally, ", "), res.Abstentions)
	if len(res.Vetoed) > 0 {
		fmt.Fprintf(e.stdout, "vetoed: %s\n", strings.Join(res.Vetoed, ", "))
	}
	if len(res.Unmet) > 0 {
		fmt.Fprintf(e.stdout, "unmet: %s\n", strings.Join(res.Unmet, ", "))
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nMEMBER\tNODE\tMODEL\tCHOICE\tCONFIDENCE\tRECORD")
	for _, b := range res.Ballots {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.3f\t%.16s\n", b.Seat, b.Node, b.Model, b.Choice, b.Confidence, b.RecordHash)
	}
	for _, r := range res.Rejected {
		fmt.Fprintf(tw, "%s\t%s\t\trejected: %s\t\t\n", r.Brain, r.Node, r.Reason)
	}
	for _, a := range res.Absent {
		fmt.Fprintf(tw, "%s\t%s\t\tabsent\t\t\n", a.Member, a.Node)
	}
	tw.Flush()
	fmt.Fprintf(e.stdout, "\noutcome record %d (hash %s)\n", res.Record.Index, res.Record.RecordHash)
	return nil
}

// apiKeyOf is the key given, else $SIOS_API_KEY.
func apiKeyOf(given, cmd string) (string, error) {
	if given != "" {
		return given, nil
	}
	if k := os.Getenv("SIOS_API_KEY"); k != "" {
		return k, nil
	}
	return "", usageError("%s needs an API key: --api-key K or $SIOS_API_KEY", cmd)
}

// callAPI sends one request to a running node's API and returns the body of a 200; any
// other status is an error in the node's words, with the receipt of its record.
func callAPI(ctx context.Context, nodeURL, key, method, path string, body []byte, timeout time.Duration) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(nodeURL, "/")+path, rd)
	if err != nil {
		return nil, usageError("--node: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return nil, withHint(fmt.Errorf("cannot reach the node at %s: %v", nodeURL, err), "start it with 'sios up', or point --node at it")
	}
	defer resp.Body.Close()
	data, err := files.ReadCapped(resp.Body, maxNodeAnswer, "maxNodeAnswer")
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nodeRefusal(resp, data)
	}
	return data, nil
}

// splitList splits a comma-separated flag, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}
