package labelstudio

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// Point is a clicked point in original image pixels.
type Point struct {
	X, Y     int
	Positive bool
}

// Box is a drawn rectangle in original image pixels, corners (X0,Y0) and
// (X1,Y1).
type Box struct {
	X0, Y0, X1, Y1 int
}

// Interaction is what the annotator asked for: the prompt for SAM, the
// image size the editor saw, and the label to put on the mask.
type Interaction struct {
	// Width and Height come from the first region's original_width and
	// original_height.
	Width, Height int
	// Points are the keypoints, in order.
	Points []Point
	// Box is the last rectangle, or nil.
	Box *Box
	// Label is the first label of the last region.
	Label string
}

// ErrNoContext reports a request without an interactive context: the
// reference answers it with no results.
var ErrNoContext = errors.New("no interactive context")

// maxDimension bounds the image size a context may claim.
const maxDimension = 1 << 20

// MaxRegions bounds the regions of one context. SAM's decoder cost grows
// with the number of points; annotators make a handful.
const MaxRegions = 1000

// geometry is the part of a region's value the backend reads.
type geometry struct {
	X      *float64 `json:"x"`
	Y      *float64 `json:"y"`
	Width  *float64 `json:"width"`
	Height *float64 `json:"height"`
}

// ParseInteraction reads an interactive context exactly as the reference's
// predict does: the image size comes from the first region; percentages
// become pixels as int(v*size/100), truncated toward zero; a keypoint
// without is_positive is negative; the last rectangle wins; and the label
// is value[type][0] of the last region. A nil or empty context gives
// ErrNoContext. Any other problem is an error that names the region and
// the field.
func ParseInteraction(c *Context) (*Interaction, error) {
	if c == nil || len(c.Result) == 0 {
		return nil, ErrNoContext
	}
	first := c.Result[0]
	w, err := dimension(first.OriginalWidth, "original_width")
	if err != nil {
		return nil, err
	}
	h, err := dimension(first.OriginalHeight, "original_height")
	if err != nil {
		return nil, err
	}
	return ParseInteractionAt(c, w, h)
}

// ParseInteractionAt is ParseInteraction for an image of w×h pixels instead
// of the size the context states: the regions' percentages are taken of w
// and h. It serves when the image turns out to differ from what the editor
// saw.
func ParseInteractionAt(c *Context, w, h int) (*Interaction, error) {
	if c == nil || len(c.Result) == 0 {
		return nil, ErrNoContext
	}
	if len(c.Result) > MaxRegions {
		return nil, fmt.Errorf("context has %d regions; at most %d are supported", len(c.Result), MaxRegions)
	}
	in := &Interaction{Width: w, Height: h}
	fw, fh := float64(w), float64(h)
	for i, r := range c.Result {
		if len(r.Value) == 0 || r.Value[0] != '{' {
			return nil, fmt.Errorf("context.result[%d].value must be an object", i)
		}
		var g geometry
		if err := json.Unmarshal(r.Value, &g); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return nil, fmt.Errorf("context.result[%d].value.%s must be a number", i, te.Field)
			}
			return nil, fmt.Errorf("context.result[%d].value: %w", i, err)
		}
		label, err := firstLabel(r.Value, r.Type)
		if err != nil {
			return nil, fmt.Errorf("context.result[%d]: %w", i, err)
		}
		in.Label = label
		if r.Type != "keypointlabels" && r.Type != "rectanglelabels" {
			continue // other regions only give the label
		}
		x, err := percent(g.X, fw, i, "x")
		if err != nil {
			return nil, err
		}
		y, err := percent(g.Y, fh, i, "y")
		if err != nil {
			return nil, err
		}
		if r.Type == "keypointlabels" {
			in.Points = append(in.Points, Point{X: trunc(x), Y: trunc(y), Positive: bool(r.IsPositive)})
			continue
		}
		bw, err := percent(g.Width, fw, i, "width")
		if err != nil {
			return nil, err
		}
		bh, err := percent(g.Height, fh, i, "height")
		if err != nil {
			return nil, err
		}
		// The reference computes [int(x), int(y), int(w + x), int(h + y)].
		in.Box = &Box{X0: trunc(x), Y0: trunc(y), X1: trunc(bw + x), Y1: trunc(bh + y)}
	}
	return in, nil
}

func dimension(v *float64, name string) (int, error) {
	if v == nil {
		return 0, fmt.Errorf("context.result[0].%s is missing", name)
	}
	if math.IsNaN(*v) || *v < 1 || *v > maxDimension {
		return 0, fmt.Errorf("context.result[0].%s = %v is not an image size", name, *v)
	}
	return int(*v), nil
}

// percent converts a percentage of size to pixels as the reference does:
// v * size / 100, in that order, so the float result is bit-identical.
func percent(v *float64, size float64, i int, name string) (float64, error) {
	if v == nil {
		return 0, fmt.Errorf("context.result[%d].value.%s is missing", i, name)
	}
	if math.IsNaN(*v) || math.IsInf(*v, 0) || math.Abs(*v) > 1e6 {
		return 0, fmt.Errorf("context.result[%d].value.%s = %v is not a percentage", i, name, *v)
	}
	return *v * size / 100, nil
}

// trunc is Python's int() on a float: truncation toward zero.
func trunc(v float64) int { return int(v) }

// firstLabel returns value[typ][0], the way the reference picks the label.
func firstLabel(value json.RawMessage, typ string) (string, error) {
	if typ == "" {
		return "", errors.New("type is missing")
	}
	known := typ == "keypointlabels" || typ == "rectanglelabels"
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(value, &fields); err != nil {
		return "", fmt.Errorf("value: %w", err)
	}
	raw, ok := fields[typ]
	if !ok && !known {
		return "", fmt.Errorf("type %q is not keypointlabels or rectanglelabels, and value.%s, where the label would come from, is missing", clip(typ), clip(typ))
	}
	if !ok {
		return "", fmt.Errorf("value.%s is missing: the label comes from it", clip(typ))
	}
	var labels []string
	if err := json.Unmarshal(raw, &labels); err != nil {
		return "", fmt.Errorf("value.%s must be a list of label strings", clip(typ))
	}
	if len(labels) == 0 {
		return "", fmt.Errorf("value.%s is empty: the label comes from it", clip(typ))
	}
	return labels[0], nil
}
