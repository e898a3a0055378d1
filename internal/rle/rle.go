// Package rle encodes and decodes Label Studio's brush RLE, the run-length
// format in which a brush region's mask travels as "value.rle": a JSON list of
// byte values.
//
// The format is @thi.ng/rle-pack's binary RLE (umbrella
// packages/rle-pack/src/binary.ts, decodeBinary), with the parameters that
// Label Studio's Python SDK always uses (label_studio_sdk.converter.brush,
// encode_rle and mask2rle). All fields are written most significant bit
// first, and bytes follow each other in order:
//
//	32 bits  number of words in the decoded array
//	 5 bits  word size - 1           (7: words are bytes)
//	 4 bits  repeat size 0 - 1       (2: counts of 1..8 fit in 3 bits)
//	 4 bits  repeat size 1 - 1       (3: counts of 1..16 fit in 4 bits)
//	 4 bits  repeat size 2 - 1       (7: counts of 1..256 fit in 8 bits)
//	 4 bits  repeat size 3 - 1       (15: counts of 1..65536 fit in 16 bits)
//
// followed by chunks until the word count is reached. A chunk starts with a
// 1-bit flag and a 2-bit size class c, then a count field of repeat-size-c
// bits holding n-1. With the flag set, one word follows and is repeated n
// times; with it clear, n literal words follow.
//
// The decoded array is an RGBA image: mask2rle repeats every mask pixel four
// times (R, G, B, A), so a W×H mask becomes W*H*4 words. The editor decodes it
// with @thi.ng/rle-pack and looks at the alpha byte of each pixel.
package rle

import "math"

// MaxPixels is the largest mask Encode accepts: its word count, four words a
// pixel, must fit the 32-bit header field.
const MaxPixels = math.MaxUint32 / 4

// Header field values written by the Python SDK's encode_rle (its defaults
// wordsize=8, rle_sizes=[3, 4, 8, 16]), which this encoder reproduces.
const (
	headerBits = 32 + 5 + 4*4
	// headerTail holds the 21 bits after the word count:
	// 00111 0010 0011 0111 1111, that is word size 8 and repeat sizes
	// 3, 4, 8 and 16, each stored minus one.
	headerTail     = 7<<16 | 2<<12 | 3<<8 | 7<<4 | 15
	headerTailBits = 5 + 4*4

	wordsPerPixel = 4
	maxRepeat     = 1 << 16 // longest run one chunk of size class 3 holds
)
