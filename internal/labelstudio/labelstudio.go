// Package labelstudio holds the wire types of Label Studio's ML-backend
// protocol and the pure functions that read them: the predict request, the
// interactive context, the label config and the project reference. It does
// no I/O.
//
// The behaviour mirrors the segment_anything_model example of
// HumanSignal/label-studio-ml-backend, which Label Studio operators replace
// with this service, so every quirk it has on the wire is kept on purpose.
package labelstudio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// ModelClass is the model_class that /health reports; it names the Python
// class this service replaces.
const ModelClass = "SamMLBackend"

// PredictRequest is the body of POST /predict.
type PredictRequest struct {
	// Tasks are the tasks to predict. Label Studio sends a list; a single
	// object is accepted too, as the reference server does.
	Tasks Tasks `json:"tasks"`
	// Project is "<id>.<unix seconds of created_at>", or a bare id.
	Project ProjectField `json:"project"`
	// LabelConfig is the project's labeling config (XML).
	LabelConfig string `json:"label_config"`
	// Params carries the interactive context; other params are ignored.
	Params Params `json:"params"`
}

// Params is the params object of a predict request.
type Params struct {
	// Context is the interactive context; nil for batch predictions.
	Context *Context `json:"context"`
}

// Task is one Label Studio task. Only the fields the backend uses are
// decoded; drafts, annotations and predictions are skipped.
type Task struct {
	// ID is the task id; cloud storage URIs are resolved through it.
	ID int64 `json:"id"`
	// Data maps data keys (the Image tag's value without "$") to values.
	Data map[string]json.RawMessage `json:"data"`
}

// Tasks is a list of tasks that also decodes from a single task object.
type Tasks []Task

// UnmarshalJSON accepts a list of tasks or one task.
func (t *Tasks) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' {
		var one Task
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*t = Tasks{one}
		return nil
	}
	var many []Task
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*t = many
	return nil
}

// ProjectField is the raw "project" of a request: a string such as
// "12.1700000000" or "12", or a number. It keeps the text as sent.
type ProjectField string

// UnmarshalJSON accepts a JSON string, a number or null.
func (p *ProjectField) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*p = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*p = ProjectField(s)
	default:
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("project must be a string or a number")
		}
		*p = ProjectField(n.String())
	}
	return nil
}

// Context is the interactive context Label Studio sends with a click or a
// drawn box: the smart regions the annotator made.
type Context struct {
	// Result lists the regions, oldest first.
	Result Regions `json:"result"`
}

// Regions are a context's regions. Decoding stops at MaxRegions + 1, so
// that a body of a million regions is refused before it takes a
// gigabyte.
type Regions []ContextRegion

// UnmarshalJSON decodes a list of regions, one at a time, or null.
func (rs *Regions) UnmarshalJSON(b []byte) error {
	if string(bytes.TrimSpace(b)) == "null" {
		*rs = nil
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return errors.New("context.result must be a list")
	}
	out := Regions{}
	for dec.More() {
		if len(out) == MaxRegions {
			return fmt.Errorf("context has more than %d regions; at most %d are supported", MaxRegions, MaxRegions)
		}
		var r ContextRegion
		if err := dec.Decode(&r); err != nil {
			return fmt.Errorf("context.result[%d]: %w", len(out), err)
		}
		out = append(out, r)
	}
	*rs = out
	return nil
}

// ContextRegion is one smart KeyPointLabels or RectangleLabels region.
type ContextRegion struct {
	// OriginalWidth and OriginalHeight are the image's natural size as the
	// editor saw it.
	OriginalWidth  *float64 `json:"original_width"`
	OriginalHeight *float64 `json:"original_height"`
	// Type is "keypointlabels", "rectanglelabels" or another region type.
	Type string `json:"type"`
	// IsPositive marks a positive point; missing means negative.
	IsPositive Flag `json:"is_positive"`
	// Value holds the geometry, in percent of the image size, and the
	// labels under the key named by Type.
	Value json.RawMessage `json:"value"`
}

// Flag is a boolean that also decodes from a number (Python's int(x)).
type Flag bool

