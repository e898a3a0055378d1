package deploytest

import (
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/sam-ml-backend/sam-ml-backend/internal/config"
)

// Names in docker-compose.yml.
const (
	composeBackend     = "sam-ml-backend"
	composeLabelStudio = "label-studio"
	// dataMount is where the backend sees Label Studio's data folder.
	dataMount = "/label-studio-data"
	// labelStudioData is where Label Studio's image keeps it.
	labelStudioData = "/label-studio/data"
)

// loadCompose loads docker-compose.yml with compose's own loader (schema
// validation, interpolation, path resolution), given the variables an
// operator set in the shell or in .env.
func loadCompose(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	var list []string
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(abs, "docker-compose.yml")},
		cli.WithWorkingDirectory(abs), cli.WithEnv(list))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	return p
}

// composeEnv returns the environment the backend's container gets: the
// image's, overridden by the service's.
func composeEnv(t *testing.T, svc types.ServiceConfig) map[string]string {
	t.Helper()
	env := imageEnv(t, finalStage(t))
	for k, v := range svc.Environment {
		if v == nil {
			t.Errorf("compose sets %s without a value: it would pass on the host's, which this file cannot check", k)
			continue
		}
		env[k] = *v
	}
	return env
}

// mountAt returns the volume mounted at target, or nil.
func mountAt(svc types.ServiceConfig, target string) *types.ServiceVolumeConfig {
	for i, v := range svc.Volumes {
		if path.Clean(v.Target) == target {
			return &svc.Volumes[i]
		}
	}
	return nil
}

