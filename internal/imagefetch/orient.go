package imagefetch

import (
	"encoding/binary"
	"image"
	"image/draw"
	"math/bits"
)

// The eight EXIF orientations (Exif 2.3, tag 0x0112) and what to do with
// the stored pixels to show them:
//
//	1 as stored              5 transpose (flip over the main diagonal)
//	2 flip left-right        6 rotate 90° clockwise
//	3 rotate 180°            7 transverse (flip over the anti-diagonal)
//	4 flip top-bottom        8 rotate 90° counter-clockwise
//
// For a stored W×H image, display pixel (dx, dy) comes from stored pixel
// (sx, sy):
//
//	2: (W-1-dx, dy)    3: (W-1-dx, H-1-dy)    4: (dx, H-1-dy)
//	5: (dy, dx)        6: (dy, H-1-dx)        7: (W-1-dy, H-1-dx)
//	8: (W-1-dy, dx)
//
// The code below walks the stored image in order and writes each pixel to
// its display position; see steps.

// tile is the side of the square blocks that the transposing orientations
// (5–8) walk, so that both the rows read and the columns written stay in
// cache.
const tile = 64

// transposes reports whether orientation o swaps width and height.
func transposes(o int) bool { return o >= 5 && o <= 8 }

// steps returns, for a stored w×h image and a display buffer with the given
// row stride and bytes per pixel, the byte offset of stored pixel (0, 0) in
// the display buffer and how that offset moves when sx and sy grow by one.
func steps(o, w, h, stride, bpp int) (off0, stepX, stepY int) {
	switch o {
	case 2:
		return (w - 1) * bpp, -bpp, stride
	case 3:
		return (h-1)*stride + (w-1)*bpp, -bpp, -stride
	case 4:
		return (h - 1) * stride, bpp, -stride
	case 5:
		return 0, stride, bpp
	case 6:
		return (h - 1) * bpp, stride, -bpp
	case 7:
		return (w-1)*stride + (h-1)*bpp, -stride, -bpp
	case 8:
		return (w - 1) * stride, -stride, bpp
	}
	return 0, bpp, stride
}

// displayRect is the bounds of a w×h stored image under orientation o.
func displayRect(o, w, h int) image.Rectangle {
	if transposes(o) {
		return image.Rect(0, 0, h, w)
	}
	return image.Rect(0, 0, w, h)
}

