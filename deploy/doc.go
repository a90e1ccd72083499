// Package deploy holds no code: its tests check the container, compose and
// Kubernetes files beside them against the ringkv binary they run. It is a
// module of its own so that k8s.io/api stays out of ringkv's go.mod.
package deploy
