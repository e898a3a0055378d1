package standin

// A minimal writer for the ONNX protobuf format (onnx/onnx.proto), enough to
// express small inference graphs: nodes with attributes, initializers with
// raw little-endian data, and typed graph inputs and outputs with fixed or
// symbolic dimensions. Fields are appended in call order, so the output is
// deterministic.

import (
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers, from onnx.proto.
const (
	modelIRVersion       = 1 // ModelProto.ir_version, int64
	modelProducerName    = 2 // ModelProto.producer_name, string
	modelProducerVersion = 3 // ModelProto.producer_version, string
	modelGraph           = 7 // ModelProto.graph, GraphProto
	modelOpsetImport     = 8 // ModelProto.opset_import, repeated OperatorSetIdProto

	opsetDomain  = 1 // OperatorSetIdProto.domain, string
	opsetVersion = 2 // OperatorSetIdProto.version, int64

	graphNode        = 1  // GraphProto.node, repeated NodeProto
	graphName        = 2  // GraphProto.name, string
	graphInitializer = 5  // GraphProto.initializer, repeated TensorProto
	graphInput       = 11 // GraphProto.input, repeated ValueInfoProto
	graphOutput      = 12 // GraphProto.output, repeated ValueInfoProto

	nodeInput     = 1 // NodeProto.input, repeated string
	nodeOutput    = 2 // NodeProto.output, repeated string
	nodeName      = 3 // NodeProto.name, string
	nodeOpType    = 4 // NodeProto.op_type, string
	nodeAttribute = 5 // NodeProto.attribute, repeated AttributeProto

	attrName = 1  // AttributeProto.name, string
	attrI    = 3  // AttributeProto.i, int64
	attrInts = 8  // AttributeProto.ints, repeated int64
	attrType = 20 // AttributeProto.type, AttributeType

	tensorDims     = 1 // TensorProto.dims, repeated int64
	tensorDataType = 2 // TensorProto.data_type, int32
	tensorName     = 8 // TensorProto.name, string
	tensorRawData  = 9 // TensorProto.raw_data, bytes

	valueInfoName = 1 // ValueInfoProto.name, string
	valueInfoType = 2 // ValueInfoProto.type, TypeProto

	typeTensorType = 1 // TypeProto.tensor_type, TypeProto.Tensor

	tensorTypeElemType = 1 // TypeProto.Tensor.elem_type, int32
	tensorTypeShape    = 2 // TypeProto.Tensor.shape, TensorShapeProto

	shapeDim = 1 // TensorShapeProto.dim, repeated Dimension

	dimValue = 1 // TensorShapeProto.Dimension.dim_value, int64
	dimParam = 2 // TensorShapeProto.Dimension.dim_param, string
)

// AttributeProto.AttributeType values.
const (
	attrTypeInt  = 2
	attrTypeInts = 7
)

// TensorProto.DataType values.
const (
	dtFloat = 1
	dtInt64 = 7
	dtBool  = 9
)

// The format and operator versions every model declares.
const (
	irVersion       = 8
	opsetVersion17  = 17
	producerName    = "sam-ml-backend/standin"
	producerVersion = "1"
)

// dim is one declared dimension: a fixed size, or a symbolic name when param
// is set.
type dim struct {
	value int64
	param string
}

func fixed(n int64) dim     { return dim{value: n} }
func symbolic(s string) dim { return dim{param: s} }

// attr is an encoded AttributeProto.
type attr []byte

func attrInt(name string, v int64) attr {
	b := appendString(nil, attrName, name)
	b = protowire.AppendTag(b, attrI, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(v))
	return appendVarintField(b, attrType, attrTypeInt)
}

func attrIntList(name string, vs ...int64) attr {
	b := appendString(nil, attrName, name)
	for _, v := range vs {
		b = protowire.AppendTag(b, attrInts, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(v))
	}
	return appendVarintField(b, attrType, attrTypeInts)
}

// graph accumulates the repeated fields of a GraphProto.
type graph struct {
	name    string
	nodes   []byte // tagged NodeProto fields
	inits   []byte // tagged TensorProto fields
	inputs  []byte // tagged ValueInfoProto fields
	outputs []byte // tagged ValueInfoProto fields
	seen    map[string]bool
	next    int
}

func newGraph(name string) *graph {
	return &graph{name: name, seen: make(map[string]bool)}
}

// define records a value name and panics on a duplicate: a graph with two
// producers of one name is a bug in this package, not a runtime condition.
func (g *graph) define(name string) {
	if g.seen[name] {
		panic(fmt.Sprintf("standin: value %q defined twice", name))
	}
	g.seen[name] = true
}

// input declares a graph input.
func (g *graph) input(name string, elem int32, dims ...dim) {
	g.define(name)
	g.inputs = protowire.AppendTag(g.inputs, graphInput, protowire.BytesType)
	g.inputs = protowire.AppendBytes(g.inputs, valueInfo(name, elem, dims))
}

// output declares a graph output; a node must produce name.
func (g *graph) output(name string, elem int32, dims ...dim) {
	g.outputs = protowire.AppendTag(g.outputs, graphOutput, protowire.BytesType)
	g.outputs = protowire.AppendBytes(g.outputs, valueInfo(name, elem, dims))
}

// floats adds a float32 initializer and returns its name. A nil shape makes
// a scalar.
func (g *graph) floats(name string, shape []int64, vs ...float32) string {
	raw := make([]byte, 0, 4*len(vs))
	for _, v := range vs {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
	}
	return g.initializer(name, dtFloat, shape, len(vs), raw)
}

// int64s adds an int64 initializer and returns its name. A nil shape makes a
// scalar.
func (g *graph) int64s(name string, shape []int64, vs ...int64) string {
	raw := make([]byte, 0, 8*len(vs))
	for _, v := range vs {
		raw = binary.LittleEndian.AppendUint64(raw, uint64(v))
	}
	return g.initializer(name, dtInt64, shape, len(vs), raw)
}

func (g *graph) initializer(name string, elem int32, shape []int64, n int, raw []byte) string {
	want := 1
	for _, d := range shape {
		want *= int(d)
	}
	if want != n {
		panic(fmt.Sprintf("standin: initializer %q has shape %v but %d values", name, shape, n))
	}
	g.define(name)
	var t []byte
	for _, d := range shape {
		t = appendVarintField(t, tensorDims, uint64(d))
	}
	t = appendVarintField(t, tensorDataType, uint64(elem))
	t = appendString(t, tensorName, name)
	t = protowire.AppendTag(t, tensorRawData, protowire.BytesType)
	t = protowire.AppendBytes(t, raw)
	g.inits = protowire.AppendTag(g.inits, graphInitializer, protowire.BytesType)
	g.inits = protowire.AppendBytes(g.inits, t)
	return name
}

// op adds a node with one output, named after the operator and a counter,
// and returns that name.
func (g *graph) op(opType string, inputs []string, attrs ...attr) string {
	g.next++
	out := fmt.Sprintf("%s_%d", opType, g.next)
	g.opTo(out, opType, inputs, attrs...)
	return out
}

// opTo adds a node whose single output is out.
func (g *graph) opTo(out, opType string, inputs []string, attrs ...attr) {
	for _, in := range inputs {
		if !g.seen[in] {
			panic(fmt.Sprintf("standin: node %s reads undefined value %q", out, in))
		}
	}
	g.define(out)
	var n []byte
	for _, in := range inputs {
		n = appendString(n, nodeInput, in)
	}
	n = appendString(n, nodeOutput, out)
	n = appendString(n, nodeName, out)
	n = appendString(n, nodeOpType, opType)
	for _, a := range attrs {
		n = protowire.AppendTag(n, nodeAttribute, protowire.BytesType)
		n = protowire.AppendBytes(n, a)
	}
	g.nodes = protowire.AppendTag(g.nodes, graphNode, protowire.BytesType)
	g.nodes = protowire.AppendBytes(g.nodes, n)
}

// model returns the encoded ModelProto holding g.
func (g *graph) model() []byte {
	gb := append([]byte(nil), g.nodes...)
	gb = appendString(gb, graphName, g.name)
	gb = append(gb, g.inits...)
	gb = append(gb, g.inputs...)
	gb = append(gb, g.outputs...)

	opset := appendString(nil, opsetDomain, "")
	opset = appendVarintField(opset, opsetVersion, opsetVersion17)

	m := appendVarintField(nil, modelIRVersion, irVersion)
	m = appendString(m, modelProducerName, producerName)
	m = appendString(m, modelProducerVersion, producerVersion)
	m = protowire.AppendTag(m, modelGraph, protowire.BytesType)
	m = protowire.AppendBytes(m, gb)
	m = protowire.AppendTag(m, modelOpsetImport, protowire.BytesType)
	m = protowire.AppendBytes(m, opset)
	return m
}

func valueInfo(name string, elem int32, dims []dim) []byte {
	var shape []byte
	for _, d := range dims {
		var db []byte
		if d.param != "" {
			db = appendString(nil, dimParam, d.param)
		} else {
			db = appendVarintField(nil, dimValue, uint64(d.value))
		}
		shape = protowire.AppendTag(shape, shapeDim, protowire.BytesType)
		shape = protowire.AppendBytes(shape, db)
	}
	tt := appendVarintField(nil, tensorTypeElemType, uint64(elem))
	tt = protowire.AppendTag(tt, tensorTypeShape, protowire.BytesType)
	tt = protowire.AppendBytes(tt, shape)

	typ := protowire.AppendTag(nil, typeTensorType, protowire.BytesType)
	typ = protowire.AppendBytes(typ, tt)

	vi := appendString(nil, valueInfoName, name)
	vi = protowire.AppendTag(vi, valueInfoType, protowire.BytesType)
	return protowire.AppendBytes(vi, typ)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// in lists node inputs.
func in(names ...string) []string { return names }