// UnmarshalJSON accepts true, false, null and numbers; a number is true when
// its integer part is not zero, as Python's int(x) has it.
func (f *Flag) UnmarshalJSON(b []byte) error {
	switch s := string(bytes.TrimSpace(b)); s {
	case "true":
		*f = true
	case "false", "null":
		*f = false
	default:
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("is_positive must be a boolean or a number")
		}
		*f = math.Trunc(v) != 0
	}
	return nil
}

// PredictResponse is the body of a successful POST /predict.
type PredictResponse struct {
	// Results has one prediction per task, or none.
	Results []Prediction `json:"results"`
}

// Prediction is the prediction for one task. Fields are declared in sorted
// order so the JSON matches the reference server's byte for byte.
type Prediction struct {
	// ModelVersion names the model that made the prediction.
	ModelVersion string `json:"model_version"`
	// Result holds the regions.
	Result []Region `json:"result"`
	// Score is the mean of the regions' scores.
	Score float64 `json:"score"`
}

// Region is one brush region, with exactly the reference's fields, in
// sorted order.
type Region struct {
	// FromName is the BrushLabels control's name.
	FromName string `json:"from_name"`
	// ID is a 4-character region id.
	ID string `json:"id"`
	// ImageRotation is always 0.
	ImageRotation int `json:"image_rotation"`
	// OriginalHeight is the image height taken from the context.
	OriginalHeight int `json:"original_height"`
	// OriginalWidth is the image width taken from the context.
	OriginalWidth int `json:"original_width"`
	// Readonly is always false.
	Readonly bool `json:"readonly"`
	// Score is the model's predicted IoU.
	Score float64 `json:"score"`
	// ToName is the Image object's name.
	ToName string `json:"to_name"`
	// Type is always "brushlabels".
	Type string `json:"type"`
	// Value holds the mask.
	Value BrushValue `json:"value"`
}

// BrushValue is the value of a brush region.
type BrushValue struct {
	// BrushLabels holds the one label copied from the context.
	BrushLabels []string `json:"brushlabels"`
	// Format is always "rle".
	Format string `json:"format"`
	// RLE is the mask in Label Studio's brush RLE.
	RLE RLE `json:"rle"`
}

// RLE is brush RLE bytes. It encodes to JSON as an array of integers, not as
// base64, because that is what the editor reads.
type RLE []byte

// MarshalJSON writes the bytes as a JSON array of numbers.
func (r RLE) MarshalJSON() ([]byte, error) {
	if r == nil {
		return []byte("[]"), nil
	}
	out := make([]byte, 0, 2+4*len(r))
	out = append(out, '[')
	for i, b := range r {
		if i > 0 {
			out = append(out, ',')
		}
		out = strconv.AppendUint(out, uint64(b), 10)
	}
	return append(out, ']'), nil
}

// UnmarshalJSON reads a JSON array of numbers from 0 to 255.
func (r *RLE) UnmarshalJSON(b []byte) error {
	var ints []int
	if err := json.Unmarshal(b, &ints); err != nil {
		return err
	}
	out := make(RLE, len(ints))
	for i, v := range ints {
		if v < 0 || v > 255 {
			return fmt.Errorf("rle[%d] = %d is not a byte", i, v)
		}
		out[i] = byte(v)
	}
	*r = out
	return nil
}

// SetupRequest is the body of POST /setup. Every field is a hint only.
type SetupRequest struct {
	// Project is the project reference.
	Project ProjectField `json:"project"`
	// Schema is the label config.
	Schema string `json:"schema"`
	// Hostname is Label Studio's idea of its own URL.
	Hostname string `json:"hostname"`
	// AccessToken is the project creator's legacy token. It is never used
	// nor logged.
	AccessToken string `json:"access_token"`
	// ExtraParams are the ML backend's extra params.
	ExtraParams json.RawMessage `json:"extra_params"`
}

// SetupResponse is the body of a successful POST /setup.
type SetupResponse struct {
	// ModelVersion is the version predictions will carry.
	ModelVersion string `json:"model_version"`
}

// WebhookEvent is the part of a webhook body the backend reads.
type WebhookEvent struct {
	// Action is the event name, such as "ANNOTATION_CREATED".
	Action *string `json:"action"`
}

// IsTrainEvent reports whether action is one the reference server trains
// on, and so answers 201.
func IsTrainEvent(action string) bool {
	switch action {
	case "ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATION_DELETED", "START_TRAINING":
		return true
	}
	return false
}
