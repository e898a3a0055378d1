package lsdb

import (
	"strings"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time // zero: an error is wanted
	}{
		{"2026-07-17 09:34:19.135947", time.Date(2026, 7, 17, 9, 34, 19, 135947000, time.UTC)},
		{"2026-07-17 09:34:19", time.Date(2026, 7, 17, 9, 34, 19, 0, time.UTC)},
		{"2026-07-17T09:34:19.1", time.Date(2026, 7, 17, 9, 34, 19, 100000000, time.UTC)},
		{"2026-07-17 09:34:19Z", time.Date(2026, 7, 17, 9, 34, 19, 0, time.UTC)},
		{"2026-07-17T09:34:19.135947+00:00", time.Date(2026, 7, 17, 9, 34, 19, 135947000, time.UTC)},
		{"2026-07-17 11:34:19.5+02:00", time.Date(2026, 7, 17, 9, 34, 19, 500000000, time.UTC)},
		{"2026-07-17 11:34:19+0200", time.Date(2026, 7, 17, 9, 34, 19, 0, time.UTC)},
		{"2026-07-17 09:34:19.135947+00", time.Date(2026, 7, 17, 9, 34, 19, 135947000, time.UTC)},
		{"2026-07-17 04:34:19-05", time.Date(2026, 7, 17, 9, 34, 19, 0, time.UTC)},
		{"2026-07-17 09:34:19.123456789", time.Date(2026, 7, 17, 9, 34, 19, 123456789, time.UTC)},
		{"", time.Time{}},
		{"2026-07-17", time.Time{}},
		{"2026-07-17 09:34", time.Time{}},
		{"2026-13-17 09:34:19", time.Time{}},
		{"2026-07-17 24:00:00", time.Time{}},
		{"2026-07-17 09:34:19 garbage", time.Time{}},
		{"1784280859", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseTime(tt.in)
			if tt.want.IsZero() {
				if err == nil {
					t.Fatalf("parseTime(%q): got %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseTime(%q): %v", tt.in, err)
			}
			if !got.Equal(tt.want) {
				t.Errorf("parseTime(%q): got %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestDBTimeScan(t *testing.T) {
	want := time.Date(2026, 7, 17, 9, 34, 19, 135947000, time.UTC)
	for _, v := range []any{want, "2026-07-17 09:34:19.135947", []byte("2026-07-17T09:34:19.135947Z")} {
		var d dbTime
		if err := d.Scan(v); err != nil || !d.Valid || !d.Time.Equal(want) {
			t.Errorf("Scan(%T): got %v, %t, %v; want %v", v, d.Time, d.Valid, err, want)
		}
	}
	var d dbTime
	if err := d.Scan(nil); err != nil || d.Valid {
		t.Errorf("Scan(nil): got valid %t, %v; want invalid, nil", d.Valid, err)
	}
	if err := d.Scan(int64(5)); err == nil {
		t.Errorf("Scan(int64): got nil, want an error")
	}
}

// FuzzParseTime checks that parseTime never panics, that whatever it
// accepts is a real instant that survives a round trip through Label
// Studio's own format, and that it agrees with Django's format where that
// applies.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{
		"2026-07-17 09:34:19.135947", "2026-07-17 09:34:19", "2026-07-17T09:34:19Z",
		"2026-07-17 09:34:19.5+02:00", "2026-07-17 09:34:19+0200", "2026-07-17 09:34:19-07",
		"0000-01-01 00:00:00", "9999-12-31 23:59:59.999999999", "", "T", "2026-07-17T",
	} {
		f.Add(s)
	}
	const django = "2006-01-02 15:04:05.000000"
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseTime(s)
		if err != nil {
			if !got.IsZero() {
				t.Fatalf("parseTime(%q): got %v with error %v, want the zero time", s, got, err)
			}
			if strings.Contains(err.Error(), s) && len(s) > 60 {
				t.Fatalf("parseTime(%q): error quotes %d bytes of input", s, len(s))
			}
			return
		}
		if got.Location() != time.UTC {
			t.Fatalf("parseTime(%q): location %v, want UTC", s, got.Location())
		}
		if y := got.UTC().Year(); y < 1 || y > 9999 {
			return // an offset moved it out of the four-digit years
		}
		// What parseTime accepts, written back the way Django writes it,
		// must parse to the same instant (to the microsecond).
		back := got.UTC().Format(django)
		again, err := parseTime(back)
		if err != nil {
			t.Fatalf("parseTime(%q) = %v, but its Django form %q fails: %v", s, got, back, err)
		}
		if !again.Equal(got.Truncate(time.Microsecond)) {
			t.Fatalf("parseTime(%q) = %v, round trip through %q = %v", s, got, back, again)
		}
	})
}
