// Package predict answers one interactive prediction: it reads the click or
// box from the request, gets the image's SAM embedding (from its cache, or by
// fetching and encoding the image once however many requests ask at the same
// time), decodes the mask and returns it as a Label Studio brush region.
package predict

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	ls "github.com/sam-ml-backend/sam-ml-backend/internal/labelstudio"
	"github.com/sam-ml-backend/sam-ml-backend/internal/lru"
	"github.com/sam-ml-backend/sam-ml-backend/internal/rle"
	"github.com/sam-ml-backend/sam-ml-backend/internal/sam"
)

// Images finds and fetches task images.
type Images interface {
	// Key identifies the image a task's data value refers to, as seen by
	// the project's tenant: two organizations never share a cached
	// embedding, since each must be able to fetch the image itself.
	Key(ctx context.Context, ref string, taskID int64, project string) (string, error)
	// Fetch downloads and decodes the image, oriented as displayed.
	Fetch(ctx context.Context, ref string, taskID int64, project string) (image.Image, error)
}

// Binder checks that a request's task belongs to its project and that the
// image it names is the task's own, against Label Studio's database. It
// returns a *Error (403) when they do not match, and nil when they do or
// when the database cannot say.
type Binder interface {
	CheckTask(ctx context.Context, project string, taskID int64, dataKey, ref string) error
}

// Segmenter runs SAM.
type Segmenter interface {
	// Encode computes an image's embedding.
	Encode(ctx context.Context, img image.Image) (*sam.Embedding, error)
	// Decode computes the mask for a prompt.
	Decode(ctx context.Context, e *sam.Embedding, p sam.Prompt) (*sam.Mask, error)
}

// Defaults for Options.
const (
	// DefaultCacheBytes holds 64 embeddings of 4 MiB.
	DefaultCacheBytes = 256 << 20
	// DefaultEncoderConcurrency runs one encoder at a time: ONNX Runtime
	// already uses every core for one image.
	DefaultEncoderConcurrency = 1
	// fetchConcurrency bounds downloads and decodes at once: a decoded
	// image of MAX_IMAGE_PIXELS can take hundreds of MB.
	fetchConcurrency = 2
	// maskConcurrency bounds decoder runs, and the masks they make, at
	// once: each is a few milliseconds.
	maskConcurrency = 4
	// DefaultMaxQueue is how many images may wait for the encoder.
	DefaultMaxQueue = 16
	// DefaultMaxPixels bounds the editor's idea of an image's size, which
	// the mask is drawn at, as MAX_IMAGE_PIXELS does by default.
	DefaultMaxPixels = 100_000_000
	// busyRetryAfter is what a client refused for a full queue is told.
	busyRetryAfter = 5 * time.Second
)

// Options configure a Service.
type Options struct {
	// ModelVersion is put on every prediction.
	ModelVersion string
	// CacheBytes bounds the embedding cache; 0 means DefaultCacheBytes, a
	// negative value turns the cache off (every click encodes again).
	CacheBytes int64
	// EncoderConcurrency bounds concurrent encoder runs; 0 means
	// DefaultEncoderConcurrency.
	EncoderConcurrency int
	// Logger receives one line per prediction; nil discards.
	Logger *slog.Logger
	// Observe, if set, is called with the stage timings of every
	// successful prediction.
	Observe func(Timings)
	// ObserveEncode, if set, is called with the time of every successful
	// encoder run (one per image, however many predictions share it).
	ObserveEncode func(time.Duration)
	// Binder, if set, binds each request to its task before anything is
	// fetched.
	Binder Binder
	// TenantOf, if set, names the tenant (the organization) an image key
	// belongs to, so that one tenant cannot take every slot: a quarter of
	// the images being prepared or queued stay for the others, and a
	// tenant makes fetchConcurrency-1 downloads at once, so that images
	// stuck on a slow server of one tenant leave room for the others.
	TenantOf func(key string) string
	// MaxPixels bounds the size of the mask when the editor's idea of the
	// image's size differs from the image's (MAX_IMAGE_PIXELS); 0 means
	// DefaultMaxPixels.
	MaxPixels int64
	// MaxQueue bounds the images waiting for an encoder slot beyond those
	// being encoded; a new image past it gets a 503 with Retry-After. 0
	// means DefaultMaxQueue.
	MaxQueue int
}