// orient returns img as it is displayed under EXIF orientation o. For o = 1
// (or an invalid value) it returns img itself. Otherwise it returns a new
// image of the display size, written in one pass over the stored pixels,
// eight bytes at a time:
//
//   - *image.YCbCr (JPEG, lossy WebP) stays *image.YCbCr, its three planes
//     moved separately, when its chroma blocks map onto whole blocks of the
//     result (always for 4:4:4; for 4:2:0 when the mirrored sides are
//     even, as in every camera photo), else becomes *image.RGBA;
//   - *image.RGBA, *image.NRGBA and *image.Gray keep their type;
//   - anything else becomes *image.RGBA, converted band by band
//     (orientViaRGBA).
func orient(img image.Image, o int) image.Image {
	if o < 2 || o > 8 {
		return img
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	r := displayRect(o, w, h)
	switch m := img.(type) {
	case *image.YCbCr:
		if out, ok := orientYCbCrPlanes(m, o); ok {
			return out
		}
		return orientViaRGBA(m, o)
	case *image.RGBA:
		dst := image.NewRGBA(r)
		remap4(dst.Pix, dst.Stride, m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, w, h, o)
		return dst
	case *image.NRGBA:
		dst := image.NewNRGBA(r)
		remap4(dst.Pix, dst.Stride, m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, w, h, o)
		return dst
	case *image.Gray:
		dst := image.NewGray(r)
		remap1(dst.Pix, dst.Stride, m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, w, h, o)
		return dst
	}
	// Rare types (CMYK JPEG, 16-bit or paletted PNG, TIFF).
	return orientViaRGBA(img, o)
}

// forTiles calls fn for each block of the stored w×h image that should be
// walked as a unit: whole rows when o keeps rows as rows, tile×tile squares
// when it transposes.
func forTiles(o, w, h int, fn func(x0, x1, y0, y1 int)) {
	if !transposes(o) {
		fn(0, w, 0, h)
		return
	}
	for y0 := 0; y0 < h; y0 += tile {
		y1 := min(y0+tile, h)
		for x0 := 0; x0 < w; x0 += tile {
			fn(x0, min(x0+tile, w), y0, y1)
		}
	}
}

// remap1 writes the w×h one-byte-per-pixel plane src (row stride sstride)
// to dst (row stride dstride) under orientation o. Rows are moved eight
// bytes at a time; the transposing orientations go through 8×8 blocks
// transposed in registers.
func remap1(dst []byte, dstride int, src []byte, sstride, w, h, o int) {
	off0, sx, sy := steps(o, w, h, dstride, 1)
	if !transposes(o) {
		for y := range h {
			row := src[y*sstride : y*sstride+w]
			d := off0 + y*sy
			if sx == 1 {
				copy(dst[d:d+w], row)
				continue
			}
			// Reversed row: dst[d-w+1 : d+1] is row backwards.
			out := dst[d-w+1 : d+1]
			i := 0
			for ; i+8 <= w; i += 8 {
				v := binary.LittleEndian.Uint64(row[i:])
				binary.LittleEndian.PutUint64(out[w-i-8:], bits.ReverseBytes64(v))
			}
			for ; i < w; i++ {
				out[w-1-i] = row[i]
			}
		}
		return
	}
	// sx is ±dstride (a stored column becomes a display row) and sy is ±1.
	w8, h8 := w&^7, h&^7
	forTiles(o, w8, h8, func(tx0, tx1, ty0, ty1 int) {
		var r [8]uint64
		for y0 := ty0; y0 < ty1; y0 += 8 {
			for x0 := tx0; x0 < tx1; x0 += 8 {
				for i := range r {
					r[i] = binary.LittleEndian.Uint64(src[(y0+i)*sstride+x0:])
				}
				transpose8x8(&r)
				// r[j] is stored column x0+j, byte i from row y0+i.
				base := off0 + y0*sy + x0*sx
				for j, v := range r {
					d := base + j*sx
					if sy > 0 {
						binary.LittleEndian.PutUint64(dst[d:], v)
					} else {
						binary.LittleEndian.PutUint64(dst[d-7:], bits.ReverseBytes64(v))
					}
				}
			}
		}
	})
	// The right and bottom strips that do not fill a block.
	remap1Scalar(dst, off0, sx, sy, src, sstride, w8, w, 0, h8)
	remap1Scalar(dst, off0, sx, sy, src, sstride, 0, w, h8, h)
}

// remap1Scalar moves the stored pixels [x0,x1)×[y0,y1) one by one.
func remap1Scalar(dst []byte, off0, sx, sy int, src []byte, sstride, x0, x1, y0, y1 int) {
	for y := y0; y < y1; y++ {
		d := off0 + y*sy + x0*sx
		for _, v := range src[y*sstride+x0 : y*sstride+x1] {
			dst[d] = v
			d += sx
		}
	}
}

// transpose8x8 transposes the 8×8 byte matrix whose row i is r[i] (byte j
// in bits 8j..8j+7) by swapping 4×4, then 2×2, then 1×1 blocks (Hacker's
// Delight §7-3). It is unrolled so that the rows stay in registers.
func transpose8x8(r *[8]uint64) {
	const m32, m16, m8 = 0x00000000FFFFFFFF, 0x0000FFFF0000FFFF, 0x00FF00FF00FF00FF
	r0, r1, r2, r3, r4, r5, r6, r7 := r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]
	r0, r4 = r0&m32|r4<<32, r0>>32|r4&^m32
	r1, r5 = r1&m32|r5<<32, r1>>32|r5&^m32
	r2, r6 = r2&m32|r6<<32, r2>>32|r6&^m32
	r3, r7 = r3&m32|r7<<32, r3>>32|r7&^m32
	r0, r2 = r0&m16|(r2&m16)<<16, (r0>>16)&m16|r2&^m16
	r1, r3 = r1&m16|(r3&m16)<<16, (r1>>16)&m16|r3&^m16
	r4, r6 = r4&m16|(r6&m16)<<16, (r4>>16)&m16|r6&^m16
	r5, r7 = r5&m16|(r7&m16)<<16, (r5>>16)&m16|r7&^m16
	r0, r1 = r0&m8|(r1&m8)<<8, (r0>>8)&m8|r1&^m8
	r2, r3 = r2&m8|(r3&m8)<<8, (r2>>8)&m8|r3&^m8
	r4, r5 = r4&m8|(r5&m8)<<8, (r4>>8)&m8|r5&^m8
	r6, r7 = r6&m8|(r7&m8)<<8, (r6>>8)&m8|r7&^m8
	r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7] = r0, r1, r2, r3, r4, r5, r6, r7
}

