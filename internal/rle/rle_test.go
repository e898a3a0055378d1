package rle_test

import (
	"bytes"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/sam-ml-backend/sam-ml-backend/internal/rle"
)

// TestVectors checks the encoder byte for byte, and the decoder, against the
// vectors produced by Label Studio's Python SDK (mask2rle).
func TestVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			mask := v.mask(t)
			want := v.rleBytes()

			if got := rle.Encode(mask); !bytes.Equal(got, want) {
				t.Errorf("Encode = %v, want %v", got, want)
			}
			if got := refEncode(expand(mask)); !bytes.Equal(got, want) {
				t.Errorf("refEncode = %v, want %v (the test oracle disagrees with the vector)", got, want)
			}

			words, err := rle.Decode(want, v.NumWords)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(words) != v.NumWords {
				t.Errorf("Decode returned %d words, want %d", len(words), v.NumWords)
			}
			if !bytes.Equal(words, expand(mask)) {
				t.Errorf("Decode = %v, want the mask expanded to RGBA", summarize(words))
			}
		})
	}
}

// TestEncodeRuns pins the chunk layout at every size-class boundary. Mask
// runs are counted in pixels, so runs are 4 words per pixel.
func TestEncodeRuns(t *testing.T) {
	const class3 = 1 << 16 // words in a full class-3 chunk
	tests := []struct {
		name string
		mask []byte
		want func(s *bitString)
	}{
		{
			name: "empty mask",
			mask: nil,
			want: func(s *bitString) {},
		},
		{
			name: "1 pixel",
			mask: []byte{255},
			want: func(s *bitString) { s.repeat(0, 4, 255) },
		},
		{
			name: "2 pixels, 8 words, largest class 0",
			mask: px(2, 0),
			want: func(s *bitString) { s.repeat(0, 8, 0) },
		},
		{
			name: "3 pixels, 12 words, class 1",
			mask: px(3, 7),
			want: func(s *bitString) { s.repeat(1, 12, 7) },
		},
		{
			name: "4 pixels, 16 words, largest class 1",
			mask: px(4, 255),
			want: func(s *bitString) { s.repeat(1, 16, 255) },
		},
		{
			name: "5 pixels, 20 words, class 2",
			mask: px(5, 255),
			want: func(s *bitString) { s.repeat(2, 20, 255) },
		},
		{
			name: "64 pixels, 256 words, largest class 2",
			mask: px(64, 1),
			want: func(s *bitString) { s.repeat(2, 256, 1) },
		},
		{
			name: "65 pixels, 260 words, class 3",
			mask: px(65, 0),
			want: func(s *bitString) { s.repeat(3, 260, 0) },
		},
		{
			name: "16384 pixels, 65536 words, one full class-3 chunk",
			mask: px(16384, 0),
			want: func(s *bitString) { s.repeat(3, class3, 0) },
		},
		{
			name: "16385 pixels, 65540 words, full chunk then a class-3 chunk of 4",
			mask: px(16385, 0),
			want: func(s *bitString) { s.repeat(3, class3, 0).repeat(3, 4, 0) },
		},
		{
			name: "32768 pixels, 131072 words, two full chunks",
			mask: px(32768, 255),
			want: func(s *bitString) { s.repeat(3, class3, 255).repeat(3, class3, 255) },
		},
		{
			name: "32769 pixels, 131076 words, two full chunks and 4",
			mask: px(32769, 255),
			want: func(s *bitString) {
				s.repeat(3, class3, 255).repeat(3, class3, 255).repeat(3, 4, 255)
			},
		},
		{
			name: "runs of every class in a row",
			mask: cat(px(1, 0), px(3, 255), px(64, 0), px(16385, 255), px(2, 9)),
			want: func(s *bitString) {
				s.repeat(0, 4, 0).repeat(1, 12, 255).repeat(2, 256, 0).
					repeat(3, class3, 255).repeat(3, 4, 255).repeat(0, 8, 9)
			},
		},
		{
			name: "alternating values, every pixel its own run",
			mask: []byte{0, 1, 0, 1, 2},
			want: func(s *bitString) {
				s.repeat(0, 4, 0).repeat(0, 4, 1).repeat(0, 4, 0).repeat(0, 4, 1).repeat(0, 4, 2)
			},
		},
		{
			name: "run ending exactly at 8-byte scan boundaries",
			mask: cat(px(8, 3), px(32, 4), px(33, 5), px(7, 6)),
			want: func(s *bitString) {
				s.repeat(2, 32, 3).repeat(2, 128, 4).repeat(2, 132, 5).repeat(2, 28, 6)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s bitString
			s.header(4 * uint64(len(tt.mask)))
			tt.want(&s)
			want := s.pythonBytes()

			got := rle.Encode(tt.mask)
			if !bytes.Equal(got, want) {
				t.Errorf("Encode = %v, want %v", head(got), head(want))
			}
			if cap(got) != len(got) {
				t.Errorf("Encode returned cap %d, want %d (the exact size)", cap(got), len(got))
			}
			if ref := refEncode(expand(tt.mask)); !bytes.Equal(ref, want) {
				t.Errorf("refEncode = %v, want %v (the test oracle disagrees)", head(ref), head(want))
			}
			words, err := rle.Decode(got, 4*len(tt.mask))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !bytes.Equal(words, expand(tt.mask)) {
				t.Errorf("Decode = %v, want %v", summarize(words), summarize(expand(tt.mask)))
			}
		})
	}
}

