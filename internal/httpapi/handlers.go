package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	ls "github.com/sam-ml-backend/sam-ml-backend/internal/labelstudio"
)

// handleHealth answers with fields fixed at start-up, so it stays fast
// however busy inference is.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	// An organization's credentials get Label Studio's answer only: the
	// checks name other organizations and the backend's infrastructure.
	if _, isOrg := Organization(r.Context()); isOrg || s.cfg.Checks == nil {
		writeRaw(w, http.StatusOK, s.health)
		return
	}
	body := make(map[string]any, len(s.fields)+1)
	for k, v := range s.fields {
		body[k] = v
	}
	checks, degraded := s.cfg.Checks()
	body["checks"], body["health"] = checks, "ok"
	if degraded {
		body["health"] = "degraded"
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) handleSetup(w http.ResponseWriter, r *http.Request) {
	var req ls.SetupRequest
	if err := s.decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.checkTenant(r, req.Project); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ls.SetupResponse{ModelVersion: s.cfg.ModelVersion})
}

func (s *Server) handlePredict(w http.ResponseWriter, r *http.Request) {
	var req ls.PredictRequest
	if err := s.decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.checkTenant(r, req.Project); err != nil {
		s.fail(w, r, err)
		return
	}
	if s.cfg.Observer != nil {
		defer s.cfg.Observer.PredictionStarted()()
	}
	resp, err := s.predictor.Predict(r.Context(), &req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request) {
	var ev ls.WebhookEvent
	if err := s.decodeLimit(w, r, &ev, min(maxWebhookBytes, s.cfg.MaxRequestBytes)); err != nil {
		s.fail(w, r, err)
		return
	}
	if ev.Action == nil {
		writeError(w, http.StatusBadRequest, `webhook body has no "action"`)
		return
	}
	if !ls.IsTrainEvent(*ev.Action) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "Unknown event"})
		return
	}
	// SAM does not train: the reference's fit() returns None.
	writeJSON(w, http.StatusCreated, map[string]any{"result": nil, "status": "ok"})
}

// handleMetrics serves the Prometheus metrics, or {} as the reference
// backend does when there are none.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	if org, isOrg := Organization(r.Context()); isOrg {
		writeError(w, http.StatusForbidden, fmt.Sprintf("metrics cover every organization: organization %d's credentials cannot read them; use BASIC_AUTH_USER and BASIC_AUTH_PASS", org))
		return
	}
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.ServeHTTP(w, r)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

func (s *Server) handleVersions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"versions": []string{s.cfg.ModelVersion}})
}

// invalidateRequest is the optional body of the admin route.
type invalidateRequest struct {
	Project      *int64 `json:"project"`
	Organization *int64 `json:"organization"`
}

func (s *Server) handleInvalidate(w http.ResponseWriter, r *http.Request) {
	var req invalidateRequest
	// An empty body means "everything"; decode treats it as an error.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<16))
	if err != nil || len(bytes.TrimSpace(body)) > 0 && json.Unmarshal(body, &req) != nil {
		writeError(w, http.StatusBadRequest, `body must be {}, {"project": <id>} or {"organization": <id>}`)
		return
	}
	if req.Project != nil && req.Organization != nil {
		writeError(w, http.StatusBadRequest, "name a project or an organization, not both")
		return
	}
	var project, org int64
	if req.Project != nil {
		project = *req.Project
	}
	if req.Organization != nil {
		org = *req.Organization
	}
	if (req.Project != nil && project <= 0) || (req.Organization != nil && org <= 0) {
		writeError(w, http.StatusBadRequest, "ids must be positive integers")
		return
	}
	n := 0
	if s.invalidator != nil {
		n = s.invalidator.Invalidate(project, org)
	}
	writeJSON(w, http.StatusOK, map[string]any{"invalidated": n, "status": "ok"})
}

func (s *Server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "no route "+r.Method+" "+r.URL.Path)
}