func TestCompose(t *testing.T) {
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string // what the operator set
		// want
		dataType, dataSource     string
		modelsSource             string
		orgMiddleware            bool
		demo                     bool
		token, encoder, authUser string
	}{
		{
			name:         "defaults",
			dataType:     types.VolumeTypeVolume,
			dataSource:   "label-studio-data",
			modelsSource: filepath.Join(abs, "models"),
			demo:         true,
		},
		{
			name: "operator settings",
			env: map[string]string{
				"LABEL_STUDIO_DATA":    "./mydata",
				"SAM_MODELS_DIR":       "/srv/sam-models",
				"SAM_ENCODER_PATH":     "/models/sam_vit_h.encoder.onnx",
				"SAM_DECODER_PATH":     "/models/sam_vit_h.decoder.onnx",
				"USE_ORG_MIDDLEWARE":   "true",
				"LABEL_STUDIO_API_KEY": "0123456789abcdef",
				"BASIC_AUTH_USER":      "ls",
				"BASIC_AUTH_PASS":      "secret-pass",
				// The database path is fixed to the mount; a value meant
				// for the host must not move it.
				"LABEL_STUDIO_DB_PATH": "/elsewhere.sqlite3",
			},
			dataType:      types.VolumeTypeBind,
			dataSource:    filepath.Join(abs, "mydata"),
			modelsSource:  "/srv/sam-models",
			orgMiddleware: true,
			token:         "0123456789abcdef",
			encoder:       "/models/sam_vit_h.encoder.onnx",
			authUser:      "ls",
		},
	}
	uid, gid := imageUser(t, loadDockerfile(t))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := loadCompose(t, tt.env)
			svc, ok := p.Services[composeBackend]
			if !ok {
				t.Fatalf("docker-compose.yml has no service %s", composeBackend)
			}

			// Built from this repository's Dockerfile, run as its
			// non-root user on a read-only root filesystem.
			if svc.Build == nil || svc.Build.Context != abs || svc.Build.Dockerfile != "Dockerfile" {
				t.Errorf("build = %+v; want the repository's Dockerfile", svc.Build)
			}
			if !svc.ReadOnly {
				t.Error("read_only is not true")
			}
			if u, g, err := parseUser(svc.User); err != nil || u != uid || g != gid {
				t.Errorf("user %q (%v); want the image's %d:%d", svc.User, err, uid, gid)
			}
			if !slices.ContainsFunc(svc.Tmpfs, func(s string) bool { return strings.Split(s, ":")[0] == "/tmp" }) {
				t.Errorf("tmpfs %v has no /tmp: SQLite's temporary files need it on a read-only root filesystem", svc.Tmpfs)
			}

			// Label Studio's data folder, read-only, the one Label Studio
			// writes.
			data := mountAt(svc, dataMount)
			switch {
			case data == nil:
				t.Fatalf("%s is not mounted", dataMount)
			case !data.ReadOnly:
				t.Errorf("%s is mounted read-write; want :ro", dataMount)
			case data.Type != tt.dataType || data.Source != tt.dataSource:
				t.Errorf("%s is %s %s; want %s %s", dataMount, data.Type, data.Source, tt.dataType, tt.dataSource)
			}
			ls, ok := p.Services[composeLabelStudio]
			if !ok {
				t.Fatalf("docker-compose.yml has no service %s", composeLabelStudio)
			}
			if lsData := mountAt(ls, labelStudioData); lsData == nil || data == nil || lsData.Source != data.Source || lsData.Type != data.Type {
				t.Errorf("Label Studio's %s is %+v; want the backend's %s source", labelStudioData, lsData, dataMount)
			}
			models := mountAt(svc, "/models")
			if models == nil || !models.ReadOnly || models.Source != tt.modelsSource {
				t.Errorf("/models is %+v; want %s read-only", models, tt.modelsSource)
			}

			// The environment: every SPEC §1 variable, only names the
			// backend reads, and values it accepts.
			env := composeEnv(t, svc)
			checkEnvironment(t, "docker-compose.yml", env, true)
			cfg := loadConfig(t, "docker-compose.yml", env)
			if cfg.DBPath != config.DefaultDBPath || !within(cfg.DBPath, dataMount) {
				t.Errorf("LABEL_STUDIO_DB_PATH = %s; want %s, in the read-only mount", cfg.DBPath, config.DefaultDBPath)
			}
			if cfg.UseOrgMiddleware != tt.orgMiddleware || cfg.Demo() != tt.demo || cfg.APIToken != tt.token ||
				cfg.EncoderPath != tt.encoder || cfg.BasicAuthUser != tt.authUser {
				t.Errorf("config: middleware %v, demo %v, token set %v, encoder %q, basic-auth user %q; want %v, %v, %v, %q, %q",
					cfg.UseOrgMiddleware, cfg.Demo(), cfg.APIToken != "", cfg.EncoderPath, cfg.BasicAuthUser,
					tt.orgMiddleware, tt.demo, tt.token != "", tt.encoder, tt.authUser)
			}
			for name, p := range map[string]string{"SAM_ENCODER_PATH": cfg.EncoderPath, "SAM_DECODER_PATH": cfg.DecoderPath} {
				if p != "" && !within(p, models.Target) {
					t.Errorf("%s=%s is outside the models mount %s", name, p, models.Target)
				}
			}
			if root := cfg.LocalFilesRoot; root != "" {
				if m := mountAt(svc, root); m == nil || !m.ReadOnly {
					t.Errorf("the local-files root %s is not a read-only mount", root)
				}
			}
			if want := loadConfig(t, "the image", imageEnv(t, finalStage(t))).ONNXRuntimeLib; cfg.ONNXRuntimeLib != want {
				t.Errorf("ONNXRUNTIME_LIB = %s; the image has the library at %s", cfg.ONNXRuntimeLib, want)
			}

			// Reachable on the port it listens on, and given time to
			// finish in-flight predictions.
			if !slices.ContainsFunc(svc.Ports, func(pc types.ServicePortConfig) bool { return int(pc.Target) == cfg.Port }) {
				t.Errorf("ports %+v do not publish the container's port %d", svc.Ports, cfg.Port)
			}
			if bound := shutdownBound(t); svc.StopGracePeriod == nil || time.Duration(*svc.StopGracePeriod) <= bound {
				t.Errorf("stop_grace_period %v; want more than the backend's %v shutdown bound", svc.StopGracePeriod, bound)
			}
		})
	}
}
