// Package orgauth derives and checks the basic-auth credentials with which
// one Label Studio organization calls the backend.
//
// Organization O's user is "org-O" and its password is the hex HMAC-SHA256
// of O's decimal id, keyed with the operator's secret (ORG_AUTH_SECRET).
// The backend stores nothing per organization, and an organization that
// knows its own password cannot derive another's.
package orgauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
)

// MinSecretLen is the shortest secret accepted: 32 characters, as made by
// `openssl rand -hex 16` or longer.
const MinSecretLen = 32

// userPrefix starts every organization's user name.
const userPrefix = "org-"

// Secret derives organizations' credentials. Its String method hides it.
type Secret struct {
	key []byte
}

// ErrShortSecret means a secret is shorter than MinSecretLen.
var ErrShortSecret = errors.New("secret is shorter than 32 characters")

// NewSecret returns the Secret keyed with key.
func NewSecret(key string) (*Secret, error) {
	if len(key) < MinSecretLen {
		return nil, ErrShortSecret
	}
	return &Secret{key: []byte(key)}, nil
}

// String hides the key, so a Secret printed by mistake shows nothing.
func (s *Secret) String() string { return "orgauth.Secret(…)" }

// GoString hides the key from %#v too.
func (s *Secret) GoString() string { return s.String() }

// Credentials returns organization org's user name and password.
func (s *Secret) Credentials(org int64) (user, password string) {
	return Username(org), hex.EncodeToString(s.mac(org))
}

// Verify reports which organization user and password authenticate, if
// any. The password is compared in constant time.
func (s *Secret) Verify(user, password string) (org int64, ok bool) {
	org, ok = ParseUsername(user)
	if !ok {
		return 0, false
	}
	got, err := hex.DecodeString(password)
	if err != nil || !hmac.Equal(got, s.mac(org)) {
		return 0, false
	}
	return org, true
}

func (s *Secret) mac(org int64) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write(strconv.AppendInt(nil, org, 10))
	return m.Sum(nil)
}

// Username returns organization org's user name, "org-<org>".
func Username(org int64) string { return userPrefix + strconv.FormatInt(org, 10) }

// ParseUsername returns the organization an "org-<id>" user name names.
// Only the canonical form is accepted, a positive id without sign or
// leading zeros, so that each organization has exactly one user name.
func ParseUsername(user string) (int64, bool) {
	digits, ok := strings.CutPrefix(user, userPrefix)
	if !ok || digits == "" || digits[0] < '1' || digits[0] > '9' {
		return 0, false
	}
	org, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || strconv.FormatInt(org, 10) != digits {
		return 0, false
	}
	return org, true
}
