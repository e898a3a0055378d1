package rle_test

// Slow, obviously-correct models of the two reference implementations, used
// as oracles by the table and fuzz tests. They work on strings of '0' and '1'
// the way the Python SDK does, sharing no code with the package.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// bitString builds a stream bit by bit, most significant first.
type bitString struct{ strings.Builder }

// add appends v as a width-bit binary number.
func (s *bitString) add(v uint64, width int) *bitString {
	if width < 64 && v>>width != 0 {
		panic(fmt.Sprintf("value %d does not fit %d bits", v, width))
	}
	b := strconv.FormatUint(v, 2)
	s.WriteString(strings.Repeat("0", width-len(b)))
	s.WriteString(b)
	return s
}

// header appends the header encode_rle writes: num, word size 8, repeat
// sizes 3, 4, 8, 16.
func (s *bitString) header(num uint64) *bitString {
	return s.add(num, 32).add(7, 5).add(2, 4).add(3, 4).add(7, 4).add(15, 4)
}

// repeat appends a repeat chunk of n words of v in size class c.
func (s *bitString) repeat(c int, n uint64, v byte) *bitString {
	sizes := [4]int{3, 4, 8, 16}
	return s.add(1, 1).add(uint64(c), 2).add(n-1, sizes[c]).add(uint64(v), 8)
}

// pythonBytes pads like encode_rle (8 - len%8 zero bits, 1 to 8) and packs
// the bits into bytes.
func (s *bitString) pythonBytes() []byte {
	str := s.String() + strings.Repeat("0", 8-s.Len()%8)
	return pack(str)
}

// thingBytes pads like thi.ng's BitOutputStream (to the next byte only).
func (s *bitString) thingBytes() []byte {
	str := s.String()
	if r := len(str) % 8; r != 0 {
		str += strings.Repeat("0", 8-r)
	}
	return pack(str)
}

func pack(str string) []byte {
	out := make([]byte, len(str)/8)
	for i := range out {
		v, err := strconv.ParseUint(str[i*8:i*8+8], 2, 8)
		if err != nil {
			panic(err)
		}
		out[i] = byte(v)
	}
	return out
}

// refEncode is label_studio_sdk.converter.brush.encode_rle with its defaults,
// for any array of byte words (lone words become 1-word literal chunks).
func refEncode(words []byte) []byte {
	var s bitString
	s.header(uint64(len(words)))
	for i := 0; i < len(words); {
		j := i
		for j < len(words) && words[j] == words[i] {
			j++
		}
		n, v := uint64(j-i), words[i]
		switch {
		case n == 1:
			s.add(0, 1).add(0, 2).add(0, 3).add(uint64(v), 8)
		case n <= 8:
			s.repeat(0, n, v)
		case n <= 16:
			s.repeat(1, n, v)
		case n <= 256:
			s.repeat(2, n, v)
		default:
			for n > 1<<16 {
				s.repeat(3, 1<<16, v)
				n -= 1 << 16
			}
			s.repeat(3, n, v)
		}
		i = j
	}
	return s.pythonBytes()
}

// errRefTruncated, errRefTooMany and errRefWordSize are refDecode's causes.
var (
	errRefTruncated = errors.New("truncated")
	errRefTooMany   = errors.New("too many words")
	errRefWordSize  = errors.New("word size over 8")
)

