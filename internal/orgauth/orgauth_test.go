package orgauth_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sam-ml-backend/sam-ml-backend/internal/orgauth"
)

const key = "an-operator-secret-of-32-or-more-chars"

func secret(t testing.TB) *orgauth.Secret {
	t.Helper()
	s, err := orgauth.NewSecret(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCredentialsMatchOpenSSL checks the derivation against an independent
// implementation: printf %s <org> | openssl dgst -sha256 -hmac <key>.
func TestCredentialsMatchOpenSSL(t *testing.T) {
	s := secret(t)
	for _, tt := range []struct {
		org  int64
		user string
		pass string
	}{
		{7, "org-7", "83fb4aeea7be5ec3e06ede5bfcc2d2f9a717f42e124eef6bd81cdb217b4bdc38"},
		{123456789, "org-123456789", "dc7dca9d75fc865ee366ecb5646d2601d34ac54cffb32951a2c6de747f3e0a61"},
	} {
		user, pass := s.Credentials(tt.org)
		if user != tt.user || pass != tt.pass {
			t.Errorf("Credentials(%d) = %s, %s; want %s, %s", tt.org, user, pass, tt.user, tt.pass)
		}
	}
}

func TestVerify(t *testing.T) {
	s := secret(t)
	user7, pass7 := s.Credentials(7)
	_, pass8 := s.Credentials(8)
	other, err := orgauth.NewSecret(strings.Repeat("x", 40))
	if err != nil {
		t.Fatal(err)
	}
	_, otherPass7 := other.Credentials(7)
	for _, tt := range []struct {
		name, user, pass string
		org              int64
		ok               bool
	}{
		{"own credentials", user7, pass7, 7, true},
		{"upper-case hex is the same password", user7, strings.ToUpper(pass7), 7, true},
		{"another organization's password", user7, pass8, 0, false},
		{"another organization's user", "org-8", pass7, 0, false},
		{"password from another secret", user7, otherPass7, 0, false},
		{"empty password", user7, "", 0, false},
		{"truncated password", user7, pass7[:62], 0, false},
		{"not hex", user7, "zz" + pass7[2:], 0, false},
		{"leading zero", "org-07", pass7, 0, false},
		{"plus sign", "org-+7", pass7, 0, false},
		{"zero", "org-0", pass7, 0, false},
		{"negative", "org--7", pass7, 0, false},
		{"no id", "org-", pass7, 0, false},
		{"other prefix", "Org-7", pass7, 0, false},
		{"overflow", "org-99999999999999999999", pass7, 0, false},
		{"trailing space", "org-7 ", pass7, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			org, ok := s.Verify(tt.user, tt.pass)
			if org != tt.org || ok != tt.ok {
				t.Errorf("Verify(%q, …) = %d, %v; want %d, %v", tt.user, org, ok, tt.org, tt.ok)
			}
		})
	}
}

func TestShortSecretIsRefused(t *testing.T) {
	if _, err := orgauth.NewSecret(strings.Repeat("k", orgauth.MinSecretLen-1)); !errors.Is(err, orgauth.ErrShortSecret) {
		t.Errorf("NewSecret(31 chars): got %v, want ErrShortSecret", err)
	}
	if _, err := orgauth.NewSecret(strings.Repeat("k", orgauth.MinSecretLen)); err != nil {
		t.Errorf("NewSecret(32 chars): %v", err)
	}
}

func TestSecretDoesNotPrint(t *testing.T) {
	s := secret(t)
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s)} {
		if strings.Contains(out, key) || strings.Contains(out, key[:8]) {
			t.Errorf("printing a Secret shows its key: %s", out)
		}
	}
}

func FuzzParseUsername(f *testing.F) {
	for _, s := range []string{"org-1", "org-07", "org-", "org-9223372036854775807", "org-9223372036854775808", "org-+1", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, user string) {
		org, ok := orgauth.ParseUsername(user)
		if !ok {
			return
		}
		if org <= 0 || orgauth.Username(org) != user {
			t.Errorf("ParseUsername(%q) = %d, but Username(%d) = %q", user, org, org, orgauth.Username(org))
		}
	})
}

// BenchmarkVerify measures checking an organization's credentials, done
// on every request that carries them.
func BenchmarkVerify(b *testing.B) {
	s := secret(b)
	user, pass := s.Credentials(123)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := s.Verify(user, pass); !ok {
			b.Fatal("rejected")
		}
	}
}
