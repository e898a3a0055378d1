package lru

import (
	"sync"
	"sync/atomic"
	"time"
)

// CoarseClock is a clock that reads the system time once per resolution
// instead of on every call. Reading the clock costs tens of nanoseconds on
// some virtual machines, more than the rest of a cache hit; a TTL of
// minutes does not need better than a fraction of a second.
type CoarseClock struct {
	now  atomic.Int64 // unix nanoseconds
	stop chan struct{}
	once sync.Once
}

// NewCoarseClock starts a clock that ticks every resolution. Stop it when
// done.
func NewCoarseClock(resolution time.Duration) *CoarseClock {
	c := &CoarseClock{stop: make(chan struct{})}
	c.now.Store(time.Now().UnixNano())
	go func() {
		t := time.NewTicker(resolution)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case now := <-t.C:
				c.now.Store(now.UnixNano())
			}
		}
	}()
	return c
}

// Now returns the time of the last tick.
func (c *CoarseClock) Now() time.Time { return time.Unix(0, c.now.Load()) }

// Stop stops the clock's goroutine; Now keeps returning the last tick.
// Stopping twice is harmless.
func (c *CoarseClock) Stop() { c.once.Do(func() { close(c.stop) }) }
