package rle_test

import (
	"bytes"
	"testing"

	"github.com/sam-ml-backend/sam-ml-backend/internal/rle"
)

// FuzzRoundTrip checks, for any mask, that Encode matches the model of the
// Python encoder byte for byte and that Decode gives back the mask with every
// pixel repeated four times.
func FuzzRoundTrip(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add(v.mask(f))
	}
	f.Add([]byte{})
	f.Add(px(300, 0))
	f.Add(cat(px(1, 0), px(3, 255), px(64, 0), px(70, 255), px(2, 9)))
	f.Add(disc(32, 24))
	f.Fuzz(func(t *testing.T, mask []byte) {
		got := rle.Encode(mask)
		if want := refEncode(expand(mask)); !bytes.Equal(got, want) {
			t.Fatalf("Encode = %v, want %v", head(got), head(want))
		}
		if cap(got) != len(got) {
			t.Errorf("Encode returned cap %d, want %d", cap(got), len(got))
		}
		words, err := rle.Decode(got, 4*len(mask))
		if err != nil {
			t.Fatalf("Decode(Encode(mask)): %v", err)
		}
		if want := expand(mask); !bytes.Equal(words, want) {
			t.Fatalf("Decode(Encode(mask)) = %v, want %v", summarize(words), summarize(want))
		}
	})
}

// FuzzDecode feeds Decode arbitrary bytes. It must not panic, must keep to
// its word limit, and must agree with the bit-by-bit model of thi.ng's
// decodeBinary on which streams fail and what the others hold.
func FuzzDecode(f *testing.F) {
	const maxWords = 1 << 18
	for _, v := range loadVectors(f) {
		data := v.rleBytes()
		f.Add(data)
		f.Add(data[:len(data)/2])
	}
	for _, c := range decodeCases() {
		if len(c.data) < 4096 {
			f.Add(c.data)
		}
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 57, 27, 255, 255, 255, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := rle.Decode(data, maxWords)
		if len(got) > maxWords {
			t.Fatalf("Decode returned %d words, more than the limit of %d", len(got), maxWords)
		}
		want, refErr := refDecode(data, maxWords)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("Decode error = %v, refDecode error = %v; want both nil or both set", err, refErr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("Decode = %v, want %v", summarize(got), summarize(want))
		}
	})
}
