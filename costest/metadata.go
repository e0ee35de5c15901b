package costest

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// metadataCredentialsPath is where the CVM instance metadata service lists
// the instance's CAM role and, below it, serves the role's temporary keys
// (CVM "instance metadata" reference: cam/security-credentials/<role>).
const metadataCredentialsPath = "/latest/meta-data/cam/security-credentials/"

// defaultInstanceKeyLifetime is the lifetime of instance role keys when
// IdentityOptions.Lifetime is zero.
const defaultInstanceKeyLifetime = 2 * time.Hour

// MetadataHandler serves the emulated CVM instance metadata service: the
// listing of the instance role and its temporary keys, as JSON with
// TmpSecretId, TmpSecretKey, Token, ExpiredTime, Expiration and Code
// "Success". A role other than IdentityOptions.InstanceRole is 404, as on
// CVM. NewServer serves it at Server.MetadataURL when Options.Identity is
// set.
func (h *Handler) MetadataHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		role, found := strings.CutPrefix(r.URL.Path, metadataCredentialsPath)
		op := OpMetadataCredentials
		if role == "" {
			op = OpMetadataRoleList
		}
		h.stats.request(op)
		status := http.StatusOK
		defer func() { h.stats.finish(op, status, 0, 0) }()
		injected, ok := h.identityFault(r.Context())
		if !ok {
			status = 0
			return
		}
		h.identity.mu.Lock()
		instance := h.identity.instance
		h.identity.mu.Unlock()
		switch {
		case injected:
			h.stats.fault("error")
			status = http.StatusInternalServerError
			http.Error(w, "internal error (injected by costest)", status)
		case r.Method != http.MethodGet:
			status = http.StatusMethodNotAllowed
			http.Error(w, "GET only", status)
		case !found || instance == "" || (role != "" && role != instance):
			status = http.StatusNotFound
			http.NotFound(w, r)
		case role == "":
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte(instance))
		default:
			c := h.identity.issue(defaultInstanceKeyLifetime, time.Now())
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{
				"TmpSecretId":  c.SecretID,
				"TmpSecretKey": c.SecretKey,
				"Token":        c.SessionToken,
				"ExpiredTime":  c.Expiry.Unix(),
				"Expiration":   c.Expiry.UTC().Format(time.RFC3339),
				"Code":         "Success",
			})
		}
	})
}
