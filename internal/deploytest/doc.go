// Package deploytest checks the deployment files without a container
// engine or a cluster: the Dockerfile copies every file the build needs
// past .dockerignore and ships ONNX Runtime to a non-root user,
// docker-compose.yml loads with compose's own loader and mounts Label
// Studio's data read-only, and the Kubernetes manifests under deploy/k8s
// decode strictly into their API types and fit together. Each environment
// these files give the backend is run through config.Load, so a setting the
// backend would refuse fails here rather than at start-up.
package deploytest