// TestEncodePadding checks the Python padding quirk: 1 to 8 zero bits, so a
// byte-aligned stream gets a whole extra zero byte.
func TestEncodePadding(t *testing.T) {
	tests := []struct {
		name        string
		mask        []byte
		payloadBits int
		wantLen     int
	}{
		// 53 header bits + 14 = 67: 5 padding bits.
		{name: "67 bits", mask: []byte{1}, payloadBits: 67, wantLen: 9},
		// 53 + 19 + 4*14 = 128: aligned, so a whole zero byte follows.
		{name: "128 bits, aligned", mask: cat(px(5, 1), []byte{0, 1, 0, 1}), payloadBits: 128, wantLen: 17},
		// 53 + 14*3 = 95: 1 padding bit.
		{name: "95 bits", mask: []byte{255, 0, 255}, payloadBits: 95, wantLen: 12},
		// 53 + 27 = 80: aligned.
		{name: "80 bits, aligned", mask: px(65, 0), payloadBits: 80, wantLen: 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rle.Encode(tt.mask)
			if len(got) != tt.wantLen {
				t.Errorf("len(Encode) = %d, want %d (%d payload bits + %d padding)",
					len(got), tt.wantLen, tt.payloadBits, 8-tt.payloadBits%8)
			}
			if last := got[len(got)-1]; tt.payloadBits%8 == 0 && last != 0 {
				t.Errorf("last byte = %#x, want 0 (the extra alignment byte)", last)
			}
		})
	}
}

// TestAppendEncode checks that AppendEncode keeps dst's contents and agrees
// with Encode.
func TestAppendEncode(t *testing.T) {
	mask := disc(64, 48)
	prefix := []byte("prefix")
	dst := append([]byte(nil), prefix...)
	got := rle.AppendEncode(dst, mask)
	if !bytes.HasPrefix(got, prefix) {
		t.Fatalf("AppendEncode lost the prefix: got %q", head(got))
	}
	if want := rle.Encode(mask); !bytes.Equal(got[len(prefix):], want) {
		t.Errorf("AppendEncode appended %v, want %v", head(got[len(prefix):]), head(want))
	}
}

// TestEncodeMatchesReference compares Encode with the Python model on
// random masks of many shapes, including any byte values.
func TestEncodeMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name   string
		n      int
		maxRun int
		values []byte
	}{
		{name: "binary noise", n: 4096, maxRun: 1, values: []byte{0, 255}},
		{name: "short runs", n: 10000, maxRun: 70, values: []byte{0, 255}},
		{name: "long runs", n: 200000, maxRun: 40000, values: []byte{0, 255}},
		{name: "any byte", n: 10000, maxRun: 20, values: allBytes()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mask := randomMask(rng, tt.n, tt.maxRun, tt.values)
			got := rle.Encode(mask)
			if want := refEncode(expand(mask)); !bytes.Equal(got, want) {
				t.Errorf("Encode = %v, want %v", head(got), head(want))
			}
		})
	}
}

// TestDecodeStreams decodes streams Encode never writes but the editor's
// decoder reads, checked against the thi.ng model.
func TestDecodeStreams(t *testing.T) {
	for _, tt := range decodeCases() {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rle.Decode(tt.data, tt.maxWords)
			want, wantErr := refDecode(tt.data, tt.maxWords)
			if wantErr != nil {
				t.Fatalf("bad case: refDecode: %v", wantErr)
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Decode = %v, want %v", summarize(got), summarize(want))
			}
			if tt.want != nil && !bytes.Equal(got, tt.want) {
				t.Errorf("Decode = %v, want %v", got, tt.want)
			}
		})
	}
}

