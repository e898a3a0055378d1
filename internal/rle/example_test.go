package rle_test

import (
	"fmt"

	"github.com/sam-ml-backend/sam-ml-backend/internal/rle"
)

// A 4×3 mask with a 2×2 square, as SAM masks are: 0 outside, 255 inside.
func Example() {
	const w, h = 4, 3
	mask := []byte{
		0, 0, 0, 0,
		0, 255, 255, 0,
		0, 255, 255, 0,
	}
	data := rle.Encode(mask) // the "rle" list of a brushlabels result
	fmt.Println(data)

	rgba, err := rle.Decode(data, w*h*4)
	if err != nil {
		fmt.Println(err)
		return
	}
	// The editor shows a pixel where its alpha byte is nonzero.
	for y := range h {
		for x := range w {
			fmt.Print(rgba[(y*w+x)*4+3] / 255)
		}
		fmt.Println()
	}
	// Output:
	// [0 0 0 48 57 27 254 19 0 159 254 112 9 255 227 0 0]
	// 0000
	// 0110
	// 0110
}

func ExampleDecode_limit() {
	// A header claiming 2^32-1 words, and nothing else.
	data := []byte{0xff, 0xff, 0xff, 0xff, 57, 27, 248}
	_, err := rle.Decode(data, 1920*1080*4)
	fmt.Println(err)
	// Output:
	// rle: header claims 4294967295 words, more than the limit of 8294400
}