// Service makes predictions. It is safe for concurrent use.
type Service struct {
	images    Images
	seg       Segmenter
	version   string
	log       *slog.Logger
	cache     *lru.Cache[string, *sam.Embedding]
	encSlot   chan struct{}
	fetchSlot chan struct{}
	maskSlot  chan struct{} // decoder runs and their masks
	binder    Binder
	maxFlying int   // flights allowed at once: encoder slots plus the queue
	maxPixels int64 // the largest mask
	tenantOf  func(string) string
	perTenant int                     // flights one tenant may hold
	tenants   map[string]*tenantState // guarded by mu
	running   sync.WaitGroup          // flights under way

	mu      sync.Mutex // guards flights, closed, and cache lookups with them
	flights map[string]*flight
	closed  bool

	observe       func(Timings)
	observeEncode func(time.Duration)
	stats         struct{ fetches, encodes, hits, misses, evictions atomic.Int64 }
}

// New returns a Service.
func New(images Images, seg Segmenter, opts Options) *Service {
	if opts.CacheBytes == 0 {
		opts.CacheBytes = DefaultCacheBytes
	}
	if opts.EncoderConcurrency <= 0 {
		opts.EncoderConcurrency = DefaultEncoderConcurrency
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = DefaultMaxQueue
	}
	if opts.MaxPixels <= 0 {
		opts.MaxPixels = DefaultMaxPixels
	}
	s := &Service{
		images:        images,
		seg:           seg,
		version:       opts.ModelVersion,
		log:           opts.Logger,
		encSlot:       make(chan struct{}, opts.EncoderConcurrency),
		fetchSlot:     make(chan struct{}, fetchConcurrency),
		maskSlot:      make(chan struct{}, maskConcurrency),
		observe:       opts.Observe,
		observeEncode: opts.ObserveEncode,
		binder:        opts.Binder,
		maxFlying:     opts.EncoderConcurrency + opts.MaxQueue,
		maxPixels:     opts.MaxPixels,
		tenantOf:      opts.TenantOf,
		perTenant:     perTenant(opts.EncoderConcurrency + opts.MaxQueue),
		tenants:       make(map[string]*tenantState),
		flights:       make(map[string]*flight),
	}
	s.cache = lru.New(lru.Options[string, *sam.Embedding]{
		MaxCost: max(opts.CacheBytes, 0),
		OnEvict: func(string, *sam.Embedding) { s.stats.evictions.Add(1) },
	})
	return s
}

// Stats counts the work a Service did.
type Stats struct {
	// Fetches is the number of image downloads.
	Fetches int64
	// Encodes is the number of encoder runs.
	Encodes int64
	// CacheHits is the number of predictions that found the embedding cached.
	CacheHits int64
	// CacheMisses is the number of predictions that did not, and waited
	// for the image to be fetched and encoded (or shared another's wait).
	CacheMisses int64
	// Evictions is the number of embeddings dropped to make room.
	Evictions int64
	// CachedBytes is the memory the cached embeddings hold.
	CachedBytes int64
}

// Stats returns the counters.
func (s *Service) Stats() Stats {
	return Stats{
		Fetches:     s.stats.fetches.Load(),
		Encodes:     s.stats.encodes.Load(),
		CacheHits:   s.stats.hits.Load(),
		CacheMisses: s.stats.misses.Load(),
		Evictions:   s.stats.evictions.Load(),
		CachedBytes: s.cache.Cost(),
	}
}

