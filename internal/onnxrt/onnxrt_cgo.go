//go:build cgo

package onnxrt

import (
	"context"
	"fmt"
	"os"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

var env struct {
	mu      sync.Mutex
	path    string
	version string
}

// Init loads the ONNX Runtime shared library at libPath and creates the
// process-wide runtime environment. It returns the library's version. Calling
// it again with the same path is a no-op; with another path it is an error,
// because a process can hold only one runtime.
func Init(libPath string) (version string, err error) {
	env.mu.Lock()
	defer env.mu.Unlock()
	if env.path != "" {
		if env.path != libPath {
			return "", fmt.Errorf("init onnx runtime: already loaded from %s", env.path)
		}
		return env.version, nil
	}
	if _, err := os.Stat(libPath); err != nil {
		return "", fmt.Errorf("init onnx runtime: %w", err)
	}
	ort.SetSharedLibraryPath(libPath)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return "", fmt.Errorf("init onnx runtime from %s: %w", libPath, err)
	}
	// The npm build bundles Microsoft's telemetry library; the backend
	// sends nothing anywhere but Label Studio.
	if err := ort.DisableTelemetry(); err != nil {
		ort.DestroyEnvironment()
		return "", fmt.Errorf("disable onnx runtime telemetry: %w", err)
	}
	env.path, env.version = libPath, ort.GetVersion()
	return env.version, nil
}

// Version returns the loaded library's version, or "" before Init.
func Version() string {
	env.mu.Lock()
	defer env.mu.Unlock()
	return env.version
}

// Session is one loaded model. It is safe for concurrent use by multiple
// goroutines; Close must not race with Run.
type Session struct {
	s        *ort.DynamicAdvancedSession
	inputs   []Info
	outputs  []Info
	inNames  []string
	outNames []string
}

// NewSession loads the ONNX model in data. Inputs and outputs are the names
// that Run takes and returns, in order; nil means every input, or every
// output, in the model's order.
func NewSession(data []byte, inputs, outputs []string, opts Options) (*Session, error) {
	return newSession(model{data: data}, inputs, outputs, opts)
}

// NewSessionFile loads the ONNX model at path. Unlike NewSession it finds a
// model's external data file (such as SAM ViT-H's) beside it.
func NewSessionFile(path string, inputs, outputs []string, opts Options) (*Session, error) {
	return newSession(model{path: path}, inputs, outputs, opts)
}

// model is an ONNX model in memory or on disk.
type model struct {
	data []byte
	path string
}

func newSession(m model, inputs, outputs []string, opts Options) (*Session, error) {
	if Version() == "" {
		return nil, ErrUnavailable
	}
	var ins, outs []ort.InputOutputInfo
	var err error
	if m.path != "" {
		ins, outs, err = ort.GetInputOutputInfo(m.path)
	} else {
		ins, outs, err = ort.GetInputOutputInfoWithONNXData(m.data)
	}
	if err != nil {
		return nil, fmt.Errorf("read model signature: %w", err)
	}
	s := &Session{inputs: convertInfo(ins), outputs: convertInfo(outs)}
	if inputs == nil {
		inputs = Names(s.inputs)
	}
	if outputs == nil {
		outputs = Names(s.outputs)
	}
	if err := known("input", inputs, s.inputs); err != nil {
		return nil, err
	}
	if err := known("output", outputs, s.outputs); err != nil {
		return nil, err
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("create session options: %w", err)
	}
	defer so.Destroy()
	if opts.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(opts.IntraOpThreads); err != nil {
			return nil, fmt.Errorf("set intra-op threads: %w", err)
		}
	}
	if opts.InterOpThreads > 0 {
		if err := so.SetInterOpNumThreads(opts.InterOpThreads); err != nil {
			return nil, fmt.Errorf("set inter-op threads: %w", err)
		}
	}
	if m.path != "" {
		s.s, err = ort.NewDynamicAdvancedSession(m.path, inputs, outputs, so)
	} else {
		s.s, err = ort.NewDynamicAdvancedSessionWithONNXData(m.data, inputs, outputs, so)
	}
	if err != nil {
		return nil, fmt.Errorf("create session: %w", err)
	}
	s.inNames, s.outNames = inputs, outputs
	return s, nil
}

// InputNames returns the names Run takes, in order.
func (s *Session) InputNames() []string { return s.inNames }

