package rle

import (
	"encoding/binary"
	"fmt"
)

// Decode decodes an RLE stream into its words, one byte each. For a brush
// mask of W×H pixels that is W*H*4 bytes, RGBA.
//
// It follows decodeBinary of @thi.ng/rle-pack (packages/rle-pack/src/binary.ts
// in thi-ng/umbrella), the decoder the Label Studio editor runs, and so reads
// every stream that decoder reads, including ones Encode never writes:
// literal chunks, any repeat sizes in the header, and any word size from 1 to
// 8 bits. Like decodeBinary, it ignores the bits after the last chunk, and a
// final chunk that runs past the word count is cut at the count (its extra
// literal words are read and dropped).
//
// Decode refuses, with an error naming the cause:
//   - a stream shorter than the 53-bit header;
//   - a header claiming more than maxWords words (a negative maxWords counts
//     as 0), before allocating anything, so a hostile 4-byte count cannot
//     allocate gigabytes;
//   - a word size over 8 bits, which decodeBinary returns as 16- or 32-bit
//     words and a byte slice cannot hold;
//   - a stream too short for its word count, where decodeBinary throws
//     "can't read past EOF". When the stream could not hold that many words
//     even as the longest runs its header allows, this is found before
//     allocating the output.
//
// Decode never panics.
func Decode(data []byte, maxWords int) ([]byte, error) {
	r := bitReader{data: data, end: uint64(len(data)) * 8}
	if r.end < headerBits {
		return nil, fmt.Errorf("rle: stream of %d bytes is shorter than the 53-bit header", len(data))
	}
	num := r.read(32)
	wordSize := uint(r.read(5)) + 1
	var sizes [4]uint
	minSize, maxSize := uint(16), uint(1)
	for k := range sizes {
		sizes[k] = uint(r.read(4)) + 1
		minSize = min(minSize, sizes[k])
		maxSize = max(maxSize, sizes[k])
	}
	if maxWords < 0 {
		maxWords = 0
	}
	if num > uint64(maxWords) {
		return nil, fmt.Errorf("rle: header claims %d words, more than the limit of %d", num, maxWords)
	}
	if wordSize > 8 {
		return nil, fmt.Errorf("rle: word size of %d bits is not supported, want 1 to 8", wordSize)
	}
	// Every chunk takes at least 3+minSize+wordSize bits and yields at most
	// 1<<maxSize words, which bounds what the rest of the stream can hold.
	chunks := (r.end - r.pos) / uint64(3+minSize+wordSize)
	if limit := chunks << maxSize; num > limit {
		return nil, fmt.Errorf("rle: stream truncated: %d bytes cannot hold %d words (at most %d)", len(data), num, limit)
	}

	out := make([]byte, num)
	for i := uint64(0); i < num; {
		if r.end-r.pos < 3 {
			return nil, r.truncated(i, num)
		}
		head := r.read(3)
		size := sizes[head&3]
		if r.end-r.pos < uint64(size) {
			return nil, r.truncated(i, num)
		}
		j := i + 1 + r.read(size)
		if head&4 != 0 {
			// A repeat chunk: one word for words i to j.
			if r.end-r.pos < uint64(wordSize) {
				return nil, r.truncated(i, num)
			}
			fill(out[i:min(j, num)], byte(r.read(wordSize)))
			i = j
			continue
		}
		// A literal chunk: j-i words, kept while below num.
		if r.end-r.pos < (j-i)*uint64(wordSize) {
			return nil, r.truncated(i, num)
		}
		for ; i < j; i++ {
			v := byte(r.read(wordSize))
			if i < num {
				out[i] = v
			}
		}
	}
	return out, nil
}

// fill sets every byte of s to v. make has already zeroed s, so zero is free;
// otherwise it doubles a filled prefix with copy.
func fill(s []byte, v byte) {
	if v == 0 || len(s) == 0 {
		return
	}
	s[0] = v
	for n := 1; n < len(s); n *= 2 {
		copy(s[n:], s[:n])
	}
}

// bitReader reads bits most significant first from data, up to bit end.
type bitReader struct {
	data []byte
	pos  uint64 // next bit to read
	end  uint64 // len(data) * 8
}

// read returns the next n bits, 1 <= n <= 32. The caller checks that n bits
// remain.
func (r *bitReader) read(n uint) uint64 {
	b := r.pos / 8
	var v uint64
	if rest := r.data[b:]; len(rest) >= 8 {
		v = binary.BigEndian.Uint64(rest)
	} else {
		for k := range 8 {
			v <<= 8
			if k < len(rest) {
				v |= uint64(rest[k])
			}
		}
	}
	v = v << (r.pos % 8) >> (64 - n)
	r.pos += uint64(n)
	return v
}

// truncated reports a stream that ends inside the chunk starting at word i.
func (r *bitReader) truncated(i, num uint64) error {
	return fmt.Errorf("rle: stream truncated: %d bytes end inside the chunk at word %d of %d", len(r.data), i, num)
}
