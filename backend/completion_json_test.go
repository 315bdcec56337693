package backend

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// completionCases are answers for the fast path and decodeAnswer to agree on: what
// servers send, and the edges of what the fast path takes.
var completionCases = []string{
	`{"id":"c1","model":"m","choices":[{"message":{"content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`,
	` { "id" : "c1" , "choices" : [ { "message" : { "content" : "a\nb \"q\" \\ \/ \b\f\r\t \u00e9 \u20ac \ud83d\ude00 \u0000" } , "finish_reason" : null } ] } `,
	`{"id":null,"model":null,"choices":null,"usage":null}`,
	`{"choices":[]}`,
	`{"choices":[{}]}`,
	`{"choices":[{"message":null}]}`,
	`{"choices":[{"message":{"content":null,"tool_calls":null}}]}`,
	`{"choices":[{"message":{"content":"","tool_calls":[]}},{"message":{"content":"second"},"finish_reason":"length"}]}`,
	`{"choices":[{"message":{"Content":"x","content":"y"},"finish_reason":"stop"}],"timings":{}}`,
	`{"usage":{"prompt_tokens":0,"completion_tokens":123456789012345678,"total_tokens":null,"details":{"a":[1,-2.5e-3,0.0,1E+9,true,false,null,"s\u0041",{}],"b":[]}}}`,
	`{"x":"\ud800"}`,
	`{"x":"\udc00\ud800"}`,
	`{"choices":[{"message":{"content":"\ud83d"}}]}`,
	`{"choices":[{"message":{"content":"\ud83d\u0041"}}]}`,
	"{\"choices\":[{\"message\":{\"content\":\"\xff\"},\"finish_reason\":\"stop\"}]}",
	"{\"x\":\"\xc3\"}",
	"{\"\xff\":1}",
	`{"choices":[{"message":{"content":"yes","content":"no"},"finish_reason":"stop"}]}`,
	`{"a":{"b":1,"b":2}}`,
	`{"a":[{"b":1},{"b":2}]}`,
	`{"a":1,"a":1}`,
	`{"a\u0062":1,"ab":2}`,
	`{"usage":{"prompt_tokens":01}}`,
	`{"usage":{"prompt_tokens":-1}}`,
	`{"usage":{"prompt_tokens":1.0}}`,
	`{"usage":{"prompt_tokens":1e2}}`,
	`{"usage":{"prompt_tokens":"1"}}`,
	`{"usage":{"prompt_tokens":1234567890123456789012}}`,
	`{"usage":5}`,
	`{"id":5}`,
	`{"choices":{}}`,
	`{"choices":[null]}`,
	`{"choices":[{"message":{"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}}]}`,
	`{"error":null}`,
	`{"error":{"message":"no"}}`,
	`{"x":01}`, `{"x":1.}`, `{"x":.5}`, `{"x":-}`, `{"x":1e}`, `{"x":1x}`, `{"x":tru}`, `{"x":nul}`,
	`{"x":"a` + "\t" + `b"}`,
	`{"x":"\x"}`, `{"x":"\u12"}`, `{"x":"\u12g4"}`,
	`{"a":1}x`, `{"a":1}{}`, `{"a":1,}`, `{,"a":1}`, `{"a" 1}`, `{"a":1 "b":2}`, `[1]`, `null`, ``, `{`, `{"a":[1,]}`, `{"a":[1 2]}`,
	strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat(`}`, 40),
}

// chunkCases are stream chunks, added to completionCases for decodeChunk.
var chunkCases = []string{
	`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"He"},"logprobs":null,"finish_reason":null}]}`,
	`{"id":"c1","choices":[{"index":1,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`,
	`{"choices":[{"index":0,"delta":{"content":"a\u00e9"},"finish_reason":null},{"index":1,"delta":null}]}`,
	`{"choices":[{"index":-1,"delta":{"content":"x"}}]}`,
	`{"choices":[{"index":0,"index":1,"delta":{"content":"x"}}]}`,
	`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":""}}]}}]}`,
	`{"choices":[{"index":0,"delta":{"content":"x","tool_calls":[]}}],"usage":null}`,
}