// OutputNames returns the names Run returns, in order.
func (s *Session) OutputNames() []string { return s.outNames }

// Inputs describes the model's inputs, in the model's order.
func (s *Session) Inputs() []Info { return s.inputs }

// Outputs describes the model's outputs, in the model's order.
func (s *Session) Outputs() []Info { return s.outputs }

// Run feeds inputs, in the order given to NewSession, and returns the
// outputs, in that order, copied into Go memory. Cancelling ctx terminates the
// run.
func (s *Session) Run(ctx context.Context, inputs []Tensor) ([]Tensor, error) {
	if len(inputs) != len(s.inNames) {
		return nil, fmt.Errorf("run model: got %d inputs, want %d", len(inputs), len(s.inNames))
	}
	in := make([]ort.Value, len(inputs))
	defer func() {
		for _, v := range in {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i, t := range inputs {
		v, err := toValue(t)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", s.inNames[i], err)
		}
		in[i] = v
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("run model: %w", context.Cause(ctx))
	}
	ro, err := ort.NewRunOptions()
	if err != nil {
		return nil, fmt.Errorf("create run options: %w", err)
	}
	// Cancelling ctx terminates the run. A Terminate that has started must
	// finish before the options are destroyed.
	terminated := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(terminated)
		ro.Terminate()
	})
	defer func() {
		if !stop() {
			<-terminated
		}
		ro.Destroy()
	}()

	out := make([]ort.Value, len(s.outNames))
	err = s.s.RunWithOptions(in, out, ro)
	defer func() {
		for _, v := range out {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("run model: %w", context.Cause(ctx))
		}
		return nil, fmt.Errorf("run model: %w", err)
	}
	res := make([]Tensor, len(out))
	for i, v := range out {
		t, err := fromValue(v)
		if err != nil {
			return nil, fmt.Errorf("output %d: %w", i, err)
		}
		res[i] = t
	}
	return res, nil
}

// Close releases the native session.
func (s *Session) Close() error {
	if s.s == nil {
		return nil
	}
	err := s.s.Destroy()
	s.s = nil
	return err
}

func toValue(t Tensor) (ort.Value, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	shape := ort.NewShape(t.Shape...)
	switch t.Type {
	case Float32:
		return ort.NewTensor(shape, t.Float32)
	case Uint8:
		return ort.NewTensor(shape, t.Uint8)
	case Int32:
		return ort.NewTensor(shape, t.Int32)
	case Int64:
		return ort.NewTensor(shape, t.Int64)
	}
	return nil, fmt.Errorf("tensor type %v is not supported", t.Type)
}

// fromValue returns the data of an output that ONNX Runtime allocated. The
// wrapper has already copied it into Go memory, so the slice outlives v.
func fromValue(v ort.Value) (Tensor, error) {
	shape := []int64(v.GetShape().Clone())
	switch x := v.(type) {
	case *ort.Tensor[float32]:
		return NewFloat32(x.GetData(), shape...), nil
	case *ort.Tensor[uint8]:
		return NewUint8(x.GetData(), shape...), nil
	case *ort.Tensor[int32]:
		return NewInt32(x.GetData(), shape...), nil
	case *ort.Tensor[int64]:
		return NewInt64(x.GetData(), shape...), nil
	}
	return Tensor{}, fmt.Errorf("output of type %T is not supported", v)
}

func convertInfo(in []ort.InputOutputInfo) []Info {
	out := make([]Info, len(in))
	for i, x := range in {
		out[i] = Info{Name: x.Name, Shape: []int64(x.Dimensions.Clone()), Type: convertType(x.DataType)}
	}
	return out
}

func convertType(t ort.TensorElementDataType) DataType {
	switch t {
	case ort.TensorElementDataTypeFloat:
		return Float32
	case ort.TensorElementDataTypeUint8:
		return Uint8
	case ort.TensorElementDataTypeInt32:
		return Int32
	case ort.TensorElementDataTypeInt64:
		return Int64
	}
	return Unsupported
}

// known checks that every name is one of the model's.
func known(kind string, want []string, have []Info) error {
	for _, n := range want {
		found := false
		for _, h := range have {
			found = found || h.Name == n
		}
		if !found {
			return fmt.Errorf("model has no %s named %q; it has %v", kind, n, Names(have))
		}
	}
	return nil
}
