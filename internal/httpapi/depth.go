package httpapi

import "bytes"

// jsonDepthOver reports the offset of the first '[' or '{' in b that opens
// a level deeper than max, or -1 if none does. It does not validate b:
// json.Unmarshal does that after it, and brackets inside strings (with
// their escapes) do not count. Strings, most of a body's bytes, are
// skipped with bytes.IndexByte.
func jsonDepthOver(b []byte, max int) int {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			end := closingQuote(b, i+1)
			if end < 0 {
				return -1
			}
			i = end
		case '[', '{':
			depth++
			if depth > max {
				return i
			}
		case ']', '}':
			depth--
		}
	}
	return -1
}

// closingQuote returns the offset of the '"' that ends the string whose
// contents start at start, or -1: a quote ends it when an even number of
// backslashes precedes it.
func closingQuote(b []byte, start int) int {
	for from := start; ; {
		k := bytes.IndexByte(b[from:], '"')
		if k < 0 {
			return -1
		}
		q := from + k
		n := 0
		for p := q - 1; p >= start && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q
		}
		from = q + 1
	}
}