// decodeCase is a stream for Decode together with the words it holds (want
// is nil where only the thi.ng model says what they are).
type decodeCase struct {
	name     string
	data     []byte
	maxWords int
	want     []byte
}

// decodeCases returns valid streams covering what the thi.ng decoder
// accepts; the node test runs them through @thi.ng/rle-pack too.
func decodeCases() []decodeCase {
	words := func(n int, v byte) []byte { return bytes.Repeat([]byte{v}, n) }
	var cases []decodeCase
	// Word runs at every class boundary, and lone words (literal chunks),
	// as encode_rle writes them for any word array.
	for _, n := range []int{1, 2, 8, 9, 16, 17, 256, 257, 65536, 65537, 131072, 131073} {
		w := cat(words(n, 255), []byte{1}, words(n, 0))
		cases = append(cases, decodeCase{
			name:     "encode_rle runs of " + itoa(n) + " words",
			data:     refEncode(w),
			maxWords: len(w),
			want:     w,
		})
	}

	var s bitString
	s.header(6).add(0, 1).add(0, 2).add(5, 3) // a literal chunk of 6 words
	for _, v := range []uint64{1, 2, 3, 250, 0, 9} {
		s.add(v, 8)
	}
	cases = append(cases, decodeCase{
		name: "multi-word literal chunk, thi.ng encoder style", data: s.thingBytes(),
		maxWords: 6, want: []byte{1, 2, 3, 250, 0, 9},
	})

	s = bitString{}
	s.header(10).repeat(0, 4, 7).repeat(1, 16, 8) // 20 words for a count of 10
	cases = append(cases, decodeCase{
		name: "repeat past the word count is cut", data: s.thingBytes(),
		maxWords: 10, want: []byte{7, 7, 7, 7, 8, 8, 8, 8, 8, 8},
	})

	s = bitString{}
	s.header(3).add(0, 1).add(0, 2).add(4, 3) // literal of 5 words for a count of 3
	for _, v := range []uint64{4, 5, 6, 7, 8} {
		s.add(v, 8)
	}
	cases = append(cases, decodeCase{
		name: "literal past the word count reads and drops the rest", data: s.thingBytes(),
		maxWords: 3, want: []byte{4, 5, 6},
	})

	s = bitString{}
	s.header(0)
	cases = append(cases, decodeCase{name: "zero words, no padding", data: s.thingBytes(), maxWords: 0, want: []byte{}})

	s = bitString{}
	s.header(4).repeat(0, 4, 255).add(0xdead, 16)
	cases = append(cases, decodeCase{
		name: "trailing bytes are ignored", data: s.thingBytes(), maxWords: 4, want: words(4, 255),
	})

	// Word size 1 and repeat sizes 1, 2, 5, 12: a header Label Studio never
	// writes but decodeBinary reads.
	s = bitString{}
	s.add(9, 32).add(0, 5).add(0, 4).add(1, 4).add(4, 4).add(11, 4)
	s.add(1, 1).add(0, 2).add(1, 1).add(1, 1)     // 2 × 1 (class 0, 1 bit)
	s.add(0, 1).add(1, 2).add(2, 2).add(0b010, 3) // literal 0 1 0 (class 1, 2 bits)
	s.add(1, 1).add(3, 2).add(3, 12).add(0, 1)    // 4 × 0 (class 3, 12 bits)
	cases = append(cases, decodeCase{
		name: "word size 1 and other repeat sizes", data: s.thingBytes(),
		maxWords: 9, want: []byte{1, 1, 0, 1, 0, 0, 0, 0, 0},
	})
	return cases
}

