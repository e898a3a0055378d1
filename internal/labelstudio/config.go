package labelstudio

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// BrushTarget is where a brush mask goes: the first BrushLabels control that
// points at an Image object, as the reference's
// get_first_tag_occurence('BrushLabels', 'Image') finds it.
type BrushTarget struct {
	// FromName is the BrushLabels control's name.
	FromName string
	// ToName is the Image object's name.
	ToName string
	// DataKey is the Image's value without its leading "$": the task data
	// key that holds the image URL.
	DataKey string
}

// UndefinedDataKey is the data key of tasks imported before the project had
// a label config; it stands for the config's data key.
const UndefinedDataKey = "$undefined$"

// maxConfigBytes bounds the label config the parser reads.
const maxConfigBytes = 1 << 20

type control struct {
	name    string
	toNames []string
}

// ParseBrushTarget finds the first BrushLabels→Image pair in a label config.
// Tag names are matched without regard to case, as Label Studio does.
func ParseBrushTarget(labelConfig string) (BrushTarget, error) {
	if strings.TrimSpace(labelConfig) == "" {
		return BrushTarget{}, errors.New("label_config is empty")
	}
	if len(labelConfig) > maxConfigBytes {
		return BrushTarget{}, fmt.Errorf("label_config is %d bytes, over the limit of %d", len(labelConfig), maxConfigBytes)
	}
	images := map[string]string{} // name → value
	var brushes []control
	d := xml.NewDecoder(strings.NewReader(labelConfig))
	d.Strict = false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return BrushTarget{}, fmt.Errorf("parse label_config: %w", clipXMLError(err))
		}
		el, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch strings.ToLower(el.Name.Local) {
		case "image":
			name, value := attr(el, "name"), attr(el, "value")
			if _, seen := images[name]; name != "" && !seen {
				images[name] = value
			}
		case "brushlabels":
			c := control{name: attr(el, "name")}
			for _, n := range strings.Split(attr(el, "toName"), ",") {
				if n = strings.TrimSpace(n); n != "" {
					c.toNames = append(c.toNames, n)
				}
			}
			brushes = append(brushes, c)
		}
	}
	for _, c := range brushes {
		for _, to := range c.toNames {
			value, ok := images[to]
			if !ok || c.name == "" {
				continue
			}
			key := strings.TrimPrefix(value, "$")
			if key == "" {
				return BrushTarget{}, fmt.Errorf("label_config: Image %q has no value such as \"$image\"", clip(to))
			}
			return BrushTarget{FromName: c.name, ToName: to, DataKey: key}, nil
		}
	}
	return BrushTarget{}, errors.New(`label_config has no BrushLabels control pointing at an Image (for example <BrushLabels name="tag" toName="image">)`)
}

// maxXMLErrorBytes bounds the text of an XML error in a message: the
// decoder's messages quote names and values of the input.
const maxXMLErrorBytes = 120

// clipXMLError returns err with its text clipped, keeping an
// *xml.SyntaxError one. Fuzzing found a config "<000…" whose whole name came
// back in the error.
func clipXMLError(err error) error {
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return &xml.SyntaxError{Msg: clipTo(se.Msg, maxXMLErrorBytes), Line: se.Line}
	}
	return errors.New(clipTo(err.Error(), maxXMLErrorBytes))
}

func attr(el xml.StartElement, name string) string {
	for _, a := range el.Attr {
		if strings.EqualFold(a.Name.Local, name) {
			return a.Value
		}
	}
	return ""
}

// ImageRef returns the task's image reference under key, falling back to the
// "$undefined$" key that Label Studio stands in for the config's data key.
func (t Task) ImageRef(key string) (string, error) {
	raw, ok := t.Data[key]
	if !ok {
		raw, ok = t.Data[UndefinedDataKey]
	}
	if !ok {
		return "", fmt.Errorf("task %d has no data.%s (the Image value in label_config)", t.ID, key)
	}
	var ref string
	if err := json.Unmarshal(raw, &ref); err != nil {
		return "", fmt.Errorf("task %d: data.%s must be a string URL", t.ID, key)
	}
	if ref == "" {
		return "", fmt.Errorf("task %d: data.%s is empty", t.ID, key)
	}
	return ref, nil
}