// Error is a prediction failure whose message is safe to show the client.
type Error struct {
	// Status is the HTTP status to answer with.
	Status int
	// Msg says what went wrong.
	Msg string
	// Err is the cause, for the log.
	Err error
	// RetryAfter, when set, tells the client when to try again.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// HTTPStatus returns the status to answer with.
func (e *Error) HTTPStatus() int { return e.Status }

// RetryAfterSeconds returns when the client may try again, or 0.
func (e *Error) RetryAfterSeconds() int { return int(e.RetryAfter.Seconds()) }

func badRequest(err error) error {
	return &Error{Status: 400, Msg: err.Error(), Err: err}
}

// Timings are the durations of a prediction's stages.
type Timings struct {
	Fetch, Encode, Decode, DecoderRun, RLE time.Duration
	CacheHit                               bool
}

// Predict answers a predict request. A request without an interactive
// context gets no results, as with the reference.
func (s *Service) Predict(ctx context.Context, req *ls.PredictRequest) (*ls.PredictResponse, error) {
	start := time.Now()
	in, err := ls.ParseInteraction(req.Params.Context)
	if errors.Is(err, ls.ErrNoContext) {
		return &ls.PredictResponse{Results: []ls.Prediction{}}, nil
	}
	if err != nil {
		return nil, badRequest(err)
	}
	target, err := ls.ParseBrushTarget(req.LabelConfig)
	if err != nil {
		return nil, badRequest(err)
	}
	if len(req.Tasks) == 0 {
		return nil, badRequest(errors.New("tasks is empty"))
	}
	task := req.Tasks[0]
	ref, err := task.ImageRef(target.DataKey)
	if err != nil {
		return nil, badRequest(err)
	}
	prompt := toPrompt(in)
	if len(prompt.Points) == 0 && prompt.Box == nil {
		return nil, badRequest(errors.New("context has no keypoint and no rectangle to segment from"))
	}
	key, err := s.images.Key(ctx, ref, task.ID, string(req.Project))
	if err != nil {
		return nil, fmt.Errorf("resolve image of task %d: %w", task.ID, err)
	}
	if s.binder != nil {
		if err := s.binder.CheckTask(ctx, string(req.Project), task.ID, target.DataKey, ref); err != nil {
			return nil, err
		}
	}

	var t Timings
	emb, err := s.embedding(ctx, key, ref, task.ID, string(req.Project), &t)
	if err != nil {
		return nil, err
	}
	if emb.Width != in.Width || emb.Height != in.Height {
		// The mask is drawn at the editor's size, which the request
		// states: bound it as images are, or one request could ask
		// for a mask of a terabyte.
		if editor := int64(in.Width) * int64(in.Height); editor > s.maxPixels {
			return nil, badRequest(fmt.Errorf("the editor's image size %dx%d (original_width, original_height) is over the limit of %d pixels (MAX_IMAGE_PIXELS), and not the image's %dx%d",
				in.Width, in.Height, s.maxPixels, emb.Width, emb.Height))
		}
		// The editor saw another size (a resized copy, or a browser that
		// ignores EXIF orientation). Take the click's percentages of the
		// image we have, and give the mask the editor's size, or the
		// editor could not draw it.
		s.log.WarnContext(ctx, "image size differs from the editor's; scaling the prompt and the mask",
			"task", task.ID, "image", fmt.Sprintf("%dx%d", emb.Width, emb.Height),
			"editor", fmt.Sprintf("%dx%d", in.Width, in.Height))
		at, err := ls.ParseInteractionAt(req.Params.Context, emb.Width, emb.Height)
		if err != nil {
			return nil, badRequest(err)
		}
		prompt = toPrompt(at)
	}

	// A mask slot is held from the decoder run to the RLE: masks at the
	// editor's size can take hundreds of MB each.
	select {
	case s.maskSlot <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the decoder: %w", context.Cause(ctx))
	}
	defer func() { <-s.maskSlot }()
	t0 := time.Now()
	mask, err := s.decode(ctx, emb, prompt)
	if err != nil {
		if errors.Is(err, sam.ErrEmptyPrompt) {
			return nil, badRequest(err)
		}
		return nil, fmt.Errorf("decode mask: %w", err)
	}
	t.Decode, t.DecoderRun = time.Since(t0), mask.RunTime

	t0 = time.Now()
	region := ls.Region{
		FromName:       target.FromName,
		ID:             regionID(),
		ImageRotation:  0,
		OriginalHeight: in.Height,
		OriginalWidth:  in.Width,
		Readonly:       false,
		Score:          float64(mask.Score),
		ToName:         target.ToName,
		Type:           "brushlabels",
		Value: ls.BrushValue{
			BrushLabels: []string{in.Label},
			Format:      "rle",
			RLE:         rle.Encode(resizeNearest(mask, in.Width, in.Height)),
		},
	}
	t.RLE = time.Since(t0)

	s.log.InfoContext(ctx, "prediction",
		"project", string(req.Project), "task", task.ID,
		"points", len(prompt.Points), "box", prompt.Box != nil,
		"cache_hit", t.CacheHit,
		"fetch_ms", ms(t.Fetch), "encode_ms", ms(t.Encode),
		"decode_ms", ms(t.Decode), "decoder_run_ms", ms(t.DecoderRun), "rle_ms", ms(t.RLE),
		"total_ms", ms(time.Since(start)))
	if s.observe != nil {
		s.observe(t)
	}
	return &ls.PredictResponse{Results: []ls.Prediction{{
		ModelVersion: s.version,
		Result:       []ls.Region{region},
		Score:        region.Score,
	}}}, nil
}

// flight is one fetch-and-encode of an image, shared by every request that
// asks for the image while it runs.
type flight struct {
	tenant  *tenantState  // nil without TenantOf
	done    chan struct{} // closed when emb or err is set
	emb     *sam.Embedding
	err     error
	fetch   time.Duration
	encode  time.Duration
	waiters int                // requests waiting; guarded by Service.mu
	cancel  context.CancelFunc // stops the work when the last waiter leaves
}

// perTenant is how many of flights one tenant may hold: all but a quarter.
func perTenant(flights int) int { return max(1, flights-max(1, flights/4)) }

// tenantState is what one tenant holds; guarded by Service.mu.
type tenantState struct {
	name    string
	flights int
	fetch   chan struct{} // its download slots
}

// embedding returns the cached embedding of the image under key, or fetches
// and encodes it. Concurrent callers for one key share one flight. A caller
// that gives up leaves the flight running for the others; when the last one
// gives up, the flight is cancelled, so abandoned work does not pile up.
func (s *Service) embedding(ctx context.Context, key, ref string, taskID int64, project string, t *Timings) (*sam.Embedding, error) {
	s.mu.Lock()
	if e, ok := s.cache.Get(key); ok {
		s.mu.Unlock()
		s.stats.hits.Add(1)
		t.CacheHit = true
		s.log.DebugContext(ctx, "embedding cache hit", "task", taskID, "project", project)
		return e, nil
	}
	f, joined := s.flights[key]
	if !joined {
		if s.closed {
			s.mu.Unlock()
			return nil, &Error{Status: 503, Msg: "the backend is shutting down"}
		}
		if len(s.flights) >= s.maxFlying {
			n := len(s.flights)
			s.mu.Unlock()
			return nil, &Error{Status: 503, RetryAfter: busyRetryAfter,
				Msg: fmt.Sprintf("the backend is busy: %d images are being prepared or wait for the encoder; try again shortly", n)}
		}
		var ts *tenantState
		if s.tenantOf != nil {
			name := s.tenantOf(key)
			if ts = s.tenants[name]; ts == nil {
				ts = &tenantState{name: name, fetch: make(chan struct{}, max(1, fetchConcurrency-1))}
				s.tenants[name] = ts
			}
			if ts.flights >= s.perTenant {
				n := ts.flights
				s.mu.Unlock()
				return nil, &Error{Status: 503, RetryAfter: busyRetryAfter,
					Msg: fmt.Sprintf("the backend is busy with this organization's images: %d are being prepared or wait for the encoder, its share; try again shortly", n)}
			}
			ts.flights++
		}
		work, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{tenant: ts, done: make(chan struct{}), cancel: cancel}
		s.flights[key] = f
		s.running.Add(1)
		go s.fly(work, f, key, ref, taskID, project)
	}
	f.waiters++
	s.mu.Unlock()
	s.stats.misses.Add(1)

	select {
	case <-f.done:
		if f.err != nil {
			return nil, f.err
		}
		if !joined {
			t.Fetch, t.Encode = f.fetch, f.encode
		}
		return f.emb, nil
	case <-ctx.Done():
		s.mu.Lock()
		if f.waiters--; f.waiters == 0 {
			f.cancel()
		}
		s.mu.Unlock()
		return nil, fmt.Errorf("wait for image embedding: %w", context.Cause(ctx))
	}
}

// fly runs a flight: it fetches and encodes the image, caches the result
// and wakes the waiters. A panic in a decoder or in the model becomes the
// flight's error rather than killing the process.
func (s *Service) fly(ctx context.Context, f *flight, key, ref string, taskID int64, project string) {
	defer s.running.Done()
	defer f.cancel()
	defer func() {
		if r := recover(); r != nil {
			s.log.ErrorContext(ctx, "panic while preparing an image", "task", taskID, "panic", r, "stack", string(debug.Stack()))
			f.emb, f.err = nil, fmt.Errorf("prepare image of task %d: internal error", taskID)
		}
		s.mu.Lock()
		if f.err == nil {
			s.cache.Add(key, f.emb, f.emb.Bytes(), 0)
		}
		delete(s.flights, key)
		if ts := f.tenant; ts != nil {
			if ts.flights--; ts.flights == 0 {
				delete(s.tenants, ts.name)
			}
		}
		s.mu.Unlock()
		close(f.done)
	}()

	// A download slot (the tenant's, then one of the service's) is held
	// from the download until the encoder takes the image: decoded images,
	// hundreds of MB each, do not pile up behind a busy encoder, and no
	// tenant's images queue ahead of another's by more than one.
	var tenantSlot chan struct{}
	if f.tenant != nil {
		select {
		case f.tenant.fetch <- struct{}{}:
			tenantSlot = f.tenant.fetch
		case <-ctx.Done():
			f.err = fmt.Errorf("wait to fetch the image: %w", context.Cause(ctx))
			return
		}
	}
	releaseTenant := sync.OnceFunc(func() {
		if tenantSlot != nil {
			<-tenantSlot
		}
	})
	defer releaseTenant() // even on a panic
	select {
	case s.fetchSlot <- struct{}{}:
	case <-ctx.Done():
		f.err = fmt.Errorf("wait to fetch the image: %w", context.Cause(ctx))
		return
	}
	releaseFetch := sync.OnceFunc(func() { <-s.fetchSlot; releaseTenant() })
	defer releaseFetch()
	t0 := time.Now()
	s.stats.fetches.Add(1)
	s.log.DebugContext(ctx, "embedding cache miss: fetching the image", "task", taskID, "project", project)
	img, err := s.images.Fetch(ctx, ref, taskID, project)
	if err != nil {
		f.err = fmt.Errorf("fetch image of task %d: %w", taskID, err)
		return
	}
	f.fetch = time.Since(t0)

	select {
	case s.encSlot <- struct{}{}:
	case <-ctx.Done():
		f.err = fmt.Errorf("wait for the encoder: %w", context.Cause(ctx))
		return
	}
	defer func() { <-s.encSlot }()
	releaseFetch()
	t0 = time.Now()
	s.stats.encodes.Add(1)
	f.emb, f.err = s.seg.Encode(ctx, img)
	if f.err != nil {
		f.err = fmt.Errorf("encode image of task %d: %w", taskID, f.err)
		return
	}
	f.encode = time.Since(t0)
	if s.observeEncode != nil {
		s.observeEncode(f.encode)
	}
}

// decode runs the decoder, counted in running so that Close waits for it
// before the model can be freed.
func (s *Service) decode(ctx context.Context, emb *sam.Embedding, prompt sam.Prompt) (*sam.Mask, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, &Error{Status: 503, Msg: "the backend is shutting down"}
	}
	s.running.Add(1)
	s.mu.Unlock()
	defer s.running.Done()
	return s.seg.Decode(ctx, emb, prompt)
}

