package rle_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/sam-ml-backend/sam-ml-backend/internal/rle"
)

// rlepackDir holds the node project that runs @thi.ng/rle-pack.
var rlepackDir = filepath.Join("testdata", "rlepack")

// rlepackItem is one request to decode.mjs: RLE to decode or words to encode.
type rlepackItem struct {
	RLE   []int `json:"rle,omitempty"`
	Words []int `json:"words,omitempty"`
}

// rlepackResult is decode.mjs's answer to one item.
type rlepackResult struct {
	Length       int      `json:"length"`
	BytesPerWord int      `json:"bytesPerWord"`
	Runs         [][2]int `json:"runs"`
	RLE          []int    `json:"rle"`
	Error        *string  `json:"error"`
}

// runRlepack sends items through decode.mjs under node. It skips the test
// when node or the npm packages are missing, unless SAM_REQUIRE_NODE=1.
func runRlepack(t *testing.T, items []rlepackItem) []rlepackResult {
	t.Helper()
	const install = "install node 18 or later, then run from the module root: npm ci --prefix internal/rle/testdata/rlepack"
	missing := func(what string) {
		t.Helper()
		if os.Getenv("SAM_REQUIRE_NODE") == "1" {
			t.Fatalf("%s and SAM_REQUIRE_NODE=1; %s", what, install)
		}
		t.Skipf("%s; %s (set SAM_REQUIRE_NODE=1 to fail instead)", what, install)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not on PATH")
	}
	if _, err := os.Stat(filepath.Join(rlepackDir, "node_modules", "@thi.ng", "rle-pack", "package.json")); err != nil {
		missing("@thi.ng/rle-pack is not installed in " + rlepackDir)
	}

	in, err := json.Marshal(items)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), node, "decode.mjs")
	cmd.Dir = rlepackDir
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("run node decode.mjs: %v\n%s", err, stderr.Bytes())
	}
	var results []rlepackResult
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("parse decode.mjs output: %v", err)
	}
	if len(results) != len(items) {
		t.Fatalf("decode.mjs returned %d results, want %d", len(results), len(items))
	}
	return results
}

// TestRlepackDecodesEncode encodes masks with Encode and decodes them with
// @thi.ng/rle-pack under node, the decoder the Label Studio editor runs.
func TestRlepackDecodesEncode(t *testing.T) {
	type maskCase struct {
		name string
		mask []byte
	}
	var cases []maskCase
	for _, v := range loadVectors(t) {
		cases = append(cases, maskCase{"vector " + v.Name, v.mask(t)})
	}
	rng := rand.New(rand.NewPCG(5, 6))
	cases = append(cases,
		maskCase{"disc 1920x1080", disc(1920, 1080)},
		maskCase{"disc 1080x1920", disc(1080, 1920)},
		maskCase{"empty mask", nil},
		maskCase{"1 pixel", []byte{255}},
		maskCase{"all 0, 200x200, runs over 65536 words", px(200*200, 0)},
		maskCase{"all 255, 1920x1080", px(1920*1080, 255)},
		maskCase{"class boundaries", cat(px(2, 0), px(3, 255), px(4, 0), px(5, 255), px(64, 0),
			px(65, 255), px(16384, 0), px(16385, 255), px(32768, 0), px(32769, 255))},
		maskCase{"binary noise 300x200", randomMask(rng, 300*200, 1, []byte{0, 255})},
		maskCase{"random runs 640x480", randomMask(rng, 640*480, 3000, []byte{0, 255})},
		maskCase{"random bytes 100x100", randomMask(rng, 100*100, 6, allBytes())},
	)

	items := make([]rlepackItem, len(cases))
	for i, c := range cases {
		items[i] = rlepackItem{RLE: ints(rle.Encode(c.mask))}
	}
	results := runRlepack(t, items)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkRlepack(t, results[i], expand(c.mask))
		})
	}
}