// refDecode is thi.ng's decodeBinary read bit by bit, with the limits Decode
// documents: at most maxWords words and words of at most 8 bits.
func refDecode(data []byte, maxWords int) ([]byte, error) {
	pos := 0
	read := func(n int) (uint64, error) {
		var v uint64
		for range n {
			if pos >= len(data)*8 {
				return 0, errRefTruncated
			}
			v = v<<1 | uint64(data[pos/8]>>(7-pos%8)&1)
			pos++
		}
		return v, nil
	}
	must := func(n int) uint64 {
		v, err := read(n)
		if err != nil {
			panic(err)
		}
		return v
	}
	if len(data)*8 < 53 {
		return nil, errRefTruncated
	}
	num := must(32)
	ws := int(must(5)) + 1
	var sizes [4]int
	for k := range sizes {
		sizes[k] = int(must(4)) + 1
	}
	if num > uint64(max(maxWords, 0)) {
		return nil, errRefTooMany
	}
	if ws > 8 {
		return nil, errRefWordSize
	}
	out := make([]byte, num)
	for i := uint64(0); i < num; {
		x, err := read(1)
		if err != nil {
			return nil, err
		}
		c, err := read(2)
		if err != nil {
			return nil, err
		}
		n, err := read(sizes[c])
		if err != nil {
			return nil, err
		}
		j := i + 1 + n
		if x == 1 {
			v, err := read(ws)
			if err != nil {
				return nil, err
			}
			for ; i < j; i++ {
				if i < num {
					out[i] = byte(v)
				}
			}
			continue
		}
		for ; i < j; i++ {
			v, err := read(ws)
			if err != nil {
				return nil, err
			}
			if i < num {
				out[i] = byte(v)
			}
		}
	}
	return out, nil
}

// expand repeats every pixel four times, as np.repeat(mask.ravel(), 4).
func expand(mask []byte) []byte {
	out := make([]byte, 0, 4*len(mask))
	for _, p := range mask {
		out = append(out, p, p, p, p)
	}
	return out
}

// vector is one entry of testdata/brush_rle_vectors.json.
type vector struct {
	Name         string  `json:"name"`
	Height       int     `json:"height"`
	Width        int     `json:"width"`
	NumWords     int     `json:"num_words"`
	PaddingBits  int     `json:"padding_bits"`
	RLE          []int   `json:"rle"`
	MaskRows     [][]int `json:"mask_rows_0_255"`
	UniformValue *int    `json:"mask_uniform_value"`
}

// mask returns the vector's mask, row-major.
func (v vector) mask(t testing.TB) []byte {
	t.Helper()
	m := make([]byte, 0, v.Width*v.Height)
	switch {
	case v.MaskRows != nil:
		for _, row := range v.MaskRows {
			for _, p := range row {
				m = append(m, byte(p))
			}
		}
	case v.UniformValue != nil:
		m = append(m, bytes.Repeat([]byte{byte(*v.UniformValue)}, v.Width*v.Height)...)
	default:
		t.Fatalf("vector %s has no mask", v.Name)
	}
	if len(m) != v.Width*v.Height {
		t.Fatalf("vector %s: mask has %d pixels, want %d", v.Name, len(m), v.Width*v.Height)
	}
	return m
}

// rleBytes returns the vector's expected RLE.
func (v vector) rleBytes() []byte {
	b := make([]byte, len(v.RLE))
	for i, x := range v.RLE {
		b[i] = byte(x)
	}
	return b
}

// loadVectors reads testdata/brush_rle_vectors.json.
func loadVectors(t testing.TB) []vector {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "brush_rle_vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Vectors []vector `json:"vectors"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatalf("parse vectors: %v", err)
	}
	if len(file.Vectors) == 0 {
		t.Fatal("no vectors in testdata/brush_rle_vectors.json")
	}
	return file.Vectors
}

// disc returns a w×h mask, 255 inside the centred disc whose radius is 10% of
// the long side and 0 outside: the shape of a typical SAM mask.
func disc(w, h int) []byte {
	m := make([]byte, w*h)
	r := float64(max(w, h)) / 10
	cx, cy := float64(w)/2, float64(h)/2
	for y := range h {
		for x := range w {
			dx, dy := float64(x)+0.5-cx, float64(y)+0.5-cy
			if dx*dx+dy*dy <= r*r {
				m[y*w+x] = 255
			}
		}
	}
	return m
}

// randomMask returns n pixels drawn from values, with runs whose lengths are
// uniform in [1, maxRun].
func randomMask(rng *rand.Rand, n, maxRun int, values []byte) []byte {
	m := make([]byte, 0, n)
	for len(m) < n {
		v := values[rng.IntN(len(values))]
		k := min(1+rng.IntN(maxRun), n-len(m))
		m = append(m, bytes.Repeat([]byte{v}, k)...)
	}
	return m
}
