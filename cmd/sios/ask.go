package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sios-project/sios/api"
	"github.com/sios-project/sios/internal/files"
	"github.com/sios-project/sios/oar"
)

func runAsk(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "ask", "ask [--node URL] [--api-key K] [--brain ID] [--consent FILE] [--json] QUESTION")
	nodeURL := fs.String("node", "http://127.0.0.1:7600", "the node's API base URL")
	apiKey := fs.String("api-key", "", "API key (default $SIOS_API_KEY)")
	brainID := fs.String("brain", "auto", "brain id, or auto for the router")
	class := fs.String("classification", "", "classification of the question's data (default OFFICIAL)")
	grantFile := fs.String("consent", "", "a consent grant made for you at another institution (the file 'sios consent grant --json' wrote there): what it releases answers this question too")
	asJSON := fs.Bool("json", false, "print JSON")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		return usageError("ask needs a QUESTION")
	}
	question := strings.Join(rest, " ")
	key := *apiKey
	if key == "" {
		key = os.Getenv("SIOS_API_KEY")
	}
	if key == "" {
		return usageError("ask needs an API key: --api-key K or $SIOS_API_KEY")
	}
	body, _ := json.Marshal(map[string]any{"model": *brainID, "messages": []map[string]string{{"role": "user", "content": question}}})
	req, err := http.NewRequestWithContext(ctx, "POST", strings.TrimSuffix(*nodeURL, "/")+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		return usageError("--node: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.ReceiptHeader, "full") // one request: show the whole receipt
	if *class != "" {
		req.Header.Set("X-Sios-Classification", *class)
	}
	if *grantFile != "" {
		grant, err := readGrantFile(*grantFile)
		if err != nil {
			return withHint(fmt.Errorf("--consent: %v", err), "give the file 'sios consent grant --json' printed, or the grant itself")
		}
		req.Header.Set(api.ConsentHeader, base64.RawURLEncoding.EncodeToString(grant))
	}
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Do(req)
	if err != nil {
		return withHint(fmt.Errorf("cannot reach the node at %s: %v", *nodeURL, err), "start it with 'sios up', or point --node at it")
	}
	defer resp.Body.Close()
	data, err := files.ReadCapped(resp.Body, maxNodeAnswer, "maxNodeAnswer")
	if err != nil {
		return err
	}
	receipt := decodeReceiptHeader(resp.Header.Get(api.FullReceiptHeader))
	if resp.StatusCode != http.StatusOK {
		return nodeRefusal(resp, data)
	}
	var out struct {
		Model   string `json:"model"`
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(data, &out); err != nil || len(out.Choices) == 0 {
		return fmt.Errorf("the node's answer is not a chat completion")
	}
	if *asJSON {
		return printJSON(e.stdout, map[string]any{"brain": out.Model, "answer": out.Choices[0].Message.Content, "receipt": receipt})
	}
	fmt.Fprintf(e.stdout, "%s\n\n", out.Choices[0].Message.Content)
	fmt.Fprintf(e.stdout, "brain:   %s\n", out.Model)
	if receipt != nil {
		fmt.Fprintf(e.stdout, "receipt: record %d, hash %s, sealed at %d\n", receipt.Index, receipt.RecordHash, receipt.SealIndex)
	}
	return nil
}

// decodeReceiptHeader decodes an X-Sios-Receipt-Full header; nil if it is not one.
func decodeReceiptHeader(h string) *oar.Receipt {
	if h == "" {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return nil
	}
	var rc oar.Receipt
	if json.Unmarshal(b, &rc) != nil {
		return nil
	}
	return &rc
}
