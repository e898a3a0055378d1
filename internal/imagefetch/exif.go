package imagefetch

import (
	"bytes"
	"encoding/binary"
)

// EXIF orientation (TIFF tag 0x0112) as stored by cameras. Values outside
// 1–8 are treated as 1.
const tagOrientation = 0x0112

// exifHeader prefixes the TIFF structure inside a JPEG APP1 segment, and
// sometimes inside PNG eXIf and WebP EXIF chunks.
var exifHeader = []byte("Exif\x00\x00")

// orientation returns the EXIF orientation (1–8) of an encoded image of the
// given format, or 1 when it has none. It only looks at the container
// structure (JPEG segments, PNG chunks, RIFF chunks, TIFF IFD0), never
// reads past data, and does not allocate.
func orientation(f format, data []byte) int {
	switch f {
	case formatJPEG:
		return jpegOrientation(data)
	case formatPNG:
		return pngOrientation(data)
	case formatWebP:
		return webpOrientation(data)
	case formatTIFF:
		return tiffOrientation(data)
	}
	return 1
}

// jpegOrientation walks the JPEG markers up to the first scan, looking for
// an APP1 segment that starts with "Exif\0\0" (JPEG ITU T.81 B.1.1; Exif 2.3
// §4.5.4).
func jpegOrientation(d []byte) int {
	if len(d) < 4 || d[0] != 0xFF || d[1] != 0xD8 {
		return 1
	}
	i := 2
	for i+4 <= len(d) {
		if d[i] != 0xFF {
			return 1 // lost sync: not worth guessing
		}
		m := d[i+1]
		if m == 0xFF { // fill byte
			i++
			continue
		}
		switch {
		case m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7):
			i += 2 // markers without a length
			continue
		case m == 0xDA || m == 0xD9: // start of scan, end of image
			return 1
		}
		n := int(binary.BigEndian.Uint16(d[i+2:]))
		if n < 2 || i+2+n > len(d) {
			return 1
		}
		seg := d[i+4 : i+2+n]
		if m == 0xE1 && bytes.HasPrefix(seg, exifHeader) {
			return tiffOrientation(seg[len(exifHeader):])
		}
		i += 2 + n
	}
	return 1
}

// pngOrientation looks for an eXIf chunk (PNG 3rd edition §11.3.6.1) before
// IEND.
func pngOrientation(d []byte) int {
	const sig = "\x89PNG\r\n\x1a\n"
	if len(d) < len(sig) || string(d[:len(sig)]) != sig {
		return 1
	}
	i := len(sig)
	for i+8 <= len(d) {
		n := binary.BigEndian.Uint32(d[i:])
		typ := string(d[i+4 : i+8])
		start := i + 8
		if uint64(n) > uint64(len(d)-start) {
			return 1
		}
		chunk := d[start : start+int(n)]
		switch typ {
		case "eXIf":
			return tiffOrientation(bytes.TrimPrefix(chunk, exifHeader))
		case "IEND":
			return 1
		}
		i = start + int(n) + 4 // skip the CRC
	}
	return 1
}

// webpOrientation looks for the EXIF chunk of an extended WebP file
// (RIFF container; WebP Container Specification, "Extended File Format").
func webpOrientation(d []byte) int {
	if len(d) < 12 || string(d[:4]) != "RIFF" || string(d[8:12]) != "WEBP" {
		return 1
	}
	i := 12
	for i+8 <= len(d) {
		fourcc := string(d[i : i+4])
		n := binary.LittleEndian.Uint32(d[i+4:])
		start := i + 8
		if uint64(n) > uint64(len(d)-start) {
			return 1
		}
		if fourcc == "EXIF" {
			return tiffOrientation(bytes.TrimPrefix(d[start:start+int(n)], exifHeader))
		}
		i = start + int(n) + int(n&1) // chunks are padded to even sizes
	}
	return 1
}

// tiffOrientation reads tag 0x0112 of IFD0 of a TIFF structure (TIFF 6.0
// §2: header, then IFD entries of 12 bytes: tag, type, count, value).
func tiffOrientation(d []byte) int {
	if len(d) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(d[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1
	}
	if bo.Uint16(d[2:]) != 42 {
		return 1
	}
	off := uint64(bo.Uint32(d[4:]))
	if off+2 > uint64(len(d)) {
		return 1
	}
	count := uint64(bo.Uint16(d[off:]))
	entries := off + 2
	for k := uint64(0); k < count; k++ {
		e := entries + 12*k
		if e+12 > uint64(len(d)) {
			return 1
		}
		if bo.Uint16(d[e:]) != tagOrientation {
			continue
		}
		typ, n := bo.Uint16(d[e+2:]), bo.Uint32(d[e+4:])
		if n != 1 {
			return 1
		}
		var v uint32
		switch typ {
		case 3: // SHORT: the value is left-justified in the 4-byte field
			v = uint32(bo.Uint16(d[e+8:]))
		case 4: // LONG, written by a few tools
			v = bo.Uint32(d[e+8:])
		default:
			return 1
		}
		if v < 1 || v > 8 {
			return 1
		}
		return int(v)
	}
	return 1
}
