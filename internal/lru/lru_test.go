package lru_test

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sam-ml-backend/sam-ml-backend/internal/lru"
)

func TestEvictsLeastRecentlyUsedByCost(t *testing.T) {
	var evicted []string
	c := lru.New(lru.Options[string, int]{MaxCost: 10, OnEvict: func(k string, _ int) { evicted = append(evicted, k) }})
	c.Add("a", 1, 4, 0)
	c.Add("b", 2, 4, 0)
	if _, ok := c.Get("a"); !ok { // a is now more recent than b
		t.Fatal("Get(a) missed right after Add")
	}
	c.Add("c", 3, 4, 0) // 12 > 10: evict b
	if _, ok := c.Get("b"); ok {
		t.Error("b survived; want it evicted as least recently used")
	}
	for _, k := range []string{"a", "c"} {
		if _, ok := c.Get(k); !ok {
			t.Errorf("Get(%s) missed, want hit", k)
		}
	}
	if got, want := fmt.Sprint(evicted), "[b]"; got != want {
		t.Errorf("evicted %s, want %s", got, want)
	}
	if got, want := c.Cost(), int64(8); got != want {
		t.Errorf("Cost() = %d, want %d", got, want)
	}
}

func TestTooCostlyEntryIsNotStored(t *testing.T) {
	c := lru.New(lru.Options[string, int]{MaxCost: 10})
	c.Add("a", 1, 5, 0)
	c.Add("big", 2, 11, 0)
	if _, ok := c.Get("big"); ok {
		t.Error("stored an entry costlier than MaxCost")
	}
	if _, ok := c.Get("a"); !ok {
		t.Error("a costlier entry evicted a fitting one")
	}
}

func TestReplaceKeepsCostRight(t *testing.T) {
	c := lru.New(lru.Options[string, int]{MaxCost: 10})
	c.Add("a", 1, 6, 0)
	c.Add("a", 2, 3, 0)
	if v, _ := c.Get("a"); v != 2 {
		t.Errorf("Get(a) = %d, want 2", v)
	}
	if got, want := c.Cost(), int64(3); got != want {
		t.Errorf("Cost() = %d, want %d", got, want)
	}
}

func TestTTL(t *testing.T) {
	now := time.Unix(1000, 0)
	c := lru.New(lru.Options[string, int]{MaxCost: 10, TTL: time.Minute, Now: func() time.Time { return now }})
	c.Add("a", 1, 1, 0)
	c.Add("short", 2, 1, time.Second)
	now = now.Add(2 * time.Second)
	if _, ok := c.Get("short"); ok {
		t.Error("entry with a 1 s TTL still there after 2 s")
	}
	if _, ok := c.Get("a"); !ok {
		t.Error("entry with the 1 min TTL gone after 2 s")
	}
	now = now.Add(time.Minute)
	if _, ok := c.Get("a"); ok {
		t.Error("entry still there after its TTL")
	}
	if got := c.Len(); got != 0 {
		t.Errorf("Len() = %d after expiry, want 0", got)
	}
}

func TestRemoveFuncAndClear(t *testing.T) {
	c := lru.New(lru.Options[int, int]{MaxCost: 100})
	for i := range 10 {
		c.Add(i, i, 1, 0)
	}
	if n := c.RemoveFunc(func(k, _ int) bool { return k%2 == 0 }); n != 5 {
		t.Errorf("RemoveFunc removed %d, want 5", n)
	}
	if !c.Remove(1) || c.Remove(1) {
		t.Error("Remove(1) should report true once, then false")
	}
	c.Clear()
	if c.Len() != 0 || c.Cost() != 0 {
		t.Errorf("after Clear: Len %d Cost %d, want 0 0", c.Len(), c.Cost())
	}
	c.Add(1, 1, 1, 0) // the list must still work after Clear
	if _, ok := c.Get(1); !ok {
		t.Error("Get after Clear+Add missed")
	}
}

func TestConcurrentUse(t *testing.T) {
	c := lru.New(lru.Options[string, int]{MaxCost: 50})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				k := strconv.Itoa((g*7 + i) % 100)
				c.Add(k, i, 1, 0)
				c.Get(k)
			}
		})
	}
	wg.Wait()
	if c.Cost() > 50 || int64(c.Len()) != c.Cost() {
		t.Errorf("Cost %d Len %d: want equal and at most 50", c.Cost(), c.Len())
	}
}

func BenchmarkGetHit(b *testing.B) {
	c := lru.New(lru.Options[string, string]{MaxCost: 128})
	c.Add("12.1700000000", "Token abc", 1, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Get("12.1700000000"); !ok {
			b.Fatal("miss")
		}
	}
}

func ExampleCache() {
	c := lru.New(lru.Options[string, []byte]{MaxCost: 1 << 20}) // 1 MiB
	img := make([]byte, 600<<10)
	c.Add("a.jpg", img, int64(len(img)), 0)
	c.Add("b.jpg", img, int64(len(img)), 0) // evicts a.jpg
	_, okA := c.Get("a.jpg")
	_, okB := c.Get("b.jpg")
	fmt.Println(okA, okB)
	// Output: false true
}

func TestCoarseClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := lru.NewCoarseClock(100 * time.Millisecond)
		defer c.Stop()
		start := c.Now()
		time.Sleep(250 * time.Millisecond)
		synctest.Wait()
		if got := c.Now().Sub(start); got != 200*time.Millisecond {
			t.Errorf("after 250 ms of fake time the clock moved %v, want 200ms (two ticks)", got)
		}
	})
}

func BenchmarkGetHitTTLCoarse(b *testing.B) {
	clock := lru.NewCoarseClock(time.Second)
	defer clock.Stop()
	c := lru.New(lru.Options[string, string]{MaxCost: 128, TTL: time.Minute, Now: clock.Now})
	c.Add("12.1700000000", "Token abc", 1, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Get("12.1700000000"); !ok {
			b.Fatal("miss")
		}
	}
}

func TestEachSkipsExpiredAndKeepsOrder(t *testing.T) {
	now := time.Unix(1000, 0)
	c := lru.New(lru.Options[string, int]{MaxCost: 10, Now: func() time.Time { return now }})
	c.Add("a", 1, 1, 0)
	c.Add("b", 2, 1, time.Second)
	c.Add("c", 3, 1, time.Minute)
	c.Get("a") // most recent now
	now = now.Add(2 * time.Second)
	var got []string
	c.Each(func(k string, v int) { got = append(got, fmt.Sprint(k, v)) })
	if fmt.Sprint(got) != "[a1 c3]" {
		t.Errorf("Each saw %v, want [a1 c3]", got)
	}
	got = nil
	c.Each(func(k string, v int) { got = append(got, k) })
	if fmt.Sprint(got) != "[a c]" {
		t.Errorf("a second Each saw %v: Each changed the order", got)
	}
}
