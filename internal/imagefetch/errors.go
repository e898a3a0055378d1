package imagefetch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// StatusClientClosedRequest is the status of an Error caused by the caller
// canceling the request (nginx's 499): nobody is left to read it.
const StatusClientClosedRequest = 499

// Error is an error of Resolve or Fetch. Its text is safe to show to the
// client that sent the predict request: it names the image by its path
// (never a query string, which may hold a presigned URL's signature) and
// never contains a token.
type Error struct {
	// Status is the HTTP status the backend should answer with.
	Status int
	// Msg says what went wrong, for the client.
	Msg string
	// Err is the cause, or nil. It is sanitized like Msg.
	Err error
}

// Error returns Msg, followed by the cause when there is one.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// HTTPStatus returns the status the backend should answer with.
func (e *Error) HTTPStatus() int { return e.Status }

// badRef is the error for a reference that cannot be resolved.
func badRef(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf(format, args...)}
}

// transportError maps an error of http.Client.Do or of reading a body; a
// refused destination is a 403.
// It drops *url.Error's URL, which may carry a presigned signature.
func transportError(err error, verb, name string, timeout time.Duration) *Error {
	var refused *refusal
	if errors.As(err, &refused) {
		return refused.asError(name)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	var nerr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &nerr) && nerr.Timeout():
		return &Error{Status: http.StatusGatewayTimeout, Msg: fmt.Sprintf("%s %s: timed out (the limit is %s)", verb, name, timeout)}
	case errors.Is(err, context.Canceled):
		return &Error{Status: StatusClientClosedRequest, Msg: fmt.Sprintf("%s %s: request canceled", verb, name)}
	}
	return &Error{Status: http.StatusBadGateway, Msg: fmt.Sprintf("%s %s", verb, name), Err: err}
}
