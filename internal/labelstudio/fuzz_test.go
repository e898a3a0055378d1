package labelstudio_test

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	ls "github.com/sam-ml-backend/sam-ml-backend/internal/labelstudio"
)

// maxErrLen bounds the text of a parser's error. The errors go back to the
// client and into logs, so hostile input must reach them clipped.
const maxErrLen = 512

// checkErr fails when a parser's error of input in is long or, for valid
// UTF-8 input, not valid UTF-8.
func checkErr(t *testing.T, err error, in string) {
	t.Helper()
	msg := err.Error()
	if len(msg) > maxErrLen {
		t.Fatalf("error is %d bytes, more than %d: %.200q…", len(msg), maxErrLen, msg)
	}
	if utf8.ValidString(in) && !utf8.ValidString(msg) {
		t.Fatalf("error of valid UTF-8 input is not valid UTF-8: %q", msg)
	}
}

// fixtureValues returns the values stored under key, at any depth, in every
// JSON file of testdata, in a stable order.
func fixtureValues(tb testing.TB, key string) []json.RawMessage {
	tb.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(names) == 0 {
		tb.Fatal("no JSON fixtures in testdata")
	}
	var out []json.RawMessage
	var walk func(raw json.RawMessage)
	walk = func(raw json.RawMessage) {
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) == nil && obj != nil {
			for _, k := range slices.Sorted(maps.Keys(obj)) {
				if k == key {
					out = append(out, obj[k])
				}
				walk(obj[k])
			}
			return
		}
		var arr []json.RawMessage
		if json.Unmarshal(raw, &arr) == nil {
			for _, v := range arr {
				walk(v)
			}
		}
	}
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		walk(b)
	}
	if len(out) == 0 {
		tb.Fatalf("no %q in the testdata fixtures", key)
	}
	return out
}

// fixtureStrings is fixtureValues for the values that are JSON strings or
// numbers, as their text.
func fixtureStrings(tb testing.TB, key string) []string {
	tb.Helper()
	var out []string
	for _, raw := range fixtureValues(tb, key) {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			out = append(out, s)
			continue
		}
		var n json.Number
		if json.Unmarshal(raw, &n) == nil {
			out = append(out, n.String())
		}
	}
	return out
}

