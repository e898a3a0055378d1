// Package onnxrt is a small, model-agnostic wrapper over ONNX Runtime.
//
// It is the only package in the module that reaches native code: the cgo
// build (onnxrt_cgo.go) drives github.com/yalue/onnxruntime_go, and a
// !cgo build (onnxrt_nocgo.go) returns ErrUnavailable from every entry point,
// so that the rest of the module builds and tests with CGO_ENABLED=0.
//
// The types in this file are plain Go and carry no native handles: a Tensor
// is a shape and a Go slice, and a Session owns exactly one native session,
// released by Close.
package onnxrt

import (
	"errors"
	"fmt"
)

// ErrUnavailable is returned by every entry point when the binary was built
// without cgo, or before Init succeeded.
var ErrUnavailable = errors.New("onnx runtime unavailable")

// DataType is the element type of a tensor.
type DataType int

// The element types this package moves between Go and ONNX Runtime.
const (
	Unsupported DataType = iota
	Float32
	Uint8
	Int32
	Int64
)

// String returns the ONNX name of the type, as in "tensor(float)".
func (t DataType) String() string {
	switch t {
	case Float32:
		return "float"
	case Uint8:
		return "uint8"
	case Int32:
		return "int32"
	case Int64:
		return "int64"
	}
	return "unsupported"
}

// Info describes one input or output of a model.
type Info struct {
	// Name is the tensor's name in the graph.
	Name string
	// Shape holds the declared dimensions; -1 marks a dynamic one.
	Shape []int64
	// Type is the element type.
	Type DataType
}

// Names returns the names of infos, in order.
func Names(infos []Info) []string {
	out := make([]string, len(infos))
	for i, x := range infos {
		out[i] = x.Name
	}
	return out
}

// Tensor is a dense, row-major tensor held in Go memory. Exactly one of the
// data slices is set, the one that matches Type.
type Tensor struct {
	Shape   []int64
	Type    DataType
	Float32 []float32
	Uint8   []uint8
	Int32   []int32
	Int64   []int64
}

// NewFloat32 returns a float32 tensor over data. It does not copy data.
func NewFloat32(data []float32, shape ...int64) Tensor {
	return Tensor{Shape: shape, Type: Float32, Float32: data}
}

// NewUint8 returns a uint8 tensor over data. It does not copy data.
func NewUint8(data []uint8, shape ...int64) Tensor {
	return Tensor{Shape: shape, Type: Uint8, Uint8: data}
}

// NewInt32 returns an int32 tensor over data. It does not copy data.
func NewInt32(data []int32, shape ...int64) Tensor {
	return Tensor{Shape: shape, Type: Int32, Int32: data}
}

// NewInt64 returns an int64 tensor over data. It does not copy data.
func NewInt64(data []int64, shape ...int64) Tensor {
	return Tensor{Shape: shape, Type: Int64, Int64: data}
}

// Len returns the number of elements the shape describes.
func (t Tensor) Len() int {
	n := 1
	for _, d := range t.Shape {
		n *= int(d)
	}
	return n
}

// check reports whether the data slice matches the type and shape.
func (t Tensor) check() error {
	var have int
	switch t.Type {
	case Float32:
		have = len(t.Float32)
	case Uint8:
		have = len(t.Uint8)
	case Int32:
		have = len(t.Int32)
	case Int64:
		have = len(t.Int64)
	default:
		return fmt.Errorf("tensor type %v is not supported", t.Type)
	}
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("tensor shape %v has a negative dimension", t.Shape)
		}
	}
	if want := t.Len(); have != want {
		return fmt.Errorf("tensor shape %v needs %d elements, have %d", t.Shape, want, have)
	}
	return nil
}

// Options tune a session.
type Options struct {
	// IntraOpThreads is the number of threads one operator may use; 0 lets
	// ONNX Runtime choose.
	IntraOpThreads int
	// InterOpThreads is the number of operators that may run at once; 0 lets
	// ONNX Runtime choose.
	InterOpThreads int
}
