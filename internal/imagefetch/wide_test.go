package imagefetch

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"net/http"
	"strings"
	"testing"
)

// TestSixteenBitImagesCountTwice: a 16-bit colour PNG decodes to 8 bytes a
// pixel, so it may have half the pixels an 8-bit one may.
func TestSixteenBitImagesCountTwice(t *testing.T) {
	enc := func(img image.Image) []byte {
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	r := image.Rect(0, 0, 30, 20) // 600 pixels
	if _, err := decode(enc(image.NewNRGBA(r)), 1000, "x.png", ""); err != nil {
		t.Errorf("8-bit, 600 pixels under a limit of 1000: %v", err)
	}
	_, err := decode(enc(image.NewNRGBA64(r)), 1000, "x.png", "")
	var fe *Error
	if !errors.As(err, &fe) || fe.Status != http.StatusRequestEntityTooLarge || !strings.Contains(fe.Msg, "16 bits a channel, which count twice") {
		t.Errorf("16-bit, 600 pixels under a limit of 1000: %v; want a 413", err)
	}
	if _, err := decode(enc(image.NewNRGBA64(r)), 1200, "x.png", ""); err != nil {
		t.Errorf("16-bit, 600 pixels under a limit of 1200: %v", err)
	}
}
