// Package archtest holds tests of the module's shape: every package is
// documented, native code stays fenced in internal/onnxrt, and internal
// packages import each other only in the intended direction.
package archtest
