package imagefetch

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
	"golang.org/x/image/webp"
)

// format is an image container format recognised by its magic bytes.
type format int

const (
	formatUnknown format = iota
	formatJPEG
	formatPNG
	formatGIF
	formatBMP
	formatTIFF
	formatWebP
)

func (f format) String() string {
	switch f {
	case formatJPEG:
		return "JPEG"
	case formatPNG:
		return "PNG"
	case formatGIF:
		return "GIF"
	case formatBMP:
		return "BMP"
	case formatTIFF:
		return "TIFF"
	case formatWebP:
		return "WebP"
	}
	return "unknown"
}

// codec is the pair of functions that read one format.
type codec struct {
	decode       func(io.Reader) (image.Image, error)
	decodeConfig func(io.Reader) (image.Config, error)
}

func (f format) codec() codec {
	switch f {
	case formatJPEG:
		return codec{jpeg.Decode, jpeg.DecodeConfig}
	case formatPNG:
		return codec{png.Decode, png.DecodeConfig}
	case formatGIF:
		return codec{gif.Decode, gif.DecodeConfig}
	case formatBMP:
		return codec{bmp.Decode, bmp.DecodeConfig}
	case formatTIFF:
		return codec{tiff.Decode, tiff.DecodeConfig}
	case formatWebP:
		return codec{webp.Decode, webp.DecodeConfig}
	}
	return codec{}
}

// sniff recognises the format of data from its first bytes.
func sniff(data []byte) format {
	switch {
	case len(data) >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF:
		return formatJPEG
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return formatPNG
	case bytes.HasPrefix(data, []byte("GIF87a")) || bytes.HasPrefix(data, []byte("GIF89a")):
		return formatGIF
	case bytes.HasPrefix(data, []byte("BM")) && len(data) >= 18:
		return formatBMP
	case bytes.HasPrefix(data, []byte("II*\x00")) || bytes.HasPrefix(data, []byte("MM\x00*")):
		return formatTIFF
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return formatWebP
	}
	return formatUnknown
}

// describe names what a body that is not a supported image looks like, for
// an error message. It never quotes the body.
func describe(data []byte) string {
	if len(data) == 0 {
		return "an empty body"
	}
	head := data[:min(len(data), 512)]
	if len(head) >= 12 && string(head[4:8]) == "ftyp" {
		switch string(head[8:12]) {
		case "avif", "avis":
			return "an AVIF image (not supported)"
		case "heic", "heix", "mif1", "msf1", "hevc":
			return "a HEIC image (not supported)"
		}
		return "an ISO media file"
	}
	t := strings.ToLower(strings.TrimSpace(string(bytes.TrimPrefix(head, []byte("\xef\xbb\xbf")))))
	switch {
	case strings.HasPrefix(t, "<!doctype html") || strings.HasPrefix(t, "<html") || strings.Contains(t, "<head") || strings.Contains(t, "<body"):
		return "an HTML page"
	case strings.HasPrefix(t, "<svg") || strings.HasPrefix(t, "<?xml") && strings.Contains(t, "<svg"):
		return "an SVG image (not supported)"
	case strings.HasPrefix(t, "<?xml"):
		return "an XML document"
	case strings.HasPrefix(t, "{") || strings.HasPrefix(t, "["):
		return "JSON"
	case bytes.HasPrefix(head, []byte("%PDF")):
		return "a PDF document"
	case utf8.Valid(head) && !bytes.ContainsAny(head, "\x00"):
		return "text"
	}
	return "unrecognised binary data"
}

// decode decodes data, after checking that its pixel count is within
// maxPixels, and applies its EXIF orientation. what names the image in
// errors; contentType is the HTTP Content-Type, "" for a local file.
func decode(data []byte, maxPixels int64, what, contentType string) (image.Image, error) {
	f := sniff(data)
	if f == formatUnknown {
		kind := describe(data)
		if contentType == "" {
			return nil, &Error{Status: http.StatusUnprocessableEntity, Msg: fmt.Sprintf("%s is not a supported image: it is %s", what, kind)}
		}
		return nil, &Error{Status: http.StatusUnprocessableEntity, Msg: fmt.Sprintf("%s is not a supported image: got Content-Type %q and %s", what, contentType, kind)}
	}
	c := f.codec()
	cfg, err := c.decodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, &Error{Status: http.StatusUnprocessableEntity, Msg: fmt.Sprintf("%s: read %s header", what, f), Err: err}
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, &Error{Status: http.StatusUnprocessableEntity, Msg: fmt.Sprintf("%s: %s image has no pixels (%d×%d)", what, f, cfg.Width, cfg.Height)}
	}
	if n := int64(cfg.Width) * int64(cfg.Height); n > maxPixels {
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("%s: image is %d×%d = %d pixels, over the limit of %d (MAX_IMAGE_PIXELS)", what, cfg.Width, cfg.Height, n, maxPixels)}
	} else if wide(cfg.ColorModel) && n > maxPixels/2 {
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("%s: image is %d×%d = %d pixels of 16 bits a channel, which count twice, over the limit of %d (MAX_IMAGE_PIXELS)", what, cfg.Width, cfg.Height, n, maxPixels)}
	}
	img, err := c.decode(bytes.NewReader(data))
	if err != nil {
		return nil, &Error{Status: http.StatusUnprocessableEntity, Msg: fmt.Sprintf("%s: decode %s image", what, f), Err: err}
	}
	if f == formatGIF {
		img = gifCanvas(img, cfg)
	}
	return orient(img, orientation(f, data)), nil
}

// wide reports whether m decodes to 16 bits a channel: 8 bytes a pixel
// for colour, twice what the pixel limit assumes.
func wide(m color.Model) bool {
	return m == color.RGBA64Model || m == color.NRGBA64Model
}

// gifCanvas places a GIF's first frame on the logical screen that browsers
// show, when the frame is smaller than the screen.
func gifCanvas(img image.Image, cfg image.Config) image.Image {
	screen := image.Rect(0, 0, cfg.Width, cfg.Height)
	if img.Bounds() == screen {
		return img
	}
	dst := image.NewNRGBA(screen)
	draw.Draw(dst, img.Bounds().Intersect(screen), img, img.Bounds().Min, draw.Src)
	return dst
}
