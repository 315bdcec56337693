package invoke

import (
	"bytes"
	"testing"
	"time"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
)

// mapDetail is the completion detail as a map, as it was built before
// completionDetails: the reference the struct must encode the same as.
func mapDetail(inv *Invocation, cv *conversation, failure *Error, latency int64) map[string]any {
	detail := map[string]any{"latency_ms": latency}
	if inv.Peer != nil && inv.Peer.Grant != nil {
		detail["consent"] = inv.Peer.Grant.ID
	}
	if d := inv.descent; d != nil && d.record != "" {
		detail["consent"] = d.grant.ID
	}
	if cv != nil {
		detail["usage"], detail["finish_reason"], detail["tool_calls"], detail["backend"] = cv.usage, cv.finish, cv.toolCalls, cv.backend
		detail["model"], detail["path"] = oar.Bounded(cv.model, oar.MaxOutsideValue), cv.path
		if failure != nil && cv.streamed.bytes > 0 {
			detail["streamed_bytes"] = cv.streamed.bytes
		}
		if len(cv.clientCalls) > 0 {
			var calls []map[string]string
			for _, tc := range cv.clientCalls {
				calls = append(calls, map[string]string{"name": oar.Bounded(tc.Function.Name, oar.MaxOutsideValue), "call_id": oar.Bounded(tc.ID, oar.MaxOutsideValue)})
			}
			detail["client_tool_calls"] = calls
		}
	}
	if failure != nil {
		detail["error"] = failure.Code
	}
	return detail
}

// The completion record's detail is what the map it replaced gave, canonically, for
// every shape of outcome.
func TestCompletionDetailIsTheMapItReplaced(t *testing.T) {
	streamed := streamed{}
	streamed.add("partial <answer>")
	plain := &Invocation{started: time.Now().Add(-15 * time.Millisecond)}
	granted := &Invocation{started: time.Now(), Peer: &PeerCall{Grant: &consent.Grant{ID: "grant-1"}}}
	descended := &Invocation{started: time.Now(), descent: &descent{grant: &consent.Grant{ID: "grant-2"}, record: "ab12"}}
	for i, c := range []struct {
		inv     *Invocation
		cv      *conversation
		failure *Error
	}{
		{plain, nil, &Error{Code: CodeBackendUnavailable}},
		{plain, &conversation{content: "ok", finish: "stop", usage: backend.Usage{PromptTokens: 3, CompletionTokens: 4, TotalTokens: 7}, backend: "http://127.0.0.1:1/v1", model: "m", path: "tools"}, nil},
		{plain, &conversation{finish: "tool_calls", toolCalls: []toolOutcome{{Name: "calculator", Allowed: true}, {Name: "memory.search", Error: "not permitted"}},
			clientCalls: []backend.ToolCall{{ID: "call_1", Function: backend.FunctionCall{Name: "lookup", Arguments: "{}"}}}}, nil},
		{plain, &conversation{streamed: streamed, model: string(bytes.Repeat([]byte("m"), 2*oar.MaxOutsideValue))}, &Error{Code: CodeBackendError}},
		{plain, &conversation{streamed: streamed, content: "partial <answer>"}, nil},
		{plain, &conversation{}, &Error{Code: CodeTimeBudget}},
		{granted, &conversation{content: "x"}, nil},
		{descended, &conversation{content: "y"}, nil},
		{&Invocation{started: time.Now(), descent: &descent{grant: &consent.Grant{ID: "unreleased"}}}, nil, &Error{Code: CodePolicyDenied}},
	} {
		d := completionDetail(c.inv, c.cv, c.failure)
		if a, m := d.appendJSON(nil), mustJSON(d); !bytes.Equal(a, m) {
			t.Errorf("case %d: appendJSON\n%s\nencoding/json\n%s", i, a, m)
		}
		got, err := jcs.Canonicalize(d.appendJSON(nil))
		if err != nil {
			t.Fatal(err)
		}
		want, err := jcs.Canonicalize(mustJSON(mapDetail(c.inv, c.cv, c.failure, d.LatencyMS)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("case %d: detail\n%s\nthe map gave\n%s", i, got, want)
		}
	}
}

// BenchmarkCompletionDetail: a completion record's detail encoded from the struct and,
// for comparison, from the map it replaced.
func BenchmarkCompletionDetail(b *testing.B) {
	inv := &Invocation{started: time.Now()}
	cv := &conversation{content: "ok", finish: "stop", usage: backend.Usage{PromptTokens: 52, CompletionTokens: 20, TotalTokens: 72},
		backend: "http://127.0.0.1:11434/v1", model: "llama3.2:1b", path: "tools"}
	b.Run("map", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			mustJSON(mapDetail(inv, cv, nil, 20))
		}
	})
	b.Run("struct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			mustJSON(completionDetail(inv, cv, nil))
		}
	})
	b.Run("appendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			completionDetail(inv, cv, nil).appendJSON(make([]byte, 0, 256))
		}
	})
}

// FuzzCompletionDetailJSON: appendJSON writes what encoding/json writes, whatever the
// strings and numbers.
func FuzzCompletionDetailJSON(f *testing.F) {
	f.Add("http://127.0.0.1:1/v1", "m", "tools", "stop", "grant-1", "backend_error", int64(20), 3, 7, 0, true, false)
	f.Add("<&>\u2028\xff", "", "", "", "", "", int64(-1), -5, 0, 12, false, true)
	f.Fuzz(func(t *testing.T, be, model, path, finish, consent, code string, latency int64, prompt, total, streamedBytes int, withConversation, withTools bool) {
		d := &completionDetails{LatencyMS: latency, Consent: consent, Error: Code(code), StreamedBytes: streamedBytes}
		if withConversation {
			d.Backend, d.Model, d.Path, d.FinishReason = &be, &model, &path, &finish
			d.Usage = &backend.Usage{PromptTokens: prompt, CompletionTokens: total - prompt, TotalTokens: total}
			var calls []toolOutcome
			if withTools {
				calls = []toolOutcome{{Name: model, Allowed: true}, {Name: path, Error: finish}}
				d.ClientToolCalls = []map[string]string{{"name": be, "call_id": consent}}
			}
			d.ToolCalls = &calls
		}
		if a, m := d.appendJSON(nil), mustJSON(d); !bytes.Equal(a, m) {
			t.Fatalf("appendJSON\n%s\nencoding/json\n%s", a, m)
		}
	})
}
