package httpapi

import (
	"encoding/json"
	"strings"
	"testing"
)

// depthOf is the nesting depth of a decoded JSON value.
func depthOf(v any) int {
	d := 0
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			d = max(d, depthOf(e))
		}
		return d + 1
	case map[string]any:
		for _, e := range v {
			d = max(d, depthOf(e))
		}
		return d + 1
	}
	return 0
}

// FuzzJSONDepth checks jsonDepthOver against encoding/json: on valid JSON,
// the limit trips exactly when the decoded value is deeper than it.
func FuzzJSONDepth(f *testing.F) {
	for _, s := range []string{`{}`, `[[[]]]`, `{"a":"[[\"{"}`, `{"a\\":[1]}`, `"\\\\"`, `[{"x":[{"y":{}}]}]`,
		strings.Repeat("[", 20) + strings.Repeat("]", 20)} {
		f.Add([]byte(s), 3)
	}
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		if max < 1 || max > 64 {
			return
		}
		at := jsonDepthOver(b, max)
		if at >= 0 && b[at] != '[' && b[at] != '{' {
			t.Fatalf("jsonDepthOver(%q, %d) = %d, which is not a bracket", b, max, at)
		}
		var v any
		if json.Unmarshal(b, &v) != nil {
			return
		}
		if deep := depthOf(v) > max; deep != (at >= 0) {
			t.Fatalf("jsonDepthOver(%q, %d) = %d, but the value's depth is %d", b, max, at, depthOf(v))
		}
	})
}

// BenchmarkJSONDepth measures the depth scan that runs before every body
// is decoded, on a 1 MiB body shaped like a predict request with drafts.
func BenchmarkJSONDepth(b *testing.B) {
	region := `{"id":"r","type":"keypointlabels","value":{"x":12.5,"y":40.25,"keypointlabels":["Cat"],"width":0.5},"original_width":4000,"original_height":3000,"label":"a \"quoted\" [text]"},`
	body := []byte(`{"tasks":[{"id":1,"data":{"image":"/data/upload/1/x.png"},"drafts":[{"result":[` + strings.Repeat(region, (1<<20)/len(region)) + `{}]}]}]}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if jsonDepthOver(body, DefaultMaxJSONDepth) >= 0 {
			b.Fatal("too deep")
		}
	}
}