// TestCompletionFastPathIsDecodeAnswer: on every case, decodeCompletion and
// decodeChunk give what decodeAnswer gives — the same value, or the same error.
func TestCompletionFastPathIsDecodeAnswer(t *testing.T) {
	for _, body := range append(completionCases, chunkCases...) {
		checkCompletionFastPath(t, []byte(body))
	}
}

// TestServersAnswersTakeTheFastPath: the plain answers of vLLM, llama.cpp and Ollama
// recorded in testdata, and the mock's, are read without falling back.
func TestServersAnswersTakeTheFastPath(t *testing.T) {
	paths, _ := filepath.Glob("testdata/golden/*/chat.json")
	if len(paths) < 3 {
		t.Fatalf("golden answers: %v", paths)
	}
	bodies := map[string][]byte{"mock": []byte(`{"id":"chatcmpl-mock-1","object":"chat.completion","created":1,"model":"mock","choices":[{"index":0,"message":{"role":"assistant","content":"The answer is forty-two."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":6,"total_tokens":18}}`)}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		bodies[p] = b
	}
	for name, b := range bodies {
		var c completion
		if !readCompletionFast(b, &c) {
			t.Errorf("%s: the fast path left it to decodeAnswer", name)
		}
		checkCompletionFastPath(t, b)
	}
	streams, _ := filepath.Glob("testdata/golden/*/chat_stream.sse")
	if len(streams) < 3 {
		t.Fatalf("golden streams: %v", streams)
	}
	for _, p := range streams {
		chunks := sseData(t, p)
		for i, b := range chunks {
			var c streamChunk
			if !readChunkFast(b, &c) {
				t.Errorf("%s: chunk %d left to decodeAnswer: %s", p, i, b)
			}
			checkCompletionFastPath(t, b)
		}
	}
}

// sseData returns the data of a recorded stream's events, but [DONE].
func sseData(t testing.TB, path string) [][]byte {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, line := range strings.Split(string(raw), "\n") {
		if d, ok := strings.CutPrefix(line, "data: "); ok && d != "[DONE]" {
			out = append(out, []byte(d))
		}
	}
	return out
}

func checkCompletionFastPath(t *testing.T, b []byte) {
	t.Helper()
	checkFastPath(t, b, readCompletionFast, decodeCompletion)
	checkFastPath(t, b, readChunkFast, decodeChunk)
}

// checkFastPath holds fast (the fast path alone) and decode (the fast path with its
// fallback) to decodeAnswer on b.
func checkFastPath[T any](t *testing.T, b []byte, fast func([]byte, *T) bool, decode func([]byte, *T) error) {
	t.Helper()
	var want T
	werr := decodeAnswer(b, &want)
	var f T
	took := fast(b, &f)
	if took && werr != nil {
		t.Fatalf("the fast path took %q as a %T, which decodeAnswer refuses: %v", b, f, werr)
	}
	if took && !reflect.DeepEqual(f, want) {
		t.Fatalf("on %q the fast path gives %+v, decodeAnswer %+v", b, f, want)
	}
	var got T
	gerr := decode(b, &got)
	if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
		t.Fatalf("on %q (%T) the decoder errs %v, decodeAnswer %v", b, got, gerr, werr)
	}
	if gerr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("on %q the decoder gives %+v, decodeAnswer %+v", b, got, want)
	}
}

// FuzzCompletionFastPathIsDecodeAnswer: what the fast path takes, decodeAnswer takes
// alike; what it leaves, decodeCompletion answers as decodeAnswer does.
func FuzzCompletionFastPathIsDecodeAnswer(f *testing.F) {
	for _, c := range append(completionCases, chunkCases...) {
		f.Add([]byte(c))
	}
	paths, _ := filepath.Glob("testdata/golden/*/*.json")
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	streams, _ := filepath.Glob("testdata/golden/*/*.sse")
	for _, p := range streams {
		for _, b := range sseData(f, p) {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkCompletionFastPath(t, b)
	})
}

// BenchmarkDecodeCompletion: vLLM's recorded answer, by the fast path and by
// decodeAnswer.
func BenchmarkDecodeCompletion(b *testing.B) {
	body, err := os.ReadFile("testdata/golden/vllm/chat.json")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var c completion
			if err := decodeCompletion(body, &c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decodeAnswer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var c completion
			if err := decodeAnswer(body, &c); err != nil {
				b.Fatal(err)
			}
		}
	})
}