// remap4 is remap1 for four-byte pixels (RGBA, NRGBA).
func remap4(dst []byte, dstride int, src []byte, sstride, w, h, o int) {
	remap4Rows(dst, dstride, src, sstride, w, h, o, 0, h)
}

// remap4Rows moves the stored rows [y0, y1) of a w×h image of four-byte
// pixels; src holds those rows only (its row 0 is stored row y0).
func remap4Rows(dst []byte, dstride int, src []byte, sstride, w, h, o, y0, y1 int) {
	off0, sx, sy := steps(o, w, h, dstride, 4)
	n := 4 * w
	row := func(y int) []byte { return src[(y-y0)*sstride : (y-y0)*sstride+n] }
	if !transposes(o) {
		for y := y0; y < y1; y++ {
			r := row(y)
			d := off0 + y*sy
			if sx == 4 {
				copy(dst[d:d+n], r)
				continue
			}
			// Reversed row of pixels: dst[d-n+4 : d+4].
			out := dst[d-n+4 : d+4]
			i := 0
			for ; i+8 <= n; i += 8 {
				v := binary.LittleEndian.Uint64(r[i:])
				binary.LittleEndian.PutUint64(out[n-i-8:], bits.RotateLeft64(v, 32))
			}
			for ; i < n; i += 4 {
				*(*[4]byte)(out[n-i-4 : n-i]) = *(*[4]byte)(r[i : i+4])
			}
		}
		return
	}
	// Transposing: 2×2 pixel blocks (two 8-byte loads, two 8-byte stores)
	// inside tile×tile squares, so that both sides stay in cache.
	w2, yEnd := w&^1, y0+(y1-y0)&^1
	for ty := y0; ty < yEnd; ty += tile {
		tyEnd := min(ty+tile, yEnd)
		for tx := 0; tx < w2; tx += tile {
			txEnd := min(tx+tile, w2)
			for y := ty; y < tyEnd; y += 2 {
				r0, r1 := row(y), row(y+1)
				d := off0 + y*sy + tx*sx
				for x := tx; x < txEnd; x += 2 {
					a := binary.LittleEndian.Uint64(r0[4*x:])
					b := binary.LittleEndian.Uint64(r1[4*x:])
					c0 := a&0xFFFFFFFF | b<<32 // stored column x, rows y and y+1
					c1 := a>>32 | b&^0xFFFFFFFF
					if sy > 0 {
						binary.LittleEndian.PutUint64(dst[d:], c0)
						binary.LittleEndian.PutUint64(dst[d+sx:], c1)
					} else {
						binary.LittleEndian.PutUint64(dst[d-4:], bits.RotateLeft64(c0, 32))
						binary.LittleEndian.PutUint64(dst[d+sx-4:], bits.RotateLeft64(c1, 32))
					}
					d += 2 * sx
				}
			}
		}
	}
	// Left over: the last column when w is odd, the last row when the
	// number of rows is.
	one := func(x, y int) {
		d := off0 + y*sy + x*sx
		*(*[4]byte)(dst[d : d+4]) = *(*[4]byte)(row(y)[4*x : 4*x+4])
	}
	for y := y0; y < yEnd && w2 < w; y++ {
		one(w-1, y)
	}
	if yEnd < y1 {
		for x := range w {
			one(x, y1-1)
		}
	}
}

