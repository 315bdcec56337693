package fleet

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// TestParseCallStrict: a remote call's body and its answer, as this node writes them
// (Marshal, WriteCallResponse), read back the same; a repeated, differently cased or
// unknown member is refused naming it, where encoding/json would let the last win,
// match it anyway or skip it.
func TestParseCallStrict(t *testing.T) {
	fx := newFixture(t)
	env := mustSealEnvelope(t, fx.a1.Key, testEnvelope(fx))
	payload := json.RawMessage(`{"messages":[{"content":"R&D <lab>","role":"user"}],"model":"b"}`)
	body, err := Marshal(CallRequest{Envelope: env, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	rq, err := ParseCallRequest(body, MaxCallRequest)
	if err != nil || string(rq.Envelope) != string(env) || string(rq.Payload) != string(payload) {
		t.Fatalf("round trip: %v", err)
	}
	out, _ := json.Marshal(CallOutput{Content: "a <b> & c", FinishReason: "stop"})
	sent := &CallResponse{Status: 200, Reply: json.RawMessage(`{"v":"fed-reply/1"}`), Output: out}
	w := httptest.NewRecorder()
	WriteCallResponse(w, sent, 0)
	got, err := ParseCallResponse(w.Body.Bytes())
	if err != nil || !reflect.DeepEqual(got, sent) {
		t.Fatalf("answer round trip: %+v, %v", got, err)
	}

	for _, c := range []struct{ name, in, want string }{
		{"repeated member", `{"envelope":{},"payload":{},"payload":{"model":"x"}}`, `duplicate object member name "payload"`},
		{"differently cased member", `{"envelope":{},"Payload":{}}`, `unknown object member name "Payload"`},
		{"unknown member", `{"envelope":{},"payload":{},"grant":{}}`, `unknown object member name "grant"`},
		{"missing payload", `{"envelope":{}}`, "both are required"},
		{"too large", `{"envelope":{},"payload":"` + strings.Repeat("x", 100) + `"}`, "more than 64 bytes"},
	} {
		t.Run("request/"+c.name, func(t *testing.T) {
			if _, err := ParseCallRequest([]byte(c.in), 64); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseCallRequest = %v, want an error saying %q", err, c.want)
			}
		})
	}
	for _, c := range []struct{ name, in, want string }{
		{"repeated member", `{"status":200,"status":403}`, `duplicate object member name "status"`},
		{"differently cased member", `{"status":200,"Output":{}}`, `unknown object member name "Output"`},
		{"unknown member of the error", `{"status":403,"error":{"status":403,"type":"t","code":"c","message":"m","hint":"h"}}`, `unknown object member name "hint"`},
		{"data after the answer", `{"status":200} {}`, "trailing data"},
	} {
		t.Run("answer/"+c.name, func(t *testing.T) {
			_, err := ParseCallResponse([]byte(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrMalformedAnswer) {
				t.Fatalf("ParseCallResponse = %v, want ErrMalformedAnswer saying %q", err, c.want)
			}
		})
	}
}

// TestWriteCallResponseKeepsToTheReadersRule: an answer the origin would refuse is not
// sent; an unsigned internal error saying why goes instead, and that the origin reads.
func TestWriteCallResponseKeepsToTheReadersRule(t *testing.T) {
	for _, c := range []struct {
		name   string
		output string
		want   string
	}{
		{"noncharacter in the output", "\uffff", "noncharacter"},
		{"more than MaxCallAnswer", strings.Repeat("x", MaxCallAnswer), "MaxCallAnswer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, _ := json.Marshal(CallOutput{Content: c.output})
			w := httptest.NewRecorder()
			WriteCallResponse(w, &CallResponse{Status: 200, Reply: json.RawMessage(`{}`), Output: out}, 0)
			got, err := ParseCallResponse(w.Body.Bytes())
			if err != nil {
				t.Fatalf("the origin refuses what was written instead: %v", err)
			}
			if got.Status != 500 || got.Reply != nil || got.Error == nil || got.Error.Code != "internal" || !strings.Contains(got.Error.Message, c.want) {
				t.Fatalf("written %+v (error %+v), want an internal error saying %q", got, got.Error, c.want)
			}
		})
	}
}

// FuzzParseCall: whatever ParseCallRequest or ParseCallResponse accepts, Marshal writes
// back to bytes that read the same.
func FuzzParseCall(f *testing.F) {
	f.Add([]byte(`{"envelope":{"v":"fed-call/1"},"payload":{"model":"b","messages":[]}}`))
	f.Add([]byte(`{"status":200,"reply":{"v":"fed-reply/1"},"output":{"content":"x"}}`))
	f.Add([]byte(`{"status":403,"error":{"status":403,"type":"t","code":"c","message":"m"}}`))
	f.Add([]byte(`{"envelope":1,"Envelope":2,"payload":3}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		if rq, err := ParseCallRequest(in, MaxCallRequest); err == nil {
			again, err := Marshal(rq)
			if err != nil {
				t.Fatal(err)
			}
			rq2, err := ParseCallRequest(again, MaxCallRequest)
			if err != nil || !jsonEqual(rq.Envelope, rq2.Envelope) || !jsonEqual(rq.Payload, rq2.Payload) {
				t.Fatalf("written back, %s does not read the same: %v", in, err)
			}
		}
		if resp, err := ParseCallResponse(in); err == nil {
			again, err := Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			resp2, err := ParseCallResponse(again)
			if err != nil || resp.Status != resp2.Status || !jsonEqual(resp.Reply, resp2.Reply) || !jsonEqual(resp.Output, resp2.Output) ||
				!reflect.DeepEqual(resp.Error, resp2.Error) {
				t.Fatalf("written back, %s does not read the same: %v", in, err)
			}
		}
	})
}

// jsonEqual compares two JSON values by their compact form (Marshal compacts a
// json.RawMessage).
func jsonEqual(a, b json.RawMessage) bool {
	ca, _ := json.Marshal(a)
	cb, _ := json.Marshal(b)
	return string(ca) == string(cb)
}
