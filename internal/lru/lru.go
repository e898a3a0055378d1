// Package lru provides a concurrency-safe least-recently-used cache bounded by
// a total cost, with an optional time to live per entry.
//
// The cost of an entry is whatever the owner says it is: 1 for a cache
// bounded by entry count, or the bytes an entry holds for a cache bounded by
// memory. Time comes from an injected clock, so tests need not sleep.
package lru

import (
	"sync"
	"time"
)

// Cache is a least-recently-used cache. Its methods are safe for concurrent
// use. Create one with New; the zero value is not usable.
type Cache[K comparable, V any] struct {
	mu      sync.Mutex
	maxCost int64
	ttl     time.Duration
	now     func() time.Time
	onEvict func(K, V)

	cost  int64
	items map[K]*entry[K, V]
	// head.next is the most recently used entry, head.prev the least.
	head entry[K, V]
}

type entry[K comparable, V any] struct {
	key        K
	val        V
	cost       int64
	expires    time.Time // zero: never
	prev, next *entry[K, V]
}

// Options configure a Cache.
type Options[K comparable, V any] struct {
	// MaxCost bounds the sum of the entries' costs. An entry whose own cost
	// exceeds it is not stored.
	MaxCost int64
	// TTL is how long an entry lives after it was added; 0 means forever.
	TTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OnEvict, if set, is called for every entry removed to make room, with
	// the cache's lock held: it must not call back into the cache.
	OnEvict func(K, V)
}

// New returns an empty cache.
func New[K comparable, V any](opts Options[K, V]) *Cache[K, V] {
	c := &Cache[K, V]{
		maxCost: opts.MaxCost,
		ttl:     opts.TTL,
		now:     opts.Now,
		onEvict: opts.OnEvict,
		items:   make(map[K]*entry[K, V]),
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.head.next, c.head.prev = &c.head, &c.head
	return c
}

// Get returns the value stored under key and marks it as recently used. An
// expired entry is removed and reported as missing.
func (c *Cache[K, V]) Get(key K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		var zero V
		return zero, false
	}
	if !e.expires.IsZero() && !c.now().Before(e.expires) {
		c.remove(e)
		var zero V
		return zero, false
	}
	c.moveToFront(e)
	return e.val, true
}

// Add stores val under key with the given cost, replacing any earlier value,
// and evicts least recently used entries until the total cost fits. ttl
// overrides the cache's TTL for this entry when it is positive.
func (c *Cache[K, V]) Add(key K, val V, cost int64, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.remove(e)
	}
	if cost > c.maxCost {
		return
	}
	if ttl <= 0 {
		ttl = c.ttl
	}
	e := &entry[K, V]{key: key, val: val, cost: cost}
	if ttl > 0 {
		e.expires = c.now().Add(ttl)
	}
	c.items[key] = e
	c.cost += cost
	c.pushFront(e)
	for c.cost > c.maxCost {
		old := c.head.prev
		c.remove(old)
		if c.onEvict != nil {
			c.onEvict(old.key, old.val)
		}
	}
}

// Remove deletes key and reports whether it was present.
func (c *Cache[K, V]) Remove(key K) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if ok {
		c.remove(e)
	}
	return ok
}

// RemoveFunc deletes every entry for which match returns true and returns how
// many it deleted. match runs with the cache's lock held.
func (c *Cache[K, V]) RemoveFunc(match func(K, V) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, e := range c.items {
		if match(e.key, e.val) {
			c.remove(e)
			n++
		}
	}
	return n
}

// Each calls fn for every entry that has not expired, most recently used
// first, with the cache's lock held: fn must not call back into the cache.
// It does not change the entries' order.
func (c *Cache[K, V]) Each(fn func(K, V)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Time{}
	for e := c.head.next; e != &c.head; e = e.next {
		if !e.expires.IsZero() {
			if now.IsZero() {
				now = c.now()
			}
			if !now.Before(e.expires) {
				continue
			}
		}
		fn(e.key, e.val)
	}
}

// Clear deletes every entry.
func (c *Cache[K, V]) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.items)
	c.cost = 0
	c.head.next, c.head.prev = &c.head, &c.head
}

// Len returns the number of entries, expired ones included.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

// Cost returns the total cost of the entries.
func (c *Cache[K, V]) Cost() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cost
}

func (c *Cache[K, V]) remove(e *entry[K, V]) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
	delete(c.items, e.key)
	c.cost -= e.cost
}

func (c *Cache[K, V]) pushFront(e *entry[K, V]) {
	e.prev, e.next = &c.head, c.head.next
	c.head.next.prev = e
	c.head.next = e
}

func (c *Cache[K, V]) moveToFront(e *entry[K, V]) {
	if c.head.next == e {
		return
	}
	e.prev.next, e.next.prev = e.next, e.prev
	c.pushFront(e)
}
