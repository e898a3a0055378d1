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
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	ls "github.com/sam-ml-backend/sam-ml-backend/internal/labelstudio"
	"github.com/sam-ml-backend/sam-ml-backend/internal/lru"
	"github.com/sam-ml-backend/sam-ml-backend/internal/rle"
	"github.com/sam-ml-backend/sam-ml-backend/internal/sam"
)

// Images finds and fetches task images.
type Images interface {
	// Key identifies the image a task's data value refers to, without I/O.
	Key(ref string, taskID int64) (string, error)
	// Fetch downloads and decodes the image, oriented as displayed.
	Fetch(ctx context.Context, ref string, taskID int64, project string) (image.Image, error)
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
)

// Options configure a Service.
type Options struct {
	// ModelVersion is put on every prediction.
	ModelVersion string
	// CacheBytes bounds the embedding cache; 0 means DefaultCacheBytes, a
	// negative value turns the cache off.
	CacheBytes int64
	// EncoderConcurrency bounds concurrent encoder runs; 0 means
	// DefaultEncoderConcurrency.
	EncoderConcurrency int
	// Logger receives one line per prediction; nil discards.
	Logger *slog.Logger
	// Observe, if set, is called with the stage timings of every
	// successful prediction.
	Observe func(Timings)
}

// Service makes predictions. It is safe for concurrent use.
type Service struct {
	images  Images
	seg     Segmenter
	version string
	log     *slog.Logger
	cache   *lru.Cache[string, *sam.Embedding]
	flight  singleflight.Group
	encSlot chan struct{}
	observe func(Timings)
	stats   struct{ fetches, encodes, hits, evictions atomic.Int64 }
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
	s := &Service{
		images:  images,
		seg:     seg,
		version: opts.ModelVersion,
		log:     opts.Logger,
		encSlot: make(chan struct{}, opts.EncoderConcurrency),
		observe: opts.Observe,
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
		Evictions:   s.stats.evictions.Load(),
		CachedBytes: s.cache.Cost(),
	}
}

// ModelVersion returns the version predictions carry.
func (s *Service) ModelVersion() string { return s.version }

// Error is a prediction failure whose message is safe to show the client.
type Error struct {
	// Status is the HTTP status to answer with.
	Status int
	// Msg says what went wrong.
	Msg string
	// Err is the cause, for the log.
	Err error
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// HTTPStatus returns the status to answer with.
func (e *Error) HTTPStatus() int { return e.Status }

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
	key, err := s.images.Key(ref, task.ID)
	if err != nil {
		return nil, fmt.Errorf("resolve image of task %d: %w", task.ID, err)
	}

	var t Timings
	emb, err := s.embedding(ctx, key, ref, task.ID, string(req.Project), &t)
	if err != nil {
		return nil, err
	}
	if emb.Width != in.Width || emb.Height != in.Height {
		s.log.Warn("image size differs from the editor's",
			"task", task.ID, "image", fmt.Sprintf("%dx%d", emb.Width, emb.Height),
			"editor", fmt.Sprintf("%dx%d", in.Width, in.Height))
	}

	t0 := time.Now()
	mask, err := s.seg.Decode(ctx, emb, prompt)
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
			RLE:         rle.Encode(mask.Pix),
		},
	}
	t.RLE = time.Since(t0)

	s.log.Info("prediction",
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

// embedding returns the cached embedding of the image under key, or fetches
// and encodes it. Concurrent callers for one key share one fetch and one
// encoder run; the shared work does not stop when one caller gives up, so
// its result still reaches the cache.
func (s *Service) embedding(ctx context.Context, key, ref string, taskID int64, project string, t *Timings) (*sam.Embedding, error) {
	if e, ok := s.cache.Get(key); ok {
		s.stats.hits.Add(1)
		t.CacheHit = true
		return e, nil
	}
	type result struct {
		emb           *sam.Embedding
		fetch, encode time.Duration
	}
	ch := s.flight.DoChan(key, func() (any, error) {
		work := context.WithoutCancel(ctx)
		t0 := time.Now()
		img, err := s.images.Fetch(work, ref, taskID, project)
		s.stats.fetches.Add(1)
		if err != nil {
			return nil, fmt.Errorf("fetch image of task %d: %w", taskID, err)
		}
		fetched := time.Since(t0)
		s.encSlot <- struct{}{}
		t0 = time.Now()
		emb, err := s.seg.Encode(work, img)
		<-s.encSlot
		s.stats.encodes.Add(1)
		if err != nil {
			return nil, fmt.Errorf("encode image of task %d: %w", taskID, err)
		}
		s.cache.Add(key, emb, emb.Bytes(), 0)
		return result{emb, fetched, time.Since(t0)}, nil
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for image embedding: %w", context.Cause(ctx))
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		res := r.Val.(result)
		if !r.Shared {
			t.Fetch, t.Encode = res.fetch, res.encode
		}
		return res.emb, nil
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
