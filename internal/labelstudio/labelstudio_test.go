package labelstudio_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	ls "github.com/sam-ml-backend/sam-ml-backend/internal/labelstudio"
)

// fixture is a recorded request with the derivation the reference makes.
type fixture struct {
	ls.PredictRequest
	Expected struct {
		ImageWidth  int      `json:"image_width"`
		ImageHeight int      `json:"image_height"`
		Points      [][2]int `json:"point_coords_px"`
		Labels      []int    `json:"point_labels"`
		Box         []int    `json:"input_box_xyxy_px"`
		Label       string   `json:"selected_label"`
		FromName    string   `json:"from_name"`
		ToName      string   `json:"to_name"`
		DataKey     string   `json:"data_key"`
		ProjectID   string   `json:"project_id"`
	} `json:"_expected_backend_derivation"`
}

func readFixture(t *testing.T, name string) fixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return f
}

func TestGoldenRequests(t *testing.T) {
	for _, name := range []string{"ml_predict_request_sam_keypoint.json", "ml_predict_request_sam_rectangle.json"} {
		t.Run(name, func(t *testing.T) {
			f := readFixture(t, name)
			in, err := ls.ParseInteraction(f.Params.Context)
			if err != nil {
				t.Fatal(err)
			}
			var points [][2]int
			var labels []int
			for _, p := range in.Points {
				points = append(points, [2]int{p.X, p.Y})
				l := 0
				if p.Positive {
					l = 1
				}
				labels = append(labels, l)
			}
			if diff := cmp.Diff(points, f.Expected.Points); diff != "" {
				t.Errorf("points (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(labels, f.Expected.Labels); diff != "" {
				t.Errorf("labels (-got +want):\n%s", diff)
			}
			var box []int
			if in.Box != nil {
				box = []int{in.Box.X0, in.Box.Y0, in.Box.X1, in.Box.Y1}
			}
			if diff := cmp.Diff(box, f.Expected.Box); diff != "" {
				t.Errorf("box (-got +want):\n%s", diff)
			}
			if in.Label != f.Expected.Label {
				t.Errorf("label = %q, want %q", in.Label, f.Expected.Label)
			}
			if f.Expected.ImageWidth != 0 && (in.Width != f.Expected.ImageWidth || in.Height != f.Expected.ImageHeight) {
				t.Errorf("size = %dx%d, want %dx%d", in.Width, in.Height, f.Expected.ImageWidth, f.Expected.ImageHeight)
			}
			target, err := ls.ParseBrushTarget(f.LabelConfig)
			if err != nil {
				t.Fatal(err)
			}
			want := ls.BrushTarget{FromName: "tag", ToName: "image", DataKey: "image"}
			if target != want {
				t.Errorf("target = %+v, want %+v", target, want)
			}
			ref, err := ls.ParseProjectRef(string(f.Project))
			if err != nil || ref.ID != 1 || !ref.HasCreatedAt || ref.CreatedAt != 1700000000 {
				t.Errorf("ParseProjectRef(%q) = %+v, %v; want id 1 at 1700000000", f.Project, ref, err)
			}
			if len(f.Tasks) != 1 {
				t.Fatalf("got %d tasks, want 1", len(f.Tasks))
			}
			if _, err := f.Tasks[0].ImageRef(target.DataKey); err != nil {
				t.Error(err)
			}
		})
	}
}

func ctx(t *testing.T, js string) *ls.Context {
	t.Helper()
	var c ls.Context
	if err := json.Unmarshal([]byte(js), &c); err != nil {
		t.Fatalf("decode context: %v", err)
	}
	return &c
}

func TestParseInteraction(t *testing.T) {
	tests := []struct {
		name string
		ctx  string
		want ls.Interaction
	}{
		{
			name: "missing is_positive is negative; truncation toward zero",
			ctx: `{"result":[{"original_width":640,"original_height":426,"type":"keypointlabels",
				"value":{"x":10.99,"y":0.1,"keypointlabels":["A"]}}]}`,
			want: ls.Interaction{Width: 640, Height: 426, Points: []ls.Point{{X: 70, Y: 0}}, Label: "A"},
		},
		{
			name: "is_positive 0.5 is int(0.5) = 0: negative",
			ctx: `{"result":[{"original_width":100,"original_height":100,"type":"keypointlabels","is_positive":0.5,
				"value":{"x":50,"y":50,"keypointlabels":["A"]}}]}`,
			want: ls.Interaction{Width: 100, Height: 100, Points: []ls.Point{{X: 50, Y: 50}}, Label: "A"},
		},
		{
			name: "is_positive as a number",
			ctx: `{"result":[{"original_width":100,"original_height":100,"type":"keypointlabels","is_positive":1,
				"value":{"x":50,"y":50,"keypointlabels":["A"]}}]}`,
			want: ls.Interaction{Width: 100, Height: 100, Points: []ls.Point{{X: 50, Y: 50, Positive: true}}, Label: "A"},
		},
		{
			name: "last rectangle wins, last label wins, many points",
			ctx: `{"result":[
				{"original_width":200,"original_height":100,"type":"rectanglelabels","value":{"x":0,"y":0,"width":10,"height":10,"rectanglelabels":["First"]}},
				{"original_width":200,"original_height":100,"type":"keypointlabels","is_positive":true,"value":{"x":25,"y":50,"keypointlabels":["P"]}},
				{"original_width":200,"original_height":100,"type":"keypointlabels","is_positive":false,"value":{"x":75,"y":50,"keypointlabels":["P"]}},
				{"original_width":200,"original_height":100,"type":"rectanglelabels","value":{"x":10,"y":20,"width":50,"height":30,"rectanglelabels":["Last"]}}]}`,
			want: ls.Interaction{Width: 200, Height: 100,
				Points: []ls.Point{{X: 50, Y: 50, Positive: true}, {X: 150, Y: 50}},
				Box:    &ls.Box{X0: 20, Y0: 20, X1: 120, Y1: 50}, Label: "Last"},
		},
		{
			name: "size comes from the first region only",
			ctx: `{"result":[
				{"original_width":1000,"original_height":500,"type":"keypointlabels","is_positive":true,"value":{"x":10,"y":10,"keypointlabels":["A"]}},
				{"original_width":1,"original_height":1,"type":"keypointlabels","is_positive":true,"value":{"x":20,"y":20,"keypointlabels":["B"]}}]}`,
			want: ls.Interaction{Width: 1000, Height: 500, Points: []ls.Point{{X: 100, Y: 50, Positive: true}, {X: 200, Y: 100, Positive: true}}, Label: "B"},
		},
		{
			name: "other region types only give the label",
			ctx: `{"result":[
				{"original_width":10,"original_height":10,"type":"keypointlabels","is_positive":true,"value":{"x":50,"y":50,"keypointlabels":["A"]}},
				{"original_width":10,"original_height":10,"type":"choices","value":{"choices":["C"]}}]}`,
			want: ls.Interaction{Width: 10, Height: 10, Points: []ls.Point{{X: 5, Y: 5, Positive: true}}, Label: "C"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ls.ParseInteraction(ctx(t, tt.ctx))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(*got, tt.want); diff != "" {
				t.Errorf("(-got +want):\n%s", diff)
			}
		})
	}
}

func TestParseInteractionErrors(t *testing.T) {
	tests := []struct {
		name, ctx, want string
	}{
		{"no size", `{"result":[{"type":"keypointlabels","value":{"x":1,"y":1,"keypointlabels":["A"]}}]}`, "original_width is missing"},
		{"zero size", `{"result":[{"original_width":0,"original_height":5,"type":"keypointlabels","value":{"x":1,"y":1,"keypointlabels":["A"]}}]}`, "is not an image size"},
		{"huge size", `{"result":[{"original_width":1e12,"original_height":5,"type":"keypointlabels","value":{"x":1,"y":1,"keypointlabels":["A"]}}]}`, "is not an image size"},
		{"no x", `{"result":[{"original_width":5,"original_height":5,"type":"keypointlabels","value":{"y":1,"keypointlabels":["A"]}}]}`, "value.x is missing"},
		{"no label", `{"result":[{"original_width":5,"original_height":5,"type":"keypointlabels","value":{"x":1,"y":1}}]}`, "value.keypointlabels is missing"},
		{"empty label", `{"result":[{"original_width":5,"original_height":5,"type":"keypointlabels","value":{"x":1,"y":1,"keypointlabels":[]}}]}`, "is empty"},
		{"value not object", `{"result":[{"original_width":5,"original_height":5,"type":"keypointlabels","value":[1]}]}`, "must be an object"},
		{"no type", `{"result":[{"original_width":5,"original_height":5,"value":{"x":1}}]}`, "type is missing"},
		{"rect without height", `{"result":[{"original_width":5,"original_height":5,"type":"rectanglelabels","value":{"x":1,"y":1,"width":3,"rectanglelabels":["A"]}}]}`, "value.height is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ls.ParseInteraction(ctx(t, tt.ctx))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
	for _, c := range []*ls.Context{nil, {}} {
		if _, err := ls.ParseInteraction(c); err != ls.ErrNoContext {
			t.Errorf("ParseInteraction(%v) err = %v, want ErrNoContext", c, err)
		}
	}
}

func TestParseBrushTarget(t *testing.T) {
	tests := []struct {
		name, config string
		want         ls.BrushTarget
		wantErr      string
	}{
		{"image after control, case-insensitive tags",
			`<View><brushlabels name="b" toName="img"><Label value="A"/></brushlabels><IMAGE name="img" value="$photo"/></View>`,
			ls.BrushTarget{FromName: "b", ToName: "img", DataKey: "photo"}, ""},
		{"first brush pointing at an image wins; toName lists",
			`<View><Text name="t" value="$text"/><Image name="i1" value="$a"/><Image name="i2" value="$b"/>
			 <BrushLabels name="onText" toName="t"/><BrushLabels name="b1" toName="t, i2"/><BrushLabels name="b2" toName="i1"/></View>`,
			ls.BrushTarget{FromName: "b1", ToName: "i2", DataKey: "b"}, ""},
		{"no brush", `<View><Image name="i" value="$image"/><RectangleLabels name="r" toName="i"/></View>`, ls.BrushTarget{}, "no BrushLabels"},
		{"empty", ``, ls.BrushTarget{}, "label_config is empty"},
		{"broken xml", `<View><Image name="i" value="$image"`, ls.BrushTarget{}, "parse label_config"},
		{"image without value", `<View><Image name="i"/><BrushLabels name="b" toName="i"/></View>`, ls.BrushTarget{}, "has no value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ls.ParseBrushTarget(tt.config)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestImageRefUndefinedKey(t *testing.T) {
	var task ls.Task
	if err := json.Unmarshal([]byte(`{"id":3,"data":{"$undefined$":"/data/upload/1/a.png"}}`), &task); err != nil {
		t.Fatal(err)
	}
	got, err := task.ImageRef("image")
	if err != nil || got != "/data/upload/1/a.png" {
		t.Errorf("ImageRef = %q, %v; want the $undefined$ value", got, err)
	}
	if err := json.Unmarshal([]byte(`{"id":3,"data":{"image":7}}`), &task); err != nil {
		t.Fatal(err)
	}
	if _, err := task.ImageRef("image"); err == nil || !strings.Contains(err.Error(), "must be a string") {
		t.Errorf("err = %v, want 'must be a string'", err)
	}
}

func TestParseProjectRef(t *testing.T) {
	tests := []struct {
		in      string
		want    ls.ProjectRef
		wantErr bool
	}{
		{"123.1609459200", ls.ProjectRef{ID: 123, CreatedAt: 1609459200, HasCreatedAt: true}, false},
		{"123", ls.ProjectRef{ID: 123}, false},
		{"", ls.ProjectRef{}, true},
		{"None", ls.ProjectRef{}, true},
		{"0", ls.ProjectRef{}, true},
		{"-4.5", ls.ProjectRef{}, true},
		{"12.x", ls.ProjectRef{}, true},
		{"12.", ls.ProjectRef{}, true},
		{"07", ls.ProjectRef{}, true},
		{"+7", ls.ProjectRef{}, true},
		{" 7", ls.ProjectRef{}, true},
		{"7.0009", ls.ProjectRef{}, true},
		{"7.-0", ls.ProjectRef{}, true},
		{"7.+9", ls.ProjectRef{}, true},
		{"7.0", ls.ProjectRef{ID: 7, HasCreatedAt: true}, false},
	}
	for _, tt := range tests {
		got, err := ls.ParseProjectRef(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseProjectRef(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestTasksAndProjectShapes(t *testing.T) {
	var req ls.PredictRequest
	body := `{"tasks":{"id":1},"project":12,"params":{"context":{}}}`
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	if len(req.Tasks) != 1 || req.Tasks[0].ID != 1 || req.Project != "12" {
		t.Errorf("got tasks %+v project %q; want one task with id 1 and project \"12\"", req.Tasks, req.Project)
	}
}

func TestResponseGolden(t *testing.T) {
	b, err := os.ReadFile("testdata/ml_predict_response_sam_tiny.json")
	if err != nil {
		t.Fatal(err)
	}
	var want ls.PredictResponse
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	// Flask's jsonify sorts keys and is compact; so is our encoding.
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	delete(generic.(map[string]any), "_comment")
	delete(generic.(map[string]any), "_mask_rows_0_1")
	flask, err := json.Marshal(generic)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(flask) {
		t.Errorf("response bytes differ from the reference's sorted compact JSON:\ngot  %s\nwant %s", got, flask)
	}
}

func TestRegionsStopAtMaxRegions(t *testing.T) {
	region := `{"type":"keypointlabels","original_width":10,"original_height":10,"value":{"x":1,"y":1,"keypointlabels":["a"]}}`
	body := func(n int) []byte {
		return []byte(`{"result":[` + strings.TrimSuffix(strings.Repeat(region+",", n), ",") + `]}`)
	}
	var c ls.Context
	if err := json.Unmarshal(body(ls.MaxRegions), &c); err != nil || len(c.Result) != ls.MaxRegions {
		t.Errorf("%d regions: %d decoded, %v", ls.MaxRegions, len(c.Result), err)
	}
	err := json.Unmarshal(body(ls.MaxRegions+1), &c)
	if err == nil || !strings.Contains(err.Error(), "more than 1000 regions") {
		t.Errorf("%d regions: %v; want the limit named", ls.MaxRegions+1, err)
	}
	for _, in := range []string{`{"result":null}`, `{"result":[]}`, `{}`} {
		if err := json.Unmarshal([]byte(in), &c); err != nil || len(c.Result) != 0 {
			t.Errorf("%s: %v, %d regions", in, err, len(c.Result))
		}
	}
	if err := json.Unmarshal([]byte(`{"result":{"a":1}}`), &c); err == nil {
		t.Error("an object as result was accepted")
	}
}
