package invoke

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/sios-project/sios/backend"
)

// refMessage is Message as encoding/json wrote it by reflection before appendJSON:
// the reference the digest of a request's messages must keep matching.
type refMessage Message

func (m refMessage) MarshalJSON() ([]byte, error) {
	type plain Message
	var content any = m.Content
	if len(m.Parts) > 0 {
		content = m.Parts
	}
	return json.Marshal(struct {
		Role    string `json:"role"`
		Content any    `json:"content"`
		plain
	}{m.Role, content, plain(m)})
}

func checkMessagesJSON(t testing.TB, msgs []Message) {
	t.Helper()
	var ref []refMessage
	if msgs != nil {
		ref = make([]refMessage, len(msgs))
		for i, m := range msgs {
			ref[i] = refMessage(m)
		}
	}
	want, err := json.Marshal(ref)
	if err != nil {
		t.Fatal(err)
	}
	if got := messagesJSON(msgs); !bytes.Equal(got, want) {
		t.Fatalf("messagesJSON wrote\n%s\nencoding/json writes\n%s", got, want)
	}
	for i := range msgs {
		one, _ := json.Marshal(refMessage(msgs[i]))
		if got, _ := msgs[i].MarshalJSON(); !bytes.Equal(got, one) {
			t.Fatalf("MarshalJSON wrote\n%s\nencoding/json writes\n%s", got, one)
		}
	}
}

func TestMessagesJSONIsEncodingJSON(t *testing.T) {
	for _, msgs := range [][]Message{
		nil,
		{},
		{{Role: "user", Content: "Summarise: <the> audit & committee.\u2028\x00\xff"}},
		{{Role: "system", Content: "be exact"}, {Role: "user", Name: "okafor", Parts: []backend.Part{{Type: "text", Text: "what is it?"},
			{Type: "image_url", ImageURL: &backend.ImageURL{URL: "data:image/png;base64,AAAA", Detail: "high"}}, {Type: "image_url", ImageURL: &backend.ImageURL{}}}},
			{Role: "assistant", ToolCalls: []backend.ToolCall{{Index: 3, ID: "call_1", Type: "function", Function: backend.FunctionCall{Name: "lookup", Arguments: `{"q":"<x>"}`}}}},
			{Role: "tool", ToolCallID: "call_1", Content: "42"}},
	} {
		checkMessagesJSON(t, msgs)
	}
}

func FuzzMessagesJSON(f *testing.F) {
	f.Add("user", "hello", "", "", "", "")
	f.Add("tool", "<&>", "n", "call_1", "calc", `{"a":1}`)
	f.Fuzz(func(t *testing.T, role, content, name, callID, fn, args string) {
		msgs := []Message{{Role: role, Content: content, Name: name, ToolCallID: callID}}
		if fn != "" {
			msgs = append(msgs, Message{Role: role, ToolCalls: []backend.ToolCall{{ID: callID, Type: name, Function: backend.FunctionCall{Name: fn, Arguments: args}}}})
		}
		if args != "" {
			msgs = append(msgs, Message{Role: role, Content: content, Parts: []backend.Part{{Type: "text", Text: content}, {Type: role, ImageURL: &backend.ImageURL{URL: args, Detail: fn}}}})
		}
		checkMessagesJSON(t, msgs)
	})
}
