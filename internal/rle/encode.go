package rle

import (
	"encoding/binary"
	"math/bits"
)

// Encode returns the brush RLE of mask in a buffer of exactly the right size.
// It is AppendEncode(nil, mask) without the reallocations: the mask is
// scanned once to size the output and once to write it.
//
// Encode panics if len(mask) > MaxPixels.
func Encode(mask []byte) []byte {
	return AppendEncode(make([]byte, 0, encodedLen(mask)), mask)
}

// AppendEncode appends to dst the brush RLE of mask and returns the extended
// slice.
//
// mask holds one byte per pixel, row-major; any byte value is allowed (SAM
// masks are 0 or 255). Every pixel becomes four equal words (R, G, B, A),
// as label_studio_sdk.converter.brush.mask2rle does with
// np.repeat(mask.ravel(), 4), and the output matches that function byte for
// byte:
//
//   - each maximal run of equal words is written as repeat chunks in the
//     smallest size class that holds it (at most 8, 16, 256 words); a longer
//     run is written as class-3 chunks of 65536 words while more than 65536
//     remain, then one class-3 chunk for the rest, however short, exactly as
//     encode_rle splits it;
//   - the stream is padded with 8 - bits%8 zero bits, so a stream that is
//     already byte aligned gets a whole extra zero byte. (thi.ng's own encoder
//     pads to the next byte only; both decode the same.)
//
// A run of a single word, the literal chunk of encode_rle, cannot occur
// because words come in fours.
//
// AppendEncode panics if len(mask) > MaxPixels, whose word count does not fit
// the 32-bit header.
func AppendEncode(dst []byte, mask []byte) []byte {
	if len(mask) > MaxPixels {
		panic("rle: mask larger than MaxPixels")
	}
	w := bitWriter{buf: dst}
	w.put(uint64(len(mask))*wordsPerPixel, 32)
	w.put(headerTail, headerTailBits)
	for i := 0; i < len(mask); {
		v := mask[i]
		j := runEnd(mask, i)
		words := uint64(j-i) * wordsPerPixel
		switch {
		case words <= 1<<3:
			w.put(chunk(0, 3, words, v), 3+3+8)
		case words <= 1<<4:
			w.put(chunk(1, 4, words, v), 3+4+8)
		case words <= 1<<8:
			w.put(chunk(2, 8, words, v), 3+8+8)
		default:
			// The remainder stays in class 3 even when it is short.
			for words > maxRepeat {
				w.put(chunk(3, 16, maxRepeat, v), 3+16+8)
				words -= maxRepeat
			}
			w.put(chunk(3, 16, words, v), 3+16+8)
		}
		i = j
	}
	return w.finish()
}

// chunk returns the bits of a repeat chunk: the flag 1, the size class, the
// count n-1 in size bits, and the 8-bit word.
func chunk(class, size uint, n uint64, v byte) uint64 {
	return ((4|uint64(class))<<size|(n-1))<<8 | uint64(v)
}

// encodedLen returns the length of Encode(mask): the header, the chunks, and
// 1 to 8 padding bits.
func encodedLen(mask []byte) int {
	n := uint64(headerBits)
	for i := 0; i < len(mask); {
		j := runEnd(mask, i)
		words := uint64(j-i) * wordsPerPixel
		switch {
		case words <= 1<<3:
			n += 3 + 3 + 8
		case words <= 1<<4:
			n += 3 + 4 + 8
		case words <= 1<<8:
			n += 3 + 8 + 8
		default:
			n += (3 + 16 + 8) * ((words + maxRepeat - 1) / maxRepeat)
		}
		i = j
	}
	return int(n/8 + 1)
}

// runEnd returns the end of the run of bytes equal to m[i] that starts at i.
// It compares eight bytes at a time: the first nonzero byte of the XOR of a
// little-endian load with the repeated value is the first byte that differs.
func runEnd(m []byte, i int) int {
	v := m[i]
	pat := uint64(v) * 0x0101010101010101
	j := i + 1
	// Short runs, common along mask edges, end in the first word.
	if len(m)-j >= 8 {
		if x := binary.LittleEndian.Uint64(m[j:]) ^ pat; x != 0 {
			return j + bits.TrailingZeros64(x)/8
		}
		j += 8
	}
	for ; len(m)-j >= 32; j += 32 {
		s := m[j : j+32]
		x0 := binary.LittleEndian.Uint64(s) ^ pat
		x1 := binary.LittleEndian.Uint64(s[8:]) ^ pat
		x2 := binary.LittleEndian.Uint64(s[16:]) ^ pat
		x3 := binary.LittleEndian.Uint64(s[24:]) ^ pat
		if x0|x1|x2|x3 != 0 {
			break
		}
	}
	for ; len(m)-j >= 8; j += 8 {
		if x := binary.LittleEndian.Uint64(m[j:]) ^ pat; x != 0 {
			return j + bits.TrailingZeros64(x)/8
		}
	}
	for j < len(m) && m[j] == v {
		j++
	}
	return j
}

// bitWriter appends bits most significant first. The low n bits of acc are
// pending; whenever 32 or more are pending the oldest 32 go out as 4 bytes.
type bitWriter struct {
	buf []byte
	acc uint64
	n   uint
}

// put appends the low width bits of v; width is at most 32.
func (w *bitWriter) put(v uint64, width uint) {
	w.acc = w.acc<<width | v
	w.n += width
	if w.n >= 32 {
		w.n -= 32
		w.buf = binary.BigEndian.AppendUint32(w.buf, uint32(w.acc>>w.n))
	}
}

// finish pads the pending bits with zeros the way encode_rle does, 8-n%8
// bits (1 to 8), and returns the buffer.
func (w *bitWriter) finish() []byte {
	nbytes := w.n/8 + 1
	v := w.acc << (nbytes*8 - w.n)
	for k := int(nbytes) - 1; k >= 0; k-- {
		w.buf = append(w.buf, byte(v>>(8*uint(k))))
	}
	return w.buf
}