// bandRows is the height of the bands in which orientViaRGBA converts.
const bandRows = 64

// orientViaRGBA orients an image of any type into an *image.RGBA: it
// converts bands of bandRows stored rows with image/draw (which has fast
// paths for *image.YCbCr and most other decoder outputs) and moves each
// band to its display place while it is still in cache.
func orientViaRGBA(img image.Image, o int) *image.RGBA {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	dst := image.NewRGBA(displayRect(o, w, h))
	band := image.NewRGBA(image.Rect(0, 0, w, min(h, bandRows)))
	for y0 := 0; y0 < h; y0 += bandRows {
		y1 := min(y0+bandRows, h)
		draw.Draw(band, image.Rect(0, 0, w, y1-y0), img, image.Pt(b.Min.X, b.Min.Y+y0), draw.Src)
		remap4Rows(dst.Pix, dst.Stride, band.Pix, band.Stride, w, h, o, y0, y1)
	}
	return dst
}

// chromaShifts returns log2 of the horizontal and vertical chroma
// subsampling of r.
func chromaShifts(r image.YCbCrSubsampleRatio) (hs, vs uint) {
	switch r {
	case image.YCbCrSubsampleRatio422:
		return 1, 0
	case image.YCbCrSubsampleRatio420:
		return 1, 1
	case image.YCbCrSubsampleRatio440:
		return 0, 1
	case image.YCbCrSubsampleRatio411:
		return 2, 0
	case image.YCbCrSubsampleRatio410:
		return 2, 1
	}
	return 0, 0
}

// ratioOf is the inverse of chromaShifts.
func ratioOf(hs, vs uint) (image.YCbCrSubsampleRatio, bool) {
	for _, r := range []image.YCbCrSubsampleRatio{
		image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420,
		image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410,
	} {
		if h, v := chromaShifts(r); h == hs && v == vs {
			return r, true
		}
	}
	return 0, false
}

// orientYCbCrPlanes moves the Y, Cb and Cr planes of m separately, which
// is exact when every chroma block lands on a chroma block of the result.
// That needs the mirrored sides to be whole multiples of the block and,
// when o transposes, a subsampling ratio that exists transposed.
func orientYCbCrPlanes(m *image.YCbCr, o int) (*image.YCbCr, bool) {
	if m.Rect.Min != (image.Point{}) {
		return nil, false
	}
	w, h := m.Rect.Dx(), m.Rect.Dy()
	hs, vs := chromaShifts(m.SubsampleRatio)
	flipX := o == 2 || o == 3 || o == 7 || o == 8
	flipY := o == 3 || o == 4 || o == 6 || o == 7
	if flipX && w%(1<<hs) != 0 || flipY && h%(1<<vs) != 0 {
		return nil, false
	}
	ratio := m.SubsampleRatio
	if transposes(o) {
		var ok bool
		if ratio, ok = ratioOf(vs, hs); !ok {
			return nil, false
		}
	}
	dst := image.NewYCbCr(displayRect(o, w, h), ratio)
	remap1(dst.Y, dst.YStride, m.Y, m.YStride, w, h, o)
	cw, ch := (w+(1<<hs)-1)>>hs, (h+(1<<vs)-1)>>vs
	remap1(dst.Cb, dst.CStride, m.Cb, m.CStride, cw, ch, o)
	remap1(dst.Cr, dst.CStride, m.Cr, m.CStride, cw, ch, o)
	return dst, true
}