// Close stops new image work and waits, until ctx ends, for the fetches,
// encoder and decoder runs under way, so that the model can be released safely after
// it returns nil.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.running.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for image work to finish: %w", context.Cause(ctx))
	}
}

func toPrompt(in *ls.Interaction) sam.Prompt {
	var p sam.Prompt
	for _, pt := range in.Points {
		p.Points = append(p.Points, sam.Point{X: pt.X, Y: pt.Y, Positive: pt.Positive})
	}
	if in.Box != nil {
		p.Box = &sam.Box{X0: in.Box.X0, Y0: in.Box.Y0, X1: in.Box.X1, Y1: in.Box.Y1}
	}
	return p
}

// resizeNearest returns the mask's pixels at w×h, by nearest neighbour;
// the mask's own pixels when it already has that size.
func resizeNearest(m *sam.Mask, w, h int) []byte {
	if m.Width == w && m.Height == h {
		return m.Pix
	}
	out := make([]byte, w*h)
	cols := make([]int, w)
	for x := range cols {
		cols[x] = min((2*x+1)*m.Width/(2*w), m.Width-1)
	}
	for y := range h {
		src := m.Pix[min((2*y+1)*m.Height/(2*h), m.Height-1)*m.Width:]
		row := out[y*w : (y+1)*w]
		for x, c := range cols {
			row[x] = src[c]
		}
	}
	return out
}

// regionID returns 4 hex characters, like the reference's str(uuid4())[:4].
func regionID() string {
	const hex = "0123456789abcdef"
	v := rand.Uint32()
	var b [4]byte
	for i := range b {
		b[i] = hex[v&15]
		v >>= 4
	}
	return string(b[:])
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