// TestDecodeErrors checks that Decode refuses malformed streams, naming the
// cause, and agrees with the thi.ng model on which streams fail.
func TestDecodeErrors(t *testing.T) {
	valid := rle.Encode(disc(40, 30))
	var hostile bitString
	hostile.header(0xFFFFFFFF).repeat(3, 1<<16, 255)
	var wide bitString
	wide.add(1, 32).add(15, 5).add(2, 4).add(3, 4).add(7, 4).add(15, 4).add(1, 1).add(0, 2).add(0, 3).add(300, 16)
	var shortBody bitString
	shortBody.header(8).repeat(0, 4, 255)

	tests := []struct {
		name     string
		data     []byte
		maxWords int
		wantErr  string
	}{
		{name: "nil", data: nil, maxWords: 100, wantErr: "shorter than the 53-bit header"},
		{name: "4-byte count only", data: []byte{0, 0, 0, 4}, maxWords: 100, wantErr: "shorter than the 53-bit header"},
		{name: "6 bytes", data: valid[:6], maxWords: 1 << 20, wantErr: "shorter than the 53-bit header"},
		{name: "count over the limit", data: valid, maxWords: 40*30*4 - 1, wantErr: "more than the limit of 4799"},
		{name: "negative limit", data: valid, maxWords: -1, wantErr: "more than the limit of 0"},
		{name: "hostile count", data: hostile.thingBytes(), maxWords: 1 << 62, wantErr: "cannot hold 4294967295 words"},
		{name: "word size 16", data: wide.thingBytes(), maxWords: 10, wantErr: "word size of 16 bits"},
		{name: "body cut", data: valid[:len(valid)-4], maxWords: 1 << 20, wantErr: "truncated"},
		{name: "body missing a chunk", data: shortBody.thingBytes(), maxWords: 8, wantErr: "truncated"},
		{name: "header only", data: valid[:7], maxWords: 1 << 20, wantErr: "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rle.Decode(tt.data, tt.maxWords)
			if err == nil {
				t.Fatalf("Decode = %v, want an error containing %q", summarize(got), tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Decode error = %q, want it to contain %q", err, tt.wantErr)
			}
			if got != nil {
				t.Errorf("Decode returned %d words with its error, want nil", len(got))
			}
			if _, refErr := refDecode(tt.data, tt.maxWords); refErr == nil {
				t.Errorf("refDecode accepted the stream, want an error like Decode's")
			}
		})
	}
}

// TestDecodeTruncatedEverywhere cuts a valid stream at every byte and checks
// that each prefix that cannot hold the chunks is refused.
func TestDecodeTruncatedEverywhere(t *testing.T) {
	mask := randomMask(rand.New(rand.NewPCG(3, 4)), 500, 30, []byte{0, 255, 9})
	data := rle.Encode(mask)
	// The last byte is padding, and with it the one before may be too.
	for n := range len(data) - 2 {
		got, err := rle.Decode(data[:n], 4*len(mask))
		_, refErr := refDecode(data[:n], 4*len(mask))
		if (err == nil) != (refErr == nil) {
			t.Errorf("Decode(data[:%d]) error = %v, want one exactly when refDecode fails (%v)", n, err, refErr)
		}
		if err == nil && !bytes.Equal(got, expand(mask)) {
			t.Errorf("Decode(data[:%d]) = %v, want the mask", n, summarize(got))
		}
	}
}

// TestDecodeHostileHeaderAllocatesNothing checks that a short stream claiming
// billions of words is refused before the output is allocated, even with a
// limit that would allow it.
func TestDecodeHostileHeaderAllocatesNothing(t *testing.T) {
	var s bitString
	s.header(0xFFFFFFFF).repeat(3, 1<<16, 255).repeat(3, 1<<16, 0)
	data := s.thingBytes()

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := rle.Decode(data, 1<<40)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("Decode accepted a 4294967295-word header on a 14-byte stream")
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<16 {
		t.Errorf("Decode allocated %d bytes for a hostile header, want at most 64 KiB", got)
	}
}

func px(n int, v byte) []byte { return bytes.Repeat([]byte{v}, n) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func itoa(n int) string { return strconv.Itoa(n) }

func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// head shortens long byte slices in failure messages.
func head(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// run is a run of equal words.
type run struct {
	Value byte
	Count int
}

// runs returns the runs of words.
func runs(words []byte) []run {
	var rs []run
	for i := 0; i < len(words); {
		j := i
		for j < len(words) && words[j] == words[i] {
			j++
		}
		rs = append(rs, run{words[i], j - i})
		i = j
	}
	return rs
}

// summarize describes words for failure messages: length and first runs.
func summarize(words []byte) string {
	rs := runs(words)
	var b strings.Builder
	b.WriteString(itoa(len(words)) + " words:")
	for k, r := range rs {
		if k == 8 {
			b.WriteString(" ...")
			break
		}
		b.WriteString(" " + itoa(r.Count) + "×" + itoa(int(r.Value)))
	}
	return b.String()
}
