package httpapi

// jsonDepthOver reports the offset of the first '[' or '{' in b that opens
// a level deeper than max, or -1 if none does. It does not validate b:
// json.Unmarshal does that after it, and brackets inside strings (with
// their escapes) do not count.
func jsonDepthOver(b []byte, max int) int {
	depth := 0
	inString, escaped := false, false
	for i, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			if depth > max {
				return i
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return -1
}
