//go:build !cgo

package onnxrt

import "context"

// Init reports ErrUnavailable: this binary was built without cgo.
func Init(libPath string) (version string, err error) { return "", ErrUnavailable }

// Version returns "": this binary was built without cgo.
func Version() string { return "" }

// Session is a stand-in that cannot be created without cgo.
type Session struct{}

// NewSession reports ErrUnavailable: this binary was built without cgo.
func NewSession(data []byte, inputs, outputs []string, opts Options) (*Session, error) {
	return nil, ErrUnavailable
}

// NewSessionFile reports ErrUnavailable: this binary was built without cgo.
func NewSessionFile(path string, inputs, outputs []string, opts Options) (*Session, error) {
	return nil, ErrUnavailable
}

// InputNames returns nil.
func (s *Session) InputNames() []string { return nil }

// OutputNames returns nil.
func (s *Session) OutputNames() []string { return nil }

// Inputs returns nil.
func (s *Session) Inputs() []Info { return nil }

// Outputs returns nil.
func (s *Session) Outputs() []Info { return nil }

// Run reports ErrUnavailable.
func (s *Session) Run(ctx context.Context, inputs []Tensor) ([]Tensor, error) {
	return nil, ErrUnavailable
}

// Close does nothing.
func (s *Session) Close() error { return nil }