// TestRlepackAgreesWithDecode runs the streams of the decoder tests, valid
// and malformed, through both decoders.
func TestRlepackAgreesWithDecode(t *testing.T) {
	type streamCase struct {
		name     string
		data     []byte
		maxWords int
	}
	var cases []streamCase
	for _, c := range decodeCases() {
		cases = append(cases, streamCase{c.name, c.data, c.maxWords})
	}
	valid := rle.Encode(disc(40, 30))
	for _, n := range []int{7, 8, 12, len(valid) / 2, len(valid) - 3} {
		cases = append(cases, streamCase{"cut to " + itoa(n) + " bytes", valid[:n], 40 * 30 * 4})
	}
	var s bitString
	s.header(100).repeat(0, 4, 255)
	cases = append(cases, streamCase{"body missing chunks", s.thingBytes(), 100})

	items := make([]rlepackItem, len(cases))
	for i, c := range cases {
		items[i] = rlepackItem{RLE: ints(c.data)}
	}
	results := runRlepack(t, items)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := rle.Decode(c.data, c.maxWords)
			res := results[i]
			switch {
			case err != nil && res.Error == nil:
				t.Errorf("Decode error = %v, but @thi.ng/rle-pack decoded %d words", err, res.Length)
			case err == nil && res.Error != nil:
				t.Errorf("Decode = %v, but @thi.ng/rle-pack threw %q", summarize(got), *res.Error)
			case err == nil:
				checkRlepack(t, res, got)
			}
		})
	}
}

// TestDecodeReadsRlepackEncode decodes with Decode what the editor's encoder
// writes when a user paints a brush region: its literal chunks, runs split
// at 65535, and padding to the next byte only.
func TestDecodeReadsRlepackEncode(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	inputs := map[string][]byte{
		"disc RGBA 320x240": expand(disc(320, 240)),
		"lone words":        {1, 2, 3, 3, 4, 5, 5, 5, 6},
		"one word":          {9},
		"long run":          px(200000, 255),
		"noise words":       randomMask(rng, 70000, 1, allBytes()),
		"mixed runs":        randomMask(rng, 300000, 400, []byte{0, 255, 1}),
		"literal of 65537":  distinct(65537),
		// Not ending in the 65537-word run: for a final run of 65536k+1
		// words, encode (3.2.12) drops the last word and its own decode then
		// throws "can't read past EOF", as Decode refuses it.
		"runs at boundaries": cat(px(8, 1), px(9, 2), px(16, 3), px(17, 4), px(256, 5), px(257, 6),
			px(65536, 7), px(65537, 8), px(3, 9)),
	}
	names := make([]string, 0, len(inputs))
	items := make([]rlepackItem, 0, len(inputs))
	for name, words := range inputs {
		names = append(names, name)
		items = append(items, rlepackItem{Words: ints(words)})
	}
	results := runRlepack(t, items)
	for i, name := range names {
		t.Run(name, func(t *testing.T) {
			res := results[i]
			if res.Error != nil {
				t.Fatalf("@thi.ng/rle-pack encode threw %q", *res.Error)
			}
			data := make([]byte, len(res.RLE))
			for k, b := range res.RLE {
				data[k] = byte(b)
			}
			want := inputs[name]
			got, err := rle.Decode(data, len(want))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Decode = %v, want %v", summarize(got), summarize(want))
			}
		})
	}
}

// checkRlepack compares decode.mjs's result with the words it should hold.
func checkRlepack(t *testing.T, res rlepackResult, want []byte) {
	t.Helper()
	if res.Error != nil {
		t.Fatalf("@thi.ng/rle-pack threw %q, want %v", *res.Error, summarize(want))
	}
	if res.BytesPerWord != 1 {
		t.Errorf("@thi.ng/rle-pack returned %d bytes a word, want 1", res.BytesPerWord)
	}
	if res.Length != len(want) {
		t.Errorf("@thi.ng/rle-pack returned %d words, want %d", res.Length, len(want))
	}
	wantRuns := runs(want)
	if len(res.Runs) != len(wantRuns) {
		t.Fatalf("@thi.ng/rle-pack returned %d runs, want %d (%v)", len(res.Runs), len(wantRuns), summarize(want))
	}
	for k, r := range res.Runs {
		if w := wantRuns[k]; r[0] != int(w.Value) || r[1] != w.Count {
			t.Fatalf("@thi.ng/rle-pack run %d = %d×%d, want %d×%d", k, r[1], r[0], w.Count, w.Value)
		}
	}
}

// ints converts bytes to JSON numbers (encoding/json writes []byte as base64).
func ints(b []byte) []int {
	out := make([]int, len(b))
	for i, x := range b {
		out[i] = int(x)
	}
	return out
}

// distinct returns n words with no two neighbours equal: one literal run.
func distinct(n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = byte(i % 251)
	}
	return out
}