// FuzzParseInteraction feeds ParseInteraction contexts decoded from
// arbitrary JSON, seeded with every context in the fixtures. An accepted
// context must give the first region's size, one point per keypoint
// region, a box exactly when there is a rectangle, and the same result from
// ParseInteractionAt at that size; errors must stay short.
func FuzzParseInteraction(f *testing.F) {
	for _, raw := range fixtureValues(f, "context") {
		f.Add([]byte(raw))
	}
	for _, s := range []string{
		`{"result":[{"original_width":1,"original_height":1,"type":"x","value":{"x":[]}}]}`,
		`{"result":[{"original_width":640,"original_height":480,"type":"rectanglelabels","value":{"x":-5,"y":1e6,"width":2.5,"height":0,"rectanglelabels":["A"]}},` +
			`{"original_width":9,"original_height":9,"type":"keypointlabels","is_positive":0.9,"value":{"x":100,"y":0,"keypointlabels":["B",""]}},` +
			`{"type":"choices","value":{"choices":["C"]}}]}`,
		`{"result":[{"original_width":1048576,"original_height":1.5,"type":"keypointlabels","is_positive":-2,"value":{"x":-1e6,"y":"1","keypointlabels":["A"]}}]}`,
		`{"result":[{"original_width":3,"original_height":3,"type":"` + strings.Repeat("t\u2028", 40) + `","value":{}}]}`,
		`{"result":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c ls.Context
		if json.Unmarshal(b, &c) != nil {
			return
		}
		in, err := ls.ParseInteraction(&c)
		if errors.Is(err, ls.ErrNoContext) {
			if len(c.Result) != 0 {
				t.Fatalf("ErrNoContext for %d regions", len(c.Result))
			}
			return
		}
		if err != nil {
			checkErr(t, err, string(b))
			return
		}
		if len(c.Result) == 0 || len(c.Result) > ls.MaxRegions {
			t.Fatalf("accepted %d regions", len(c.Result))
		}
		first := c.Result[0]
		if in.Width < 1 || in.Height < 1 || in.Width != int(*first.OriginalWidth) || in.Height != int(*first.OriginalHeight) {
			t.Fatalf("size %dx%d, want the first region's %vx%v", in.Width, in.Height, *first.OriginalWidth, *first.OriginalHeight)
		}
		var points, boxes int
		for _, r := range c.Result {
			switch r.Type {
			case "keypointlabels":
				points++
			case "rectanglelabels":
				boxes++
			}
		}
		if len(in.Points) != points || (in.Box != nil) != (boxes > 0) {
			t.Fatalf("got %d points and box %v from %d keypoint and %d rectangle regions", len(in.Points), in.Box, points, boxes)
		}
		at, err := ls.ParseInteractionAt(&c, in.Width, in.Height)
		if err != nil {
			t.Fatalf("ParseInteractionAt at the stated size: %v", err)
		}
		if diff := cmp.Diff(at, in); diff != "" {
			t.Fatalf("ParseInteractionAt at the stated size differs (-got +want):\n%s", diff)
		}
	})
}

// labelConfigs are hand-written label configs beside the fixtures': other
// controls, several brushes, nesting, entities, case and broken XML.
var labelConfigs = []string{
	`<View><Image name="image" value="$image"/><RectangleLabels name="r" toName="image"><Label value="A"/></RectangleLabels></View>`,
	`<View><Image name="img" value="$img"/><KeyPointLabels name="kp" toName="img" smart="true"><Label value="A"/></KeyPointLabels>` +
		`<BrushLabels name="br" toName="img"><Label value="A"/></BrushLabels></View>`,
	`<View><Text name="t" value="$text"/><Image name="i1" value="$a"/><Image name="i2" value="$b"/>` +
		`<BrushLabels name="onText" toName="t"/><BrushLabels name="b1" toName="t, i2"/><BrushLabels name="b2" toName="i1"/></View>`,
	`<View><View style="display:flex"><View><Image name="deep" value="$url" zoom="true"/></View></View>` +
		`<View><brushlabels NAME="b" TONAME="deep"><Label value="x"/></brushlabels></View></View>`,
	`<View><Image name="&#105;&amp;" value="$&lt;k&gt;"/><BrushLabels name="&quot;b&quot;" toName="&#105;&amp;"/></View>`,
	`<?xml version="1.0"?><!-- c --><View><![CDATA[<BrushLabels name="no"/>]]><Image name="i" value="$"/><BrushLabels name="b" toName="i"/></View>`,
	`<View><Image name="i" value="image"/><BrushLabels name="b" toName="i"/></View>`,
	`<View><Image name="i" value="$image"><BrushLabels name="b" toName="i">`,
	`<View><Image name="i" value="$image"/></Vew></BrushLabels name="b" toName="i">`,
	`<View><Image name="i" value="$image" value="$other"/><BrushLabels name="" toName="i"/><BrushLabels name="b" toName=",,i,"/></View>`,
	`<View>&bogus;<Image name="i" value="$i"/></View>`,
	"<View>\xff<Image name=\"i\" value=\"$\xfe\"/><BrushLabels name=\"b\" toName=\"i\"/></View>",
	`</` + strings.Repeat("x", 600) + `>`,
	`<?xml version="1.0" encoding="` + strings.Repeat("x", 600) + `"?><View/>`,
}

// FuzzParseBrushTarget feeds ParseBrushTarget arbitrary label configs,
// seeded with the fixtures' and labelConfigs. A target it finds must be made
// of a BrushLabels and an Image tag of the input that name each other;
// errors must stay short.
func FuzzParseBrushTarget(f *testing.F) {
	for _, s := range fixtureStrings(f, "label_config") {
		f.Add(s)
	}
	for _, s := range labelConfigs {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ls.ParseBrushTarget(s)
		if err != nil {
			checkErr(t, err, s)
			return
		}
		if got.FromName == "" || got.ToName == "" || got.DataKey == "" {
			t.Fatalf("accepted incomplete target %+v", got)
		}
		if !hasBrushTarget(s, got) {
			t.Fatalf("target %+v is not a BrushLabels and an Image of the input", got)
		}
	})
}

// hasBrushTarget reports whether config holds a BrushLabels tag named
// bt.FromName whose toName lists bt.ToName, and an Image tag named bt.ToName
// whose value is "$"+bt.DataKey or bt.DataKey.
func hasBrushTarget(config string, bt ls.BrushTarget) bool {
	var brush, image bool
	d := xml.NewDecoder(strings.NewReader(config))
	d.Strict = false
	for {
		tok, err := d.Token()
		if err != nil {
			return errors.Is(err, io.EOF) && brush && image
		}
		el, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		attrs := map[string]string{}
		for _, a := range el.Attr {
			if k := strings.ToLower(a.Name.Local); attrs[k] == "" {
				attrs[k] = a.Value
			}
		}
		switch {
		case strings.EqualFold(el.Name.Local, "BrushLabels") && attrs["name"] == bt.FromName:
			for n := range strings.SplitSeq(attrs["toname"], ",") {
				brush = brush || strings.TrimSpace(n) == bt.ToName
			}
		case strings.EqualFold(el.Name.Local, "Image") && attrs["name"] == bt.ToName:
			v := attrs["value"]
			image = image || v == "$"+bt.DataKey || v == bt.DataKey
		}
	}
}

// FuzzParseProjectRef feeds ParseProjectRef arbitrary strings, seeded with
// every project reference in the fixtures. An accepted reference must have
// a positive id and come back unchanged from its canonical form; errors,
// and ClipText, must stay short.
func FuzzParseProjectRef(f *testing.F) {
	for _, s := range fixtureStrings(f, "project") {
		f.Add(s)
	}
	for _, s := range []string{
		"12", "", "a.b", "0.5", "-1", "+7.+8", "007.0009", "1.", ".1", "1.2.3", "1.-0",
		"9223372036854775807.9223372036854775807", "9223372036854775808", " 1", "1\x00",
		strings.Repeat("9", 60), strings.Repeat("é", 30) + ".1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Nothing past 256 bytes reaches new code (clip cuts at 40 bytes;
		// an int64 has 19 digits), and long inputs stall the minimizer,
		// which is quadratic in the length, for tens of seconds.
		s = s[:min(len(s), 256)]
		clipped := ls.ClipText(s)
		if len(clipped) > 64 {
			t.Fatalf("ClipText gave %d bytes", len(clipped))
		}
		if clipped != s && !strings.HasPrefix(s, strings.TrimSuffix(clipped, "…")) {
			t.Fatalf("ClipText(%q) = %q, want s or a prefix of it", s, clipped)
		}
		if utf8.ValidString(s) && !utf8.ValidString(clipped) {
			t.Fatalf("ClipText(%q) = %q, not valid UTF-8", s, clipped)
		}

		ref, err := ls.ParseProjectRef(s)
		if err != nil {
			if ref != (ls.ProjectRef{}) {
				t.Fatalf("error %v with ref %+v, want the zero ref", err, ref)
			}
			checkErr(t, err, s)
			return
		}
		if ref.ID <= 0 || ref.CreatedAt < 0 {
			t.Fatalf("accepted id %d, timestamp %d from %q", ref.ID, ref.CreatedAt, s)
		}
		if ref.HasCreatedAt != strings.Contains(s, ".") || !ref.HasCreatedAt && ref.CreatedAt != 0 {
			t.Fatalf("ParseProjectRef(%q) = %+v: HasCreatedAt disagrees with the dot", s, ref)
		}
		canon := strconv.FormatInt(ref.ID, 10)
		if ref.HasCreatedAt {
			canon += "." + strconv.FormatInt(ref.CreatedAt, 10)
		}
		if canon != s {
			t.Fatalf("ParseProjectRef accepted %q, which is not the canonical %q", s, canon)
		}
	})
}
